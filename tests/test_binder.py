"""What Binder builds from this repository, and the memory script that checks its 2 GiB limit.

``jupyter-repo2docker --no-build --debug`` prints the Dockerfile Binder would build, without
Docker. The tests read that Dockerfile rather than trusting the files in ``binder/``: it must
take the environment from ``binder/`` (not the top-level requirements), pin Python to what
``pyproject.toml`` allows, and run ``binder/postBuild`` after the repository is copied in, so
that ``helpers`` is installed. (``tests/test_binder_env.py`` checks that the pins match
``requirements.txt``.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def repo2docker(tmp_path_factory) -> subprocess.CompletedProcess:
    """The Dockerfile (stdout) and the build plan (stderr) of repo2docker for this repo."""
    repo2docker = shutil.which("jupyter-repo2docker", path=str(BIN))
    assert repo2docker, "jupyter-repo2docker is missing: it is in requirements-dev.txt"
    result = subprocess.run(
        [repo2docker, "--no-build", "--debug", str(ROOT)],
        cwd=tmp_path_factory.mktemp("repo2docker"),  # no stray repo2docker_config.py
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "FROM " in result.stdout, result.stdout[-2000:]
    return result


@pytest.fixture(scope="module")
def dockerfile(repo2docker) -> str:
    return repo2docker.stdout


@pytest.fixture(scope="module")
def memory():
    """``benchmarks/memory.py``, imported as a module (benchmarks/ is not a package)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return memory


def _environment() -> dict:
    return yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())


def test_binder_builds_from_the_binder_folder(dockerfile):
    assert "COPY --chown=0:0 src/binder/environment.yml" in dockerfile
    assert '--file "binder/environment.yml"' in dockerfile
    # binder/ wins over the top level: requirements.txt is not what Binder installs.
    assert not re.search(r"pip install.*requirements\.txt", dockerfile)


def test_postbuild_runs_after_the_repository_is_copied(dockerfile):
    """``pip install -e .`` in postBuild needs the sources, so the copy must come first."""
    copy = dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    post = dockerfile.index("RUN ./binder/postBuild")
    assert copy < post
    script = (ROOT / "binder" / "postBuild").read_text()
    assert re.search(r"pip install --no-deps -e \.", script), "postBuild installs helpers"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'packages\s*=\s*\["helpers", "exercises"\]', pyproject), (
        "the packages are helpers and exercises"
    )


def test_environment_pins_python_and_every_package(repo2docker):
    env = _environment()
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith("python"))
    version = re.fullmatch(r"python=(3\.\d+)", python)
    assert version, f"pin Python to a minor version, not {python!r}"
    wanted = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text())
    minor = tuple(map(int, version.group(1).split(".")))
    assert minor >= tuple(map(int, wanted.group(1).split(".")))
    assert f"Building conda environment for {python}" in repo2docker.stderr
    unpinned = [p for p in pip if not re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", p)]
    assert not unpinned, f"pin these exactly (name==version): {unpinned}"
    names = {p.split("==")[0].lower() for p in pip}
    # Binder has no GPU: the CPU build of TensorFlow, plus what the notebooks need to run.
    assert {"tensorflow-cpu", "keras", "ipywidgets", "jupyterlab"} <= names
    assert "tensorflow" not in names


# --- benchmarks/memory.py on a tiny notebook ------------------------------------------------


def _notebook(folder: Path, name: str, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_memory_script_records_the_kernel_peak(tmp_path):
    """A notebook that holds 300 MiB of bytes must show a peak above 300 MiB, in its row."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(
        folder,
        "00_big.ipynb",
        "small = 1",
        "block = bytearray(300 * 1024 * 1024)\nblock[::4096] = b'x' * len(block[::4096])",
        "print('size', len(block))",
    )
    _notebook(folder, "01_fails.ipynb", "raise RuntimeError('boom')")
    out = tmp_path / "memory.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory.py"), "--notebook-dir", str(folder)]
        + ["--mode", "fast", "--output", str(out), "--capture", "print('size'"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # 01_fails failed
    payload = json.loads(out.read_text())
    assert payload["limit_mb"] == 2048 and payload["machine"]["cores"] >= 1
    rows = {row["notebook"]: row for row in payload["rows"]}
    big, fails = rows["00_big.ipynb"], rows["01_fails.ipynb"]
    assert big["ok"] and big["mode"] == "fast"
    assert big["peak_rss_mb"] >= 300 and big["kernel_maxrss_mb"] >= 300
    assert big["seconds"] > 0
    assert not fails["ok"] and "boom" in fails["error"]
    assert set(big) >= {"notebook", "peak_rss_mb", "seconds", "mode"}
    # Each row says when, by which command and under what load it was measured.
    assert big["date"] == payload["date"] and "--notebook-dir" in big["command"]
    assert len(big["load_average_before"]) == 3 == len(big["load_average_after"])
    # The cell that allocated the block is named first, as the one that grew the most.
    assert big["top_cells"][0]["cell"] == 1 and big["top_cells"][0]["grew_mb"] >= 290
    assert big["top_cells"][0]["peak_rss_mb"] >= 300
    assert big["top_cells"][0]["source"].startswith("block = bytearray")
    kept = json.loads(next(tmp_path.glob("notebook-00_big-fast-*.json")).read_text())
    assert kept["outputs"] == [
        {"cell": 2, "source": "print('size', len(block))", "output": "size 314572800\n"}
    ]


def test_memory_script_selects_notebooks_by_number_or_name(memory, tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb"):
        _notebook(tmp_path, name, "1")
    assert [p.name for p in memory.select(["02", "00_a.ipynb"], tmp_path)] == [
        "02_c.ipynb",
        "00_a.ipynb",
    ]
    assert len(memory.select(None, tmp_path)) == 3
    with pytest.raises(SystemExit, match="available: 00_a.ipynb, 01_b.ipynb, 02_c.ipynb"):
        memory.select(["07"], tmp_path)


def test_memory_results_keep_the_machine_of_each_row(memory, tmp_path):
    path = tmp_path / "memory-cpu2-2026-12-02.json"
    memory.write(path, {"cpu": "AMD EPYC"}, "2026-12-02", [{"notebook": "00", "mode": "full"}])
    payload = memory.write(
        path, {"cpu": "Intel"}, "2026-12-02", [{"notebook": "03", "mode": "full"}]
    )
    assert {row["notebook"]: row["machine"]["cpu"] for row in payload["rows"]} == {
        "00": "AMD EPYC",
        "03": "Intel",
    }
    assert payload["machine"]["cpu"] == "Intel"
    assert json.loads(path.read_text()) == payload


def test_a_failed_notebook_keeps_its_earlier_measurement(memory, tmp_path):
    path = tmp_path / "memory.json"
    good = {"notebook": "05", "mode": "full", "ok": True, "seconds": 900}
    memory.write(path, {"cpu": "Intel"}, "2026-12-02", [good])
    failed = {"notebook": "05", "mode": "full", "ok": False, "seconds": 6, "error": "no data"}
    other = {"notebook": "06", "mode": "full", "ok": False, "seconds": 6, "error": "no data"}
    payload = memory.write(path, {"cpu": "Intel"}, "2026-12-02", [failed, other])
    rows = {row["notebook"]: row for row in payload["rows"]}
    assert rows["05"]["seconds"] == 900 and rows["05"]["ok"]
    assert not rows["06"]["ok"]  # nothing measured before: the failure is recorded


def test_binders_limit_holds_on_machines_without_a_gpu(memory):
    """Binder has no GPU: a peak over 2 GiB fails a CPU row, not a row measured on a GPU
    machine (whose runtime adds host memory a Binder kernel never holds)."""
    heavy, light = {"peak_rss_mb": 3103.2}, {"peak_rss_mb": 1841.0}
    assert memory.over_limit(heavy, {"cpu": "AMD EPYC", "gpu": None})
    assert not memory.over_limit(light, {"cpu": "AMD EPYC", "gpu": None})
    assert not memory.over_limit(heavy, {"cpu": "Intel Xeon", "gpu": "NVIDIA H200"})
