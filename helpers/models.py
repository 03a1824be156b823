"""The course's CNNs: ``build_baseline`` (notebook 02's classic CNN) and ``build_recommended``
(the recipe model, every remedy a keyword for notebook 05 and the panel).

Every model takes the uint8 ``(32, 32, 3)`` images kept in RAM: scaling (``Rescaling``) and
augmentation are layers inside it, so they run on the accelerator and on every backend, and
a saved ``.keras`` file needs no preprocessing code. The output layer computes in float32,
safe under mixed precision.
"""

from __future__ import annotations

import keras

from helpers import data


class ModelConfigError(ValueError):
    """A model option is out of range; the message says which values are accepted."""


def build_baseline(name: str = "baseline"):
    """The classic CNN: Conv2D 32 → MaxPool → Conv2D 64 → MaxPool → Conv2D 128 → MaxPool →
    Flatten → Dense 128 (ReLU) → Dense 10 (softmax), 160,202 parameters.

    Convolutions are 3×3 with ReLU and no padding (``"valid"``), pools are 2×2, so
    the image shrinks 32 → 30 → 15 → 13 → 6 → 4 → 2. Input: uint8 images.
    """
    inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(
        data.NUM_CLASSES, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def _check(option: str, value, ok, accepted: str, types=int | float) -> None:
    """Raise ``ModelConfigError`` unless ``value`` is one of ``types`` (not a bool) and
    ``ok(value)``; a NaN fails every ``ok``."""
    if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
        raise ModelConfigError(f"{option} must be {accepted}, got {value!r}")


def augmentation_layers(translate: float = 0.125):
    """The recipe's augmentation as a ``keras.Sequential``: a random horizontal flip and a
    random shift of up to ``translate`` of the image size (4 pixels by default), with the
    uncovered border filled by reflection. Active only while training."""
    _check("translate", translate, lambda v: 0 <= v <= 0.5, "a number between 0 and 0.5")
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
    BatchNorm → ReLU) and a MaxPool, with ``width``, 2×``width`` and 4×``width`` filters,
    then global average pooling, dropout and Dense 10 (softmax). Every remedy is a keyword:

    - ``batch_norm`` after each convolution (the convolutions then have no bias);
    - ``augment``: random flips and shifts (``augmentation_layers(translate)``);
    - ``dropout`` (0-0.9) before the classifier and, at half that rate, after each block;
    - ``l2``: L2 penalty on convolution and dense kernels (0: none);
    - ``head``: ``"gap"`` or ``"flatten"`` (Flatten → Dense 128, like the baseline: the many
      parameters that let notebook 05's model memorise a small training set);
    - ``pool_early``: pool after the first convolution of a block instead of the last, so the
      others see a quarter of the pixels: with ``convs_per_block=2`` twice the depth for
      little more compute (the layout of Page's ResNet-9, 2018, and airbench, 2024).

    Raises ``ModelConfigError`` for an option out of range.
    """
    _check("width", width, lambda v: 4 <= v <= 512, "an integer between 4 and 512", int)
    _check("convs_per_block", convs_per_block, lambda v: 1 <= v <= 4, "1, 2, 3 or 4", int)
    _check("l2", l2, lambda v: 0 <= v <= 0.1, "a number between 0 and 0.1 (e.g. 5e-4)")
    _check("dropout", dropout, lambda v: 0 <= v <= 0.9, "a number between 0 and 0.9")
    if head not in ("gap", "flatten"):
        raise ModelConfigError(f"head must be 'gap' or 'flatten', got {head!r}")
    for option, value in [
        ("batch_norm", batch_norm),
        ("augment", augment),
        ("pool_early", pool_early),
    ]:
        if not isinstance(value, bool):
            raise ModelConfigError(f"{option} must be True or False, got {value!r}")
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8", name="image")
    x = inputs
    if augment:
        # Flip and shift before scaling: both only move uint8 pixels around.
        x = augmentation_layers(translate)(keras.ops.cast(x, "float32"))
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(x)
    for block, filters in enumerate((width, 2 * width, 4 * width), start=1):
        x = _block(x, block, filters, convs_per_block, batch_norm, pool_early, dropout, regularizer)
    return keras.Model(inputs, _head(x, head, dropout, regularizer), name=name)


def _block(x, block, filters, convs, batch_norm, pool_early, dropout, regularizer):
    """One block of ``build_recommended``: ``convs`` × (Conv2D → BatchNorm → ReLU), max-pooling
    after the first convolution (``pool_early``) or the last, then dropout at half the rate."""
    options = {"padding": "same", "use_bias": not batch_norm, "kernel_regularizer": regularizer}
    for conv in range(1, convs + 1):
        tag = f"b{block}c{conv}"
        x = keras.layers.Conv2D(filters, 3, name=f"conv_{tag}", **options)(x)
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
