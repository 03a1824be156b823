"""Run one notebook top to bottom and record its wall time, the kernel's peak memory and
chosen outputs, with the machine's details.

    python benchmarks/notebook_run.py notebooks/05_overfitting.ipynb --capture "table.round"
    COURSE_FAST=1 python benchmarks/notebook_run.py notebooks/06_evaluation.ipynb

The notebook runs with ``jupyter nbconvert --execute`` in a fresh ``COURSE_ARTIFACTS``
folder (so nothing saved by earlier runs is reused; ``--keep-artifacts`` uses the normal
one). The peak resident memory (RSS) of the kernel process is sampled every 0.2 s with
psutil. ``--capture TEXT`` keeps the text outputs of every code cell whose source contains
TEXT. The result is written to ``benchmarks/results/notebook-<name>-<mode>-<date>.json``;
the load average before and after says how busy the machine was (timings are only
comparable on an idle machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))


def _peak_rss(proc: psutil.Process, stop: threading.Event, peak: dict) -> None:
    """Record the largest RSS seen of any descendant of ``proc`` (the kernel)."""
    while not stop.is_set():
        try:
            for child in proc.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                if rss > peak["kernel_rss"]:
                    peak["kernel_rss"] = rss
        except psutil.Error:
            pass
        stop.wait(0.2)


def _captured(nb, needles: list[str]) -> list[dict]:
    out = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not any(n in cell.source for n in needles):
            continue
        texts = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                texts.append(output.text)
            elif "data" in output and "text/plain" in output.data:
                texts.append(output.data["text/plain"])
        out.append({"cell": index, "source": cell.source, "output": "".join(texts)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--capture", action="append", default=[], metavar="TEXT")
    parser.add_argument("--keep-artifacts", action="store_true")
    parser.add_argument("--timeout", type=int, default=7200, help="per cell, seconds")
    args = parser.parse_args()

    from bench import machine_info

    from helpers import config

    env = dict(os.environ)
    scratch = tempfile.TemporaryDirectory(prefix="course-artifacts-")
    if not args.keep_artifacts:
        env["COURSE_ARTIFACTS"] = scratch.name
    executed = Path(scratch.name) / f"executed-{args.notebook.name}"
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        f"--ExecutePreprocessor.timeout={args.timeout}",
        str(args.notebook),
        "--output",
        str(executed),
    ]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    peak, stop = {"kernel_rss": 0}, threading.Event()
    sampler = threading.Thread(target=_peak_rss, args=(psutil.Process(proc.pid), stop, peak))
    sampler.start()
    _, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"the notebook failed (exit {proc.returncode}):\n{stderr[-3000:]}")

    nb = nbformat.read(executed, as_version=4)
    mode = config.current_mode().name
    today = dt.date.today().isoformat()
    result = {
        "notebook": args.notebook.name,
        "mode": mode,
        "date": today,
        "machine": machine_info(),
        "wall_seconds": round(seconds, 1),
        "kernel_peak_rss_mb": round(peak["kernel_rss"] / 2**20, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(["python", "benchmarks/notebook_run.py", *sys.argv[1:]]),
        "outputs": _captured(nb, args.capture),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"notebook-{args.notebook.stem}-{mode}-{today}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "outputs"}, indent=1))
    for item in result["outputs"]:
        print(item["output"])
    print("written to", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
