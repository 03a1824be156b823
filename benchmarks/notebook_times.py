"""Each notebook's fast-mode time per Keras backend, from the JUnit files of test runs.

    python benchmarks/notebook_times.py artifacts/notebooks-tensorflow.xml \\
        artifacts/backend-jax/notebooks.xml artifacts/backend-torch/notebooks.xml

``make test`` and ``make test-backends`` write those files (pytest's ``--junitxml``). In a
file of nbval runs (``make test``'s, and ``make test-backends``' for JAX) a notebook's time
is the sum of its cells' times (the kernel's start is not in it); in a file of solved runs
(``make test-backends``' for its ``SOLVED_BACKENDS``, PyTorch by default) it is the time of
``tests/test_exercises.py``'s run of the notebook with its exercises solved (the kernel's
start included), and the column says "(solved)": the two kinds do not compare. A file's
backend is the backend name in its path. Prints a Markdown table, notebook by backend and
kind of run, and writes it as JSON with ``--out``. Files of the same backend and kind share a
column: the last one read wins.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
#: A solved-notebook test case, ``test_solved_notebook_runs_in_fast_mode[05_overfitting.ipynb]``.
SOLVED_CASE = re.compile(r"^test_solved_notebook_runs_in_fast_mode\[(.+)\.ipynb\]$")


def backend_of(path: Path) -> str:
    """The Keras backend named in a JUnit file's path (``.../backend-jax/...``)."""
    found = [name for name in BACKENDS if name in str(path)]
    if not found:
        raise SystemExit(f"{path}: name the backend in the path ({', '.join(BACKENDS)})")
    return found[-1]


def notebook_seconds(path: Path) -> tuple[str, dict[str, float], dict[str, int]]:
    """``(backend, {notebook: seconds}, {notebook: failures})`` from one JUnit file: the
    solved-notebook runs when it has any (the column is then "<backend> (solved)"), else
    nbval's cells."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise SystemExit(f"{path}: cannot read it as a JUnit XML file ({error})") from None
    solved_runs, cells = [], []  # (notebook, test case) pairs
    for case in root.iter("testcase"):
        name, solved = case.get("classname", ""), SOLVED_CASE.match(case.get("name", ""))
        if solved:
            solved_runs.append((solved.group(1), case))
        elif name.endswith(".ipynb"):
            cells.append((name.split(".", 1)[1].removesuffix(".ipynb"), case))
    seconds: dict[str, float] = defaultdict(float)
    failed: dict[str, int] = defaultdict(int)
    for notebook, case in solved_runs or cells:
        seconds[notebook] += float(case.get("time", 0))
        failed[notebook] += sum(1 for child in case if child.tag in ("failure", "error"))
    backend = backend_of(path) + (" (solved)" if solved_runs else "")
    return backend, dict(seconds), dict(failed)


def markdown(times: dict[str, dict[str, float]], failed: dict[str, dict[str, int]]) -> str:
    """A Markdown table: one row per notebook, one column per backend and kind of run (the
    backend's name, with "(solved)" for solved runs), a total row."""
    backends = list(times)
    notebooks = sorted({nb for per in times.values() for nb in per})
    lines = ["| notebook | " + " | ".join(backends) + " |", "|---" * (len(backends) + 1) + "|"]
    for notebook in notebooks:
        cells = []
        for backend in backends:
            value = times[backend].get(notebook)
            bad = failed[backend].get(notebook, 0)
            cell = "not run" if value is None else f"{value:.0f} s"
            cells.append(cell + (f" ({bad} failed)" if bad else ""))
        lines.append(f"| {notebook} | " + " | ".join(cells) + " |")
    totals = [f"{sum(times[b].values()) / 60:.1f} min" for b in backends]
    lines.append("| all | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("junit", nargs="+", type=Path, help="JUnit XML files of the runs")
    parser.add_argument("--out", type=Path, default=None, help="also write the times as JSON")
    args = parser.parse_args(argv)
    times: dict[str, dict[str, float]] = {}
    failed: dict[str, dict[str, int]] = {}
    for path in args.junit:
        backend, seconds, bad = notebook_seconds(path)
        times[backend], failed[backend] = seconds, bad
    print(markdown(times, failed))
    if args.out:
        payload = {b: {nb: round(s, 1) for nb, s in per.items()} for b, per in times.items()}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if any(any(per.values()) for per in failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
