"""The course's CNNs, built with backend-agnostic Keras 3 layers.

Every model takes CIFAR-10 images as they are kept in RAM, ``uint8`` of shape
``(32, 32, 3)``: scaling to ``[0, 1]`` (``Rescaling``) and augmentation are layers
inside the model, so they run on the accelerator and on every Keras backend,
and a saved ``.keras`` file needs no separate preprocessing code.

- ``build_baseline()``: the classic three-block CNN that notebook 02 builds by hand.
- ``build_recommended(...)``: the course's recipe model (batch norm, augmentation,
  dropout), with every remedy an explicit keyword so notebook 05 can switch them.

The output layer always computes in ``float32`` (``dtype="float32"``) so the
models stay numerically safe if mixed precision is switched on later.
"""

from __future__ import annotations

import math

import keras

from helpers import data


class ModelConfigError(ValueError):
    """A model option is out of range; the message says which values are accepted."""


def _inputs(name: str = "image"):
    return keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8", name=name)


def _rescale(x):
    return keras.layers.Rescaling(1.0 / 255, name="rescale")(x)


def build_baseline(name: str = "baseline"):
    """The classic CNN: Conv2D 32 → MaxPool → Conv2D 64 → MaxPool → Conv2D 128 → MaxPool →
    Flatten → Dense 128 (ReLU) → Dense 10 (softmax), 160,202 parameters.

    Convolutions are 3×3 with ReLU and no padding (``"valid"``), pools are 2×2, so
    the image shrinks 32 → 30 → 15 → 13 → 6 → 4 → 2. Input: uint8 images.
    """
    inputs = _inputs()
    x = _rescale(inputs)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(
        data.NUM_CLASSES, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def _check_fraction(option: str, value, upper: float = 0.9) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ModelConfigError(f"{option} must be a number, got {value!r}")
    if not 0 <= value <= upper:
        raise ModelConfigError(f"{option} must be between 0 and {upper}, got {value}")
    return float(value)


def _check_bool(option: str, value) -> bool:
    if not isinstance(value, bool):
        raise ModelConfigError(f"{option} must be True or False, got {value!r}")
    return value


def augmentation_layers(translate: float = 0.125):
    """The recipe's augmentation as a ``keras.Sequential``: a random horizontal flip and a
    random shift of up to ``translate`` of the image size (4 pixels by default), with the
    uncovered border filled by reflection. Active only while training."""
    _check_fraction("translate", translate, upper=0.5)
    layers = [keras.layers.RandomFlip("horizontal", name="flip")]
    if translate > 0:
        layers.append(
            keras.layers.RandomTranslation(translate, translate, fill_mode="reflect", name="shift")
        )
    return keras.Sequential(layers, name="augment")


def build_recommended(
    *,
    width: int = 32,
    convs_per_block: int = 1,
    batch_norm: bool = True,
    augment: bool = True,
    translate: float = 0.125,
    dropout: float = 0.0,
    l2: float = 0.0,
    head: str = "gap",
    pool_early: bool = False,
    name: str = "recommended",
):
    """The course's recipe model: three blocks of ``convs_per_block`` × (Conv2D 3×3 →
    BatchNorm → ReLU) followed by MaxPool, with ``width``, 2×``width`` and 4×``width``
    filters, then global average pooling, dropout and Dense 10 (softmax).

    Every remedy is a keyword so notebook 05 and the panel can switch it:

    - ``batch_norm``: batch normalisation after each convolution (convs then have no bias);
    - ``augment``: random flips and shifts (``augmentation_layers(translate)``) inside the model;
    - ``dropout``: dropout rate (0-0.9) before the classifier and, at half that rate,
      after each block (0 by default, as in the recipe; notebook 05 compares it);
    - ``l2``: L2 weight penalty on convolution and dense kernels (0 switches it off);
    - ``head``: ``"gap"`` (global average pooling, few parameters: the recipe) or
      ``"flatten"`` (Flatten → Dense 128 → ReLU, like the baseline: many parameters,
      which is what lets notebook 05's model memorise a small training set);
    - ``pool_early``: max-pool right after the first convolution of each block instead of
      after the last, so the block's other convolutions see a quarter of the pixels: with
      ``convs_per_block=2`` twice the depth for little more compute. This is the layout of
      David Page's ResNet-9 ("How to train your ResNet", 2018) and of airbench (Jordan,
      2024), used by the recipe (``training.RECIPE_MODEL``) and by notebook 07.

    Input: uint8 images; scaling and augmentation happen inside the model.
    """
    _check_architecture(width, convs_per_block, l2, head)
    options = {
        "batch_norm": _check_bool("batch_norm", batch_norm),
        "pool_early": _check_bool("pool_early", pool_early),
        "dropout": _check_fraction("dropout", dropout),
        "regularizer": keras.regularizers.L2(l2) if l2 > 0 else None,
    }
    inputs = _inputs()
    x = inputs
    if _check_bool("augment", augment):
        # Flip and shift before scaling: both only move uint8 pixels around.
        x = augmentation_layers(translate)(keras.ops.cast(x, "float32"))
    x = _rescale(x)
    for block, filters in enumerate((width, 2 * width, 4 * width), start=1):
        x = _block(x, block, filters, convs_per_block, **options)
    outputs = _head(x, head, options["dropout"], options["regularizer"])
    return keras.Model(inputs, outputs, name=name)


def _check_architecture(width, convs_per_block, l2, head) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or not 4 <= width <= 512:
        raise ModelConfigError(f"width must be an integer between 4 and 512, got {width!r}")
    if (
        isinstance(convs_per_block, bool)
        or not isinstance(convs_per_block, int)
        or not 1 <= convs_per_block <= 4
    ):
        raise ModelConfigError(f"convs_per_block must be 1, 2, 3 or 4, got {convs_per_block!r}")
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not 0 <= l2 <= 0.1:
        raise ModelConfigError(f"l2 must be a number between 0 and 0.1 (e.g. 5e-4), got {l2!r}")
    if head not in ("gap", "flatten"):
        raise ModelConfigError(f"head must be 'gap' or 'flatten', got {head!r}")


def _block(x, block, filters, convs, *, batch_norm, pool_early, dropout, regularizer):
    """One block of ``build_recommended``: ``convs`` × (Conv2D → BatchNorm → ReLU), max-pooling
    after the first convolution (``pool_early``) or the last, then dropout at half the rate."""
    for conv in range(1, convs + 1):
        tag = f"b{block}c{conv}"
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=not batch_norm,
            kernel_regularizer=regularizer,
            name=f"conv_{tag}",
        )(x)
        if pool_early and conv == 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{tag}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{tag}")(x)
    if not pool_early:
        x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout / 2, name=f"drop{block}")(x)
    return x


def _head(x, head, dropout, regularizer):
    """Global average pooling (or Flatten → Dense 128), dropout, Dense 10 (softmax)."""
    if head == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(
            128, activation="relu", kernel_regularizer=regularizer, name="dense"
        )(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="drop_head")(x)
    return keras.layers.Dense(
        data.NUM_CLASSES,
        activation="softmax",
        dtype="float32",
        kernel_regularizer=regularizer,
        name="predictions",
    )(x)
