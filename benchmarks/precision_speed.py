"""Training speed of the capstone's two widths in float32 and in mixed_bfloat16.

    python benchmarks/precision_speed.py            # about 4 minutes on a 2-core CPU

Why: the bench trains the GPU widths in ``mixed_bfloat16`` on a CPU with bfloat16 matrix
units (``bench.cpu_multiplies_bfloat16``), because there it was faster; this script is the
measurement. Each recipe (``capstone.Recipe()``, widths 64/256/256, batch 512, and
``capstone.CPU_RECIPE``, 32/64/128, batch 128) trains five epochs on 6,144 random uint8
images under each policy; the first epoch compiles, and on a VM an epoch can stall, so the
row gives the median images per second of the other four. Rows go to
``results/precision-<machine>-<date>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

import bench  # sets the log level and the import path first
import keras
import numpy as np

from helpers import capstone

POLICIES = ("float32", "mixed_bfloat16")
IMAGES = 6144
EPOCHS = 5


def images_per_second(recipe, policy: str, x, y) -> list[float]:
    """Images per second of each epoch of ``recipe`` trained on ``x``, ``y`` under ``policy``
    (the fast path the bench trains the candidate with, ``bench.Candidate``)."""
    recipe = dataclasses.replace(recipe, epochs=EPOCHS)
    clock = bench.StepClock()
    capstone.fit(
        x, y, recipe, fast_path=bench.Candidate(recipe, policy).fast_path(), callbacks=[clock]
    )
    keras.backend.clear_session()
    return [round(len(x) / s, 1) for s in clock.epochs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="result file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (IMAGES, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, IMAGES)
    info = bench.machine_info()
    print(json.dumps(info), flush=True)
    rows = []
    for recipe in (capstone.Recipe(), capstone.CPU_RECIPE):
        for policy in POLICIES:
            per_epoch = images_per_second(recipe, policy, x, y)
            row = {
                "widths": list(recipe.widths),
                "batch_size": recipe.batch_size,
                "precision": policy,
                "images_per_second": round(float(np.median(per_epoch[1:])), 1),
                "per_epoch": per_epoch,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    date = dt.date.today().isoformat()
    out = args.out or bench.RESULTS / f"precision-{bench.machine_slug(info)}-{date}.json"
    out.write_text(json.dumps({"machine": info, "date": date, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
