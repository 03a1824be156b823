"""Notebook 03's recipe in full mode on each Keras backend, one after the other, on the
same split: validation accuracy, test accuracy, training time and images per second.

    python benchmarks/backends.py                      # tensorflow jax torch, 10 epochs
    python benchmarks/backends.py --backends jax --epochs 2 --train-size 5000

Each backend runs in its own Python process (Keras picks its backend once, at import),
with the same seed, the same stratified 10% validation split and notebook 03's full-mode
recipe (``training.train_recipe``: ``models.build_recommended(**RECIPE_MODEL)``, AdamW,
warm-up then cosine decay, label smoothing, batch 128). Images per second counts the
training images of every epoch but the first over their time, so that one-off compilation
(XLA on JAX, tracing on TensorFlow) is reported apart, as ``first_epoch_seconds``. Writes
``benchmarks/results/backends-<machine>-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("tensorflow", "jax", "torch")
#: Notebook 03's full-mode epochs (``RECIPE_EPOCHS = config.pick(fast=2, full=10)``).
FULL_MODE_EPOCHS = 10


def train_one(args) -> dict:
    """Train the recipe on the backend this process was started with; its result row."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    import bench  # noqa: PLC0415 - after the backend is chosen by the environment
    import keras  # noqa: PLC0415

    from helpers import config, data, training  # noqa: PLC0415

    dataset = data.load_cifar10(args.data_dir, train_size=args.train_size, test_size=args.test_size)
    splits = bench.split(dataset)
    config.set_seed(config.DEFAULT_SEED)
    timer = bench.StepClock()
    start = time.perf_counter()
    result = training.train_recipe(
        splits.x_train, splits.y_train, epochs=args.epochs, callbacks=[timer], verbose=2
    )
    seconds = time.perf_counter() - start
    later = timer.epochs[1:] or timer.epochs
    return {
        "backend": keras.backend.backend(),
        "version": bench.machine_info()["versions"].get(keras.backend.backend()),
        "epochs": args.epochs,
        "val_accuracy": round(bench.accuracy(result.model, splits.x_val, splits.y_val), 4),
        "test_accuracy": round(bench.accuracy(result.model, splits.x_test, splits.y_test), 4),
        "train_seconds": round(seconds, 1),
        "first_epoch_seconds": round(timer.epochs[0], 1),
        "images_per_second": round(len(later) * len(splits.x_train) / sum(later), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "sizes": {"train": len(splits.x_train), "validation": len(splits.x_val)}
        | {"test": len(splits.x_test)},
    }


def run_backend(backend: str, argv: list[str]) -> dict:
    """Run ``train_one`` in a fresh process on ``backend``; its row, or the error."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, __file__, "--child", *argv]
    print(f"== {backend}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith("{")]
    print("\n".join(line for line in done.stdout.splitlines() if not line.startswith("{")))
    if done.returncode != 0 or not rows:
        return {"backend": backend, "error": f"exit status {done.returncode}"}
    row = json.loads(rows[-1])
    row["process_seconds"] = round(time.perf_counter() - start, 1)
    return row


def table(rows: list[dict]) -> str:
    """One line per backend; validation accuracy to compare by, test for the record."""
    head = f"{'backend':<11} {'val acc':>8} {'test acc':>8} {'seconds':>8} "
    head += f"{'1st epoch':>9} {'img/s':>7}"
    lines = [head, "-" * len(head)]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['backend']:<11} failed: {row['error']}")
            continue
        lines.append(
            f"{row['backend']:<11} {row['val_accuracy']:>8.2%} {row['test_accuracy']:>8.2%} "
            f"{row['train_seconds']:>8.0f} {row['first_epoch_seconds']:>9.0f} "
            f"{row['images_per_second']:>7.0f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--epochs", type=int, default=FULL_MODE_EPOCHS)
    parser.add_argument("--train-size", type=int, default=None, help="stratified slice")
    parser.add_argument("--test-size", type=int, default=None, help="stratified slice")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (or CIFAR10_DIR)")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: results/)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be 1 or more")
    if args.child:
        print(json.dumps(train_one(args)), flush=True)
        return 0
    passed = [f"--epochs={args.epochs}"]
    for name in ("train_size", "test_size", "data_dir"):
        if getattr(args, name) is not None:
            passed.append(f"--{name.replace('_', '-')}={getattr(args, name)}")
    rows = [run_backend(backend, passed) for backend in args.backends]
    print(table(rows))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench  # noqa: PLC0415 - the machine's description, on the default backend

    info = bench.machine_info()
    info.pop("backend")
    date = dt.date.today().isoformat()
    out = args.out or bench.RESULTS / f"backends-{bench.machine_slug(info)}-{date}.json"
    payload = {"machine": info, "date": date, "recipe": "notebook 03's recipe", "results": rows}
    if args.train_size or args.test_size:
        payload["note"] = "stratified slices of CIFAR-10, not full mode"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
