"""Peak memory and run time of each notebook's kernel, for Binder's 2 GiB limit.

    python benchmarks/memory.py                          # every notebook, full mode
    python benchmarks/memory.py --notebooks 00 01        # a subset (number or file name)
    python benchmarks/memory.py --mode fast --output /tmp/memory.json
    python benchmarks/memory.py --notebooks 05 --capture "table.round"   # keep a result table

Each notebook runs top to bottom in a fresh kernel (nbclient) in the chosen mode. While it
runs, a thread polls the resident memory (RSS) of the kernel's whole process tree with
psutil; at the end the kernel also reports its own high-water mark (``ru_maxrss``), which
catches spikes shorter than the polling interval. ``peak_rss_mb`` is the larger of the two.
Each row also lists the cells after which the kernel held the most new memory
(``top_cells``: index, ``grew_mb``, the cell's own peak, seconds, first line), which is where
to look when a notebook is over the limit.

The notebooks share a fresh, empty ``COURSE_ARTIFACTS`` folder for the whole invocation, so
nothing saved by earlier runs (checkpoints, models, feature caches) is reused, and a later
notebook sees what an earlier one of the same invocation saved, as a learner would
(``--keep-artifacts`` uses the usual folder instead). ``--capture TEXT`` keeps the text
outputs of every code cell whose source contains TEXT, in
``benchmarks/results/notebook-<name>-<mode>-<machine>-<date>.json``.

Binder restarts a kernel whose container goes above 2 GiB, so every row must stay under
``LIMIT_MB`` (2,048 MiB). The "MB" of the result files' keys (``peak_rss_mb``...) are
mebibytes (2**20 bytes, printed as MiB). The script exits with status 1 when a row goes
over ``LIMIT_MB``, or when a notebook fails. Binder has no GPU: on a machine with one, the
peaks are recorded (the GPU runtime adds its own host memory) but not held to the limit.
Rows are merged (by notebook and mode) into
``benchmarks/results/memory-<machine>-<date>.json``, so subsets add up to the full table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NOTEBOOKS = ROOT / "notebooks"
LIMIT_MB = 2048  # Binder's memory limit, 2 GiB, in MiB
POLL_S = 0.1
MB = 1024 * 1024  # a mebibyte: the "MB" of the result files
TOP_CELLS = 3

# Appended to the notebook in memory (never saved): the kernel's own peak RSS, in kB on Linux.
_PEAK_CELL = "import resource\nprint('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


class TreePeak(threading.Thread):
    """Poll the summed RSS of every descendant of this process (the kernel and its children)."""

    def __init__(self, interval: float = POLL_S):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self.window_peak = 0  # since the last ``new_window()``: one cell's peak
        self.last = 0  # the latest sample
        self._done = threading.Event()

    def sample(self) -> None:
        import psutil

        total = 0
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):  # ended between listing and reading
                total += child.memory_info().rss
        self.last = total
        self.peak = max(self.peak, total)
        self.window_peak = max(self.window_peak, total)

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def new_window(self) -> int:
        """Return the peak since the last call (sampling now, so that a cell shorter than the
        polling interval is seen too) and start a new window."""
        self.sample()
        peak, self.window_peak = self.window_peak, 0
        return peak

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def select(names: list[str] | None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The notebooks to run: all ``NN_*.ipynb`` in ``folder``, or those named by number,
    file name or path. An unknown name is an error that lists what exists."""
    available = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        if Path(name).is_file():
            chosen.append(Path(name).resolve())
            continue
        matches = [p for p in available if p.name == name or p.name.startswith(f"{name}_")]
        if not matches:
            known = ", ".join(p.name for p in available) or "none"
            raise SystemExit(f"no notebook {name!r} in {folder}; available: {known}")
        chosen.extend(matches)
    return chosen


def measure(path: Path, mode: str, timeout: int) -> tuple[dict, object]:
    """Run one notebook in a fresh kernel; return its row of the table and the executed
    notebook."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CELL))
    os.environ["COURSE_FAST"] = "1" if mode == "fast" else "0"
    poller = TreePeak()
    cells, started = [], {}

    def cell_start(cell, cell_index, **_):
        poller.new_window()
        started[cell_index] = (time.perf_counter(), poller.last)

    def cell_done(cell, cell_index, **_):
        first_line = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
        start_time, start_rss = started.get(cell_index, (time.perf_counter(), 0))
        peak = poller.new_window()
        cells.append(
            {
                "cell": cell_index,
                "peak_rss_mb": round(peak / MB, 1),
                "grew_mb": round((poller.last - start_rss) / MB, 1),
                "seconds": round(time.perf_counter() - start_time, 1),
                "source": first_line,
            }
        )

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": path.parent}},
        on_cell_start=cell_start,
        on_cell_executed=cell_done,
    )
    poller.start()
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:300]
    except TimeoutError as exc:
        error = f"timeout: {exc}"[:300]
    seconds = time.perf_counter() - start
    tree_peak = poller.stop()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    found = re.search(r"PEAK_KB (\d+)", printed)
    kernel_peak = int(found.group(1)) * 1024 if found else 0  # 0: a cell failed before
    row = {
        "notebook": path.name,
        "peak_rss_mb": round(max(tree_peak, kernel_peak) / MB, 1),
        "seconds": round(seconds, 1),
        "mode": mode,
        "tree_peak_rss_mb": round(tree_peak / MB, 1),
        "kernel_maxrss_mb": round(kernel_peak / MB, 1),
        "ok": error is None,
        "top_cells": sorted(cells, key=lambda c: -c["grew_mb"])[:TOP_CELLS],
    }
    if error:
        row["error"] = error
    nb.cells.pop()  # the peak cell is ours, not the notebook's
    return row, nb


def captured(nb, needles: list[str]) -> list[dict]:
    """The text outputs (stdout and plain-text results) of each code cell whose source
    contains one of ``needles``, and its HTML results (a styled table has no plain text)."""
    out = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not any(n in cell.source for n in needles):
            continue
        texts, html = [], []
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                texts.append(output.text)
            elif "data" in output and "text/plain" in output.data:
                texts.append(output.data["text/plain"])
                html.append(output.data.get("text/html", ""))
        row = {"cell": index, "source": cell.source, "output": "".join(texts)}
        if any(html):
            row["html"] = "".join(html)
        out.append(row)
    return out


def over_limit(row: dict, info: dict) -> bool:
    """Whether ``row`` breaks Binder's limit: its peak is over ``LIMIT_MB`` on a machine
    without a GPU (``info["gpu"]`` empty), the kind Binder gives."""
    return not info.get("gpu") and row["peak_rss_mb"] > LIMIT_MB


def machine() -> tuple[dict, str]:
    """Machine description and file-name slug, shared with benchmarks/bench.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench import machine_info, machine_slug

    info = machine_info()
    return info, machine_slug(info)


def write(path: Path, info: dict, date: str, rows: list[dict]) -> dict:
    """Merge ``rows`` into ``path`` (replacing rows of the same notebook and mode); ``date``
    and ``machine`` are those of the newest rows, each row keeps its own (``info``: the
    machine ``rows`` ran on). A failed row never replaces a measured one: a run that could
    not read the data loses no earlier figure."""
    old = json.loads(path.read_text()).get("rows", []) if path.is_file() else []
    measured = {(r["notebook"], r["mode"]) for r in old if r.get("ok", True)}
    for row in rows:
        if not row.get("ok", True) and (row["notebook"], row["mode"]) in measured:
            print(f"  {row['notebook']} failed: its earlier measurement in {path.name} is kept")
    rows = [
        {**row, "machine": row.get("machine", info)}
        for row in rows
        if row.get("ok", True) or (row["notebook"], row["mode"]) not in measured
    ]
    keys = {(r["notebook"], r["mode"]) for r in rows}
    merged = [r for r in old if (r["notebook"], r["mode"]) not in keys] + rows
    merged.sort(key=lambda r: (r["mode"], r["notebook"]))
    payload = {"machine": info, "date": date, "limit_mb": LIMIT_MB, "rows": merged}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="*", help="numbers or names (default: all)")
    parser.add_argument("--mode", choices=["full", "fast"], default="full")
    parser.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per cell")
    parser.add_argument("--output", type=Path, help="result file (default: benchmarks/results)")
    parser.add_argument("--notebook-dir", type=Path, default=NOTEBOOKS)
    parser.add_argument("--capture", action="append", default=[], metavar="TEXT")
    parser.add_argument("--keep-artifacts", action="store_true")
    args = parser.parse_args(argv)

    paths = select(args.notebooks, args.notebook_dir)
    info, slug = machine()
    date = dt.date.today().isoformat()
    out = args.output or RESULTS / f"memory-{slug}-{date}.json"
    command = "python benchmarks/memory.py " + " ".join(argv or sys.argv[1:])
    scratch = tempfile.TemporaryDirectory(prefix="course-artifacts-")
    if not args.keep_artifacts:
        os.environ["COURSE_ARTIFACTS"] = scratch.name
    rows = []
    for path in paths:
        print(f"{path.name} ({args.mode} mode) ...", flush=True)
        load_before = [round(x, 2) for x in os.getloadavg()]
        row, executed = measure(path, args.mode, args.timeout)
        # Each row says when, how and under what load it was measured: a merged table
        # holds rows from several runs.
        row.update(
            date=date,
            command=command,
            load_average_before=load_before,
            load_average_after=[round(x, 2) for x in os.getloadavg()],
        )
        print(f"  peak {row['peak_rss_mb']} MiB, {row['seconds']} s", row.get("error", ""))
        for cell in row["top_cells"]:
            print(
                f"    cell {cell['cell']}: +{cell['grew_mb']} MiB (peak {cell['peak_rss_mb']} MiB) "
                f"{cell['seconds']} s  {cell['source']}"
            )
        rows.append(row)
        kept = out.parent / f"notebook-{path.stem}-{args.mode}-{slug}-{date}.json"
        if args.capture and (row["ok"] or not kept.exists()):  # a failure keeps a success
            kept.write_text(
                json.dumps(
                    {
                        **{k: row[k] for k in ("notebook", "mode", "seconds", "peak_rss_mb")},
                        "date": date,
                        "machine": info,
                        "command": command,
                        "outputs": captured(executed, args.capture),
                    },
                    indent=1,
                )
                + "\n"
            )
            print(f"  outputs written to {kept}")
        # Written after each notebook, so a long run that is stopped keeps what it measured.
        write(out, info, date, rows)

    print(f"\n{'notebook':<28} {'mode':<5} {'peak MiB':>8} {'seconds':>8}")
    for row in rows:
        flag = "  OVER BINDER'S 2 GiB (2,048 MiB)" if over_limit(row, info) else ""
        flag += "  FAILED" if not row["ok"] else ""
        print(
            f"{row['notebook']:<28} {row['mode']:<5} {row['peak_rss_mb']:>8} "
            f"{row['seconds']:>8}{flag}"
        )
    print(f"written to {out}")
    bad = [r for r in rows if over_limit(r, info) or not r["ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
