"""Why notebook 08 gives batch normalisation ``momentum=0.9``: its plain model at the
notebook's full-mode budget (3 epochs on a stratified 10,000-image slice, batch 128, AdamW
1e-3), with Keras's default momentum 0.99, with 0.9 and without batch normalisation.

    python benchmarks/batchnorm_momentum.py

For each variant: accuracy on the training batches as ``fit`` reports it (batch statistics),
accuracy on 5,000 training images and on the validation split in inference mode (moving
averages), and the training time. Writes
``benchmarks/results/batchnorm-momentum-<machine>-<date>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("COURSE_FAST", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
from keras import layers  # noqa: E402

from helpers import config, data, training  # noqa: E402

VARIANTS = {"momentum 0.99 (Keras default)": 0.99, "momentum 0.9": 0.9, "no batch norm": None}


def plain_model(momentum: float | None):
    """Notebook 08's plain model; ``momentum=None`` leaves batch normalisation out."""
    inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8")
    x = layers.RandomFlip("horizontal")(layers.Rescaling(1 / 255)(inputs))
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=momentum is None)(x)
        if momentum is not None:
            x = layers.BatchNormalization(momentum=momentum)(x)
        x = layers.MaxPooling2D(2)(layers.Activation("relu")(x))
    x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
    model = keras.Model(inputs, layers.Dense(data.NUM_CLASSES, activation="softmax")(x))
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    from memory import machine

    cifar = data.load_course_data()
    x_train, y_train, x_val, y_val = data.train_val_split(cifar.x_train, cifar.y_train, 0.1)
    x_small, y_small = data.stratified_subset(x_train, y_train, 10_000)
    rows = []
    for name, momentum in VARIANTS.items():
        keras.backend.clear_session()
        training.forget_traced_steps()
        config.set_seed()
        model = plain_model(momentum)
        start = time.perf_counter()
        history = model.fit(x_small, y_small, epochs=3, batch_size=128, verbose=0)
        row = {
            "variant": name,
            "fit_accuracy": round(history.history["accuracy"][-1], 4),
            "train_accuracy_inference": round(
                model.evaluate(x_small[:5000], y_small[:5000], verbose=0)[1], 4
            ),
            "val_accuracy": round(model.evaluate(x_val, y_val, verbose=0)[1], 4),
            "train_seconds": round(time.perf_counter() - start, 1),
        }
        print(row, flush=True)
        rows.append(row)
    info, slug = machine()
    date = dt.date.today().isoformat()
    out = Path(__file__).parent / "results" / f"batchnorm-momentum-{slug}-{date}.json"
    payload = {"machine": info, "date": date, "load_average": os.getloadavg(), "rows": rows}
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
