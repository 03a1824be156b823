"""The exercise convention: tagged cells, registered checks, solutions that pass.

Each notebook after 00 has at least three exercise cells (tag ``exercise``); each ends with
``exercises.check("NN.k", ...)`` and every id is registered in ``exercises/nbNN.py`` and used
once. The solved notebooks (every exercise cell's learner part replaced by its solution, the
check wrapped in ``assert``) run top to bottom in fast mode, so a solution cannot rot:
``make test-backends`` runs them on PyTorch (marker ``solved_notebooks``).
Checks of single exercises (solution passes, a typical wrong answer gets its hint) are in
``tests/test_exercises_nbNN.py``.
"""

import os
import re
from pathlib import Path

import nbformat
import pytest

import exercises

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if p.name[:2] != "00"]
CHECK_CALL = re.compile(r'^exercises\.check\(\s*"(\d\d\.\d+)"', re.MULTILINE)


def exercise_cells(nb):
    """The cells tagged ``exercise``, in order."""
    return [c for c in nb.cells if "exercise" in c.get("metadata", {}).get("tags", [])]


def split_exercise_cell(source: str) -> tuple[str, str, str]:
    """(learner part, check call, exercise id) of an exercise cell's source."""
    matches = list(CHECK_CALL.finditer(source))
    assert len(matches) == 1, f"one exercises.check call per exercise cell:\n{source}"
    match = matches[0]
    return source[: match.start()], source[match.start() :], match.group(1)


def solved(nb):
    """A copy of ``nb`` with each exercise answered by its solution and its verdict asserted."""
    nb = nbformat.from_dict(nb)
    for cell in exercise_cells(nb):
        _, check_call, exercise_id = split_exercise_cell(cell.source)
        judged = check_call.strip().replace("exercises.check(", "exercises.verdict(", 1)
        cell.source = (
            exercises.get(exercise_id).solution
            + f"_verdict = {judged}\nassert _verdict is None, _verdict\n"
        )
    return nb


def _ids(paths):
    return [p.name for p in paths]


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=_ids(WITH_EXERCISES))
def test_notebook_has_tagged_exercises_that_are_registered(path):
    nb = nbformat.read(path, as_version=4)
    cells = exercise_cells(nb)
    assert len(cells) >= 3, f"{path.name}: at least three exercise cells (tag 'exercise')"
    ids = [split_exercise_cell(c.source)[2] for c in cells]
    assert all(i.startswith(path.name[:2] + ".") for i in ids), ids
    assert len(ids) == len(set(ids)), f"{path.name}: an exercise id is used twice: {ids}"
    registered = set(exercises.catalogue(path.name[:2])["id"])
    assert set(ids) == registered, f"{path.name}: cells {sorted(ids)}, registered {registered}"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "exercises.solution(" in text, f"{path.name}: say how to see a solution"


def test_every_exercise_has_a_kind_title_and_solution():
    table = exercises.catalogue()
    assert len(table) >= 21
    assert set(table["kind"]) <= set(exercises.KINDS)
    for exercise_id in table["id"]:
        exercise = exercises.get(exercise_id)
        assert exercise.title and exercise.solution.strip() and "..." not in exercise.solution


def test_check_never_raises_and_says_not_attempted(capsys):
    exercise_id = exercises.catalogue()["id"].iloc[0]
    assert exercises.check(exercise_id, ...) is None
    assert "not attempted yet" in capsys.readouterr().out
    assert exercises.verdict(exercise_id, ...) == exercises.NOT_ATTEMPTED


def test_unknown_exercise_ids_are_refused_clearly():
    with pytest.raises(ValueError, match="ids look like"):
        exercises.get("3.2")
    with pytest.raises(KeyError, match="no exercise"):
        exercises.get("01.99")


def test_solution_prints_the_code(capsys):
    exercise_id = exercises.catalogue()["id"].iloc[0]
    code = exercises.solution(exercise_id)
    assert code in capsys.readouterr().out


@pytest.fixture(scope="module")
def solved_artifacts(tmp_path_factory):
    """Where the solved notebooks write: ``COURSE_ARTIFACTS`` when set (``make test-backends``
    sets one per backend), else a new folder, apart from the artifacts of other runs."""
    return os.environ.get("COURSE_ARTIFACTS") or str(tmp_path_factory.mktemp("solved-artifacts"))


@pytest.mark.slow
@pytest.mark.solved_notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_solved_notebook_runs_in_fast_mode(path, solved_artifacts, monkeypatch):
    """Every solution, pasted in place, passes its own check in the running notebook, on the
    backend ``KERAS_BACKEND`` names. ``make test-backends`` runs these on PyTorch, as its run
    of every notebook there (00 has no exercises and runs as it is); ``make test`` leaves them
    out: its nbval run executes the notebooks as a learner opens them."""
    from nbclient import NotebookClient

    if os.environ.get("COURSE_FAST") != "1":
        pytest.skip("runs the notebooks in fast mode only (COURSE_FAST=1, as make sets)")
    monkeypatch.setenv("COURSE_ARTIFACTS", solved_artifacts)
    nb = solved(nbformat.read(path, as_version=4))
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
