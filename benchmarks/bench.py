"""Train the course's recipes on this machine, one after the other, with the same
wall-clock budget, and record test accuracy and speed.

    python benchmarks/bench.py --recipes baseline recommended --budget-seconds 600

Each recipe is stopped after the batch that passes the budget (``training.TimeBudget``),
then evaluated on the CIFAR-10 test set. The table printed at the end compares
every recipe with the first one; the rows are written (merged by recipe name) to
``benchmarks/results/<machine>-<date>.json``. Add a recipe with ``register(...)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Recipe:
    """A named way to train: ``train(x, y, budget_seconds, callbacks)`` returns a
    ``training.TrainingResult`` whose ``.model`` is then evaluated on the test set."""

    name: str
    description: str
    train: Callable


RECIPES: dict[str, Recipe] = {}


def register(name: str, description: str):
    """Decorator that adds a recipe to ``RECIPES`` (e.g. ``@register("capstone", "...")``)."""

    def add(train):
        RECIPES[name] = Recipe(name, description, train)
        return train

    return add


def _classic(build, *, epochs: int = 10, batch_size: int = 64, learning_rate: float = 1e-3):
    """Adam at a constant learning rate, no augmentation: how the tutorials train."""
    from helpers import training

    def train(x, y, budget_seconds, callbacks):
        model = training.compile_model(build(), optimizer="adam", learning_rate=learning_rate)
        return training.fit(
            model,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            callbacks=[*callbacks, training.TimeBudget(budget_seconds)],
            verbose=2,
        )

    return train


@register("tutorial", "TensorFlow CNN tutorial model (Conv 32-64-64, Dense 64), Adam, batch 64")
def _tutorial(x, y, budget_seconds, callbacks):
    from helpers import models

    return _classic(models.build_tutorial)(x, y, budget_seconds, callbacks)


@register("baseline", "classic CNN (Conv 32-64-128, Dense 128), Adam 1e-3, batch 64, 10 epochs")
def _baseline(x, y, budget_seconds, callbacks):
    from helpers import models

    return _classic(models.build_baseline)(x, y, budget_seconds, callbacks)


@register(
    "recommended",
    "course recipe: 6-conv BN CNN pooling early + flips in the model, AdamW, one-cycle on "
    "the budget, label smoothing 0.1",
)
def _recommended(x, y, budget_seconds, callbacks):
    from helpers import training

    return training.train_recipe(
        x, y, epochs=1000, budget_seconds=budget_seconds, callbacks=callbacks, verbose=2
    )


@register(
    "capstone",
    "capstone (notebook 07): whitened ResNet-ish net, SGD-Nesterov one-cycle on the budget, "
    "label smoothing 0.2, EMA, flip TTA; CPU-sized on a CPU",
)
def _capstone(x, y, budget_seconds, callbacks):
    from helpers import capstone

    return capstone.bench_train(x, y, budget_seconds, callbacks)


# --- measuring -------------------------------------------------------------------------------


def run_recipe(recipe: Recipe, dataset, budget_seconds: float) -> dict:
    """Train one recipe within the budget and return its result row."""
    from helpers import config

    config.set_seed(config.DEFAULT_SEED)
    start = time.perf_counter()
    result = recipe.train(dataset.x_train, dataset.y_train, budget_seconds, [])
    seconds = time.perf_counter() - start
    images = result.epochs_trained * len(dataset.x_train)
    _, accuracy = result.model.evaluate(dataset.x_test, dataset.y_test, batch_size=500, verbose=0)
    return {
        "recipe": recipe.name,
        "test_accuracy": round(float(accuracy), 4),
        "train_seconds": round(seconds, 1),
        "epochs": round(result.epochs_trained, 2),
        "images_per_second": round(images / seconds, 1),
    }


def machine_info() -> dict:
    """CPU model, cores, accelerator, Keras backend and library versions."""
    import keras
    import numpy as np

    from helpers import config

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.M)
        cpu = names[0].strip() if names else cpu
    kind, count = config.detect_accelerator()
    gpu = None
    if kind != "CPU":
        gpu = f"{kind} x{count}"
        try:
            import subprocess

            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
            gpu = out.splitlines()[0] + (f" x{count}" if count > 1 else "") if out else gpu
        except (OSError, subprocess.SubprocessError):
            pass
    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__}
    versions["numpy"] = np.__version__
    module = sys.modules.get(backend)
    if module is not None and hasattr(module, "__version__"):
        versions[backend] = module.__version__
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "backend": backend,
        "versions": versions,
    }


def machine_slug(info: dict) -> str:
    """A short file-name-safe name such as ``cpu2`` or ``nvidia-h100-80gb-hbm3``."""
    name = info["gpu"] or f"cpu{info['cores']}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_results(path: Path, info: dict, date: str, rows: list[dict]) -> dict:
    """Write ``rows`` to ``path``, replacing earlier rows of the same recipes."""
    old = json.loads(path.read_text()).get("results", []) if path.is_file() else []
    names = {row["recipe"] for row in rows}
    merged = [row for row in old if row["recipe"] not in names] + rows
    payload = {"machine": info, "date": date, "results": merged}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return payload


def table(rows: list[dict]) -> str:
    """The comparison table: each recipe against the first one."""
    first = rows[0]
    head = (
        f"{'recipe':<12} {'test acc':>8} {'error':>7} {'err/1st':>7} {'seconds':>8} "
        f"{'time/1st':>8} {'epochs':>7} {'img/s':>8}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        error = 1 - row["test_accuracy"]
        lines.append(
            f"{row['recipe']:<12} {row['test_accuracy']:>8.2%} {error:>7.2%} "
            f"{error / max(1e-9, 1 - first['test_accuracy']):>7.2f} {row['train_seconds']:>8.1f} "
            f"{row['train_seconds'] / first['train_seconds']:>8.2f} {row['epochs']:>7.2f} "
            f"{row['images_per_second']:>8.0f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=["baseline", "recommended"])
    parser.add_argument("--budget-seconds", type=float, default=600.0)
    parser.add_argument("--train-size", type=int, default=None, help="stratified slice")
    parser.add_argument("--test-size", type=int, default=None, help="stratified slice")
    parser.add_argument("--machine", default=None, help="name in the result file name")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: results/)")
    args = parser.parse_args(argv)
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
    if args.budget_seconds <= 0:
        parser.error("--budget-seconds must be positive")

    from helpers import data

    dataset = data.load_cifar10(train_size=args.train_size, test_size=args.test_size)
    info = machine_info()
    print(json.dumps(info), flush=True)
    print(f"{len(dataset.x_train)} training / {len(dataset.x_test)} test images", flush=True)
    rows = []
    for name in args.recipes:
        print(f"== {name}: {RECIPES[name].description}", flush=True)
        row = run_recipe(RECIPES[name], dataset, args.budget_seconds)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(table(rows))
    date = dt.date.today().isoformat()
    out = args.out or RESULTS / f"{args.machine or machine_slug(info)}-{date}.json"
    write_results(out, info, date, rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
