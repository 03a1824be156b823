"""VGG16 feature extraction and head training on this machine (notebook 04's numbers).

    python benchmarks/bench_transfer.py                      # every input size offered
    python benchmarks/bench_transfer.py --sizes 32 64 --repeats 5

Measures, for each input size in ``helpers.transfer.INPUT_SIZES``:

- **feature extraction throughput**: images per second through the frozen VGG16 base
  (resizing and preprocessing included), ``predict`` after a one-batch warm-up;
- **head training speed-up**: seconds for one epoch of a fresh Flatten head trained
  through the frozen base versus on cached features (``transfer.time_head_training``),
  for the sizes given with ``--speedup-sizes``.

The images are random uint8 CIFAR-sized images (the speed of a convolution does not depend
on the pixel values) and VGG16 has random weights (same reason), so no download is needed.
Each figure is the median of ``--repeats`` runs; the load average before and after says how
busy the machine was. Results go to ``benchmarks/results/transfer-<machine>-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

#: Images timed per size by default: fewer at the big sizes, where one image costs more.
DEFAULT_IMAGES = {32: 512, 64: 256, 128: 64, 224: 32}


def extraction_throughput(size: int, images, repeats: int, batch_size: int) -> dict:
    """Images per second through the frozen base at ``size`` px (median of ``repeats``)."""
    from helpers import transfer

    backbone = transfer.build_backbone(size, weights=None)
    backbone.extractor.predict(images[:batch_size], batch_size=batch_size, verbose=0)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        backbone.extractor.predict(images, batch_size=batch_size, verbose=0)
        rates.append(len(images) / (time.perf_counter() - start))
    return {
        "input_size": size,
        "images": len(images),
        "batch_size": batch_size,
        "images_per_second_median": round(statistics.median(rates), 2),
        "images_per_second_all": [round(r, 2) for r in rates],
        "gflops_per_image": round(transfer.conv_flops(backbone.model) / 1e9, 3),
    }


def head_speedup(size: int, images, labels, repeats: int, batch_size: int) -> dict:
    """One epoch of head training through the frozen base vs on cached features."""
    from helpers import transfer

    backbone = transfer.build_backbone(size, weights=None)
    start = time.perf_counter()
    features = backbone.extractor.predict(images, batch_size=batch_size, verbose=0)
    extraction = time.perf_counter() - start
    runs = [
        transfer.time_head_training(backbone, images, labels, features, batch_size=batch_size)
        for _ in range(repeats)
    ]
    through = statistics.median(r["through_base_s"] for r in runs)
    cached = statistics.median(r["cached_s"] for r in runs)
    return {
        "input_size": size,
        "images": len(images),
        "batch_size": batch_size,
        "feature_extraction_s": round(extraction, 3),
        "epoch_through_frozen_base_s_median": round(through, 3),
        "epoch_on_cached_features_s_median": round(cached, 4),
        "speedup_per_epoch": round(through / cached, 1),
        "runs": [
            {k: round(v, 4) for k, v in r.items() if k.endswith("_s") or k == "speedup"}
            for r in runs
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--speedup-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--images", type=int, default=None, help="per size (default: scaled)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    from bench import machine_info, machine_slug

    from helpers import config, data, transfer

    config.set_seed()
    sizes = args.sizes or list(transfer.INPUT_SIZES)
    info = machine_info()
    date = dt.date.today().isoformat()
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)

    def batch(size: int):
        n = args.images or DEFAULT_IMAGES.get(size, 32)
        x = rng.integers(0, 256, size=(n, *data.IMAGE_SHAPE), dtype=np.uint8)
        return x, np.arange(n) % data.NUM_CLASSES

    extraction = []
    for size in sizes:
        row = extraction_throughput(size, batch(size)[0], args.repeats, args.batch_size)
        extraction.append(row)
        print(
            f"{size:>4} px: {row['images_per_second_median']:8.1f} images/s "
            f"({row['gflops_per_image']:.2f} GFLOPs/image, {row['images']} images)",
            flush=True,
        )
    speedups = []
    for size in args.speedup_sizes:
        row = head_speedup(size, *batch(size), args.repeats, args.batch_size)
        speedups.append(row)
        print(
            f"{size:>4} px: one epoch through the frozen base "
            f"{row['epoch_through_frozen_base_s_median']:.2f} s, on cached features "
            f"{row['epoch_on_cached_features_s_median']:.3f} s -> "
            f"{row['speedup_per_epoch']:.0f}x ({row['images']} images)",
            flush=True,
        )
    payload = {
        "benchmark": "transfer (VGG16 feature extraction and head training)",
        "date": date,
        "machine": info,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "data": "random uint8 images (32x32x3), VGG16 with random weights",
        "command": "python benchmarks/bench_transfer.py " + " ".join(sys.argv[1:]),
        "feature_extraction": extraction,
        "head_training": speedups,
    }
    path = args.output or RESULTS / f"transfer-{machine_slug(info)}-{date}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
