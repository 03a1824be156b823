"""Notebook and code hygiene: stripped outputs, valid notebooks, lint, one header for all."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import colab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LINTED = ["helpers", "tests", "notebooks", "benchmarks"]


def _ids(paths):
    return [p.name for p in paths]


def test_the_course_has_its_notebooks_in_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers[:2] == [0, 1] and numbers == list(range(len(numbers)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_valid_and_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs"


def test_nbstripout_verify():
    tool = shutil.which("nbstripout", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [tool, "--verify", *map(str, NOTEBOOKS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_header(path):
    nb = nbformat.read(path, as_version=4)
    header = nb.cells[0]
    assert header.cell_type == "markdown"
    number = path.name[:2]
    assert re.match(rf"# {number} · \S", header.source), "title line '# NN · Title'"
    assert colab.badges(path.name) in header.source, "Colab and Binder badges for this notebook"
    assert "**What you will learn**" in header.source
    previous = f"{int(number) - 1:02d}_" if number != "00" else "none"
    assert re.search(rf"\*\*Prerequisites:\*\*.*{previous}", header.source)
    assert re.search(r"\*\*Time:\*\*.*CPU.*GPU", header.source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_code_cell_is_colab_install_then_setup(path):
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source.startswith(colab.SETUP_CELL.rstrip("\n"))
    assert "config.setup(" in first_code.source


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(args):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    paths = [p for p in LINTED if (ROOT / p).exists()]
    result = subprocess.run([ruff, *args, *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
