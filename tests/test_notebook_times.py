"""benchmarks/notebook_times.py: each notebook's time per backend, from nbval's cells
(``make test``, and ``make test-backends`` on JAX) and from the solved-notebook runs
(``make test-backends`` on PyTorch)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "notebook_times", ROOT / "benchmarks" / "notebook_times.py"
)
notebook_times = sys.modules["notebook_times"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_times)

NBVAL = """<testsuites><testsuite>
<testcase classname="notebooks.01_preprocessing.ipynb" name="Cell 0" time="2.5"/>
<testcase classname="notebooks.01_preprocessing.ipynb" name="Cell 1" time="1.5"/>
<testcase classname="notebooks.02_building_a_cnn.ipynb" name="Cell 0" time="3.0">
<failure message="boom"/></testcase>
<testcase classname="tests.test_data" name="test_split" time="9.0"/>
</testsuite></testsuites>"""

SOLVED = """<testsuites><testsuite>
<testcase classname="tests.test_exercises"
 name="test_solved_notebook_runs_in_fast_mode[01_preprocessing.ipynb]" time="20.0"/>
<testcase classname="tests.test_exercises"
 name="test_solved_notebook_runs_in_fast_mode[02_building_a_cnn.ipynb]" time="30.0"/>
<testcase classname="notebooks.01_preprocessing.ipynb" name="Cell 0" time="99.0"/>
</testsuite></testsuites>"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nbval_cells_are_summed_per_notebook_and_failures_counted(tmp_path):
    path = _write(tmp_path, "notebooks-tensorflow.xml", NBVAL)
    backend, seconds, failed = notebook_times.notebook_seconds(path)
    assert backend == "tensorflow"
    assert seconds == {"01_preprocessing": 4.0, "02_building_a_cnn": 3.0}
    assert failed == {"01_preprocessing": 0, "02_building_a_cnn": 1}


def test_solved_runs_take_the_place_of_cells_and_name_the_column(tmp_path):
    path = _write(tmp_path, "backend-jax/notebooks.xml", SOLVED)
    backend, seconds, _ = notebook_times.notebook_seconds(path)
    assert backend == "jax (solved)"
    assert seconds == {"01_preprocessing": 20.0, "02_building_a_cnn": 30.0}


def test_table_has_a_column_per_kind_of_run_and_fails_on_a_failure(tmp_path, capsys):
    nbval = _write(tmp_path, "notebooks-tensorflow.xml", NBVAL)
    solved = _write(tmp_path, "backend-torch/notebooks.xml", SOLVED)
    assert notebook_times.main([str(nbval), str(solved)]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| notebook | tensorflow | torch (solved) |"
    assert "| 02_building_a_cnn | 3 s (1 failed) | 30 s |" in table
    assert table[-1] == "| all | 0.1 min | 0.8 min |"


def test_a_path_without_a_backend_is_refused(tmp_path):
    path = _write(tmp_path, "results.xml", NBVAL)
    with pytest.raises(SystemExit, match="name the backend"):
        notebook_times.notebook_seconds(path)
