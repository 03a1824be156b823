"""The course's exercises: each checks the learner's answer, gives a hint, and has a solution.

An exercise cell in a notebook carries the cell tag ``exercise`` and ends with one call::

    answer = ...  # your number
    exercises.check("02.1", answer)

``check`` never raises: with ``...`` still in place it says "not attempted yet"; a wrong
answer gets a hint that says what is off and where to look; an answer that raises gets the
error's message, not a traceback. ``exercises.solution("02.1")`` prints the worked
solution. The checks of notebook NN live in ``exercises/nbNN.py`` and are registered with
``@exercise``; they return ``None`` for a right answer, a hint (``str``) for a wrong one,
or ``NOT_ATTEMPTED``.

This is a small module of our own rather than a grading library (otter-grader, nbgrader):
those grade submitted notebooks against hidden tests, need their own notebook format or
server, and pull in dependencies Colab would have to install; here the check runs in the
learner's kernel, on Colab, Binder or locally, from the installed package alone.
"""

from __future__ import annotations

import importlib
import numbers
import pkgutil
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

#: Returned by a check when the learner has not written an answer yet.
NOT_ATTEMPTED = "not attempted"

KINDS = ("predict", "code", "experiment")

_ID = re.compile(r"^(\d\d)\.(\d+)$")


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``"NN.k"``), kind, one-line title, check and solution code."""

    id: str
    kind: str
    title: str
    check: Callable[..., str | None]
    solution: str


_REGISTRY: dict[str, Exercise] = {}


def exercise(exercise_id: str, *, kind: str, title: str, solution: str):
    """Register the decorated function as the check of ``exercise_id``.

    ``solution`` is the code that replaces the learner's part of the cell (everything above
    the ``exercises.check(...)`` line).
    """
    _parse(exercise_id)
    if kind not in KINDS:
        raise ValueError(f"exercise {exercise_id}: kind must be one of {KINDS}, got {kind!r}")

    def register(check: Callable[..., str | None]) -> Callable[..., str | None]:
        _REGISTRY[exercise_id] = Exercise(
            exercise_id, kind, title, check, textwrap.dedent(solution).strip() + "\n"
        )
        return check

    return register


def is_number(value) -> bool:
    """True for a plain number (int, float, NumPy scalar), False for a bool or anything else."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _parse(exercise_id: str) -> str:
    match = _ID.match(str(exercise_id))
    if not match:
        raise ValueError(f"{exercise_id!r} is not an exercise id: ids look like '03.2'")
    return match.group(1)


def get(exercise_id: str) -> Exercise:
    """The registered exercise ``exercise_id`` (importing its notebook's checks first)."""
    notebook = _parse(exercise_id)
    try:
        importlib.import_module(f"exercises.nb{notebook}")
    except ModuleNotFoundError as error:
        if error.name != f"exercises.nb{notebook}":
            raise
    if exercise_id not in _REGISTRY:
        raise KeyError(f"there is no exercise {exercise_id!r}; see exercises.catalogue()")
    return _REGISTRY[exercise_id]


def _attempted(value) -> bool:
    if value is Ellipsis:
        return False
    if isinstance(value, list | tuple | set):
        return all(_attempted(item) for item in value)
    if isinstance(value, dict):
        return all(_attempted(item) for item in value.values())
    return True


def verdict(exercise_id: str, *answers, **named) -> str | None:
    """What ``check`` would say, as data: ``None`` (right), ``NOT_ATTEMPTED`` or a hint.

    An answer that raises becomes a hint naming the error, so a learner never sees a
    traceback from a check.
    """
    exercise_ = get(exercise_id)
    if not all(_attempted(value) for value in (*answers, *named.values())):
        return NOT_ATTEMPTED
    try:
        return exercise_.check(*answers, **named)
    except Exception as error:  # the learner's code raised: report it as a hint
        return f"your answer raised {type(error).__name__}: {error}"


def check(exercise_id: str, *answers, **named) -> None:
    """Check an answer and print the verdict (right, not attempted, or a hint).

    Never raises for an answer, and returns nothing, so the cell shows only the message;
    ``verdict`` gives the same judgement as data.
    """
    result = verdict(exercise_id, *answers, **named)
    if result is None:
        print(f"Exercise {exercise_id}: correct. Well done!")
    elif result == NOT_ATTEMPTED:
        print(
            f"Exercise {exercise_id}: not attempted yet. Replace the ... above with your answer "
            f'and run the cell again; exercises.solution("{exercise_id}") shows a solution.'
        )
    else:
        print(f"Exercise {exercise_id}: not yet. Hint: {result}")


def solution(exercise_id: str) -> str:
    """Print (and return) the solution of ``exercise_id``: the code that answers the cell."""
    exercise_ = get(exercise_id)
    print(f"# Solution of exercise {exercise_id}: {exercise_.title}\n{exercise_.solution}")
    return exercise_.solution


def catalogue(notebook: str | None = None):
    """A table of the exercises (id, kind, title), of one notebook (``"03"``) or of all."""
    import pandas as pd

    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("nb"):
            importlib.import_module(f"exercises.{module.name}")
    rows = [
        {"id": e.id, "kind": e.kind, "title": e.title}
        for e in sorted(_REGISTRY.values(), key=lambda e: tuple(map(int, e.id.split("."))))
        if notebook is None or e.id.startswith(f"{notebook}.")
    ]
    return pd.DataFrame(rows, columns=["id", "kind", "title"])
