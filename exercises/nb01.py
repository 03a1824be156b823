"""Exercises of notebook 01 (Preprocessing): memory, a stratified split, augmentation."""

from __future__ import annotations

import numpy as np

from exercises import NOT_ATTEMPTED, exercise

TRAIN_IMAGES = 50_000
VALUES_PER_IMAGE = 32 * 32 * 3


@exercise(
    "01.1",
    kind="predict",
    title="bytes of the 50,000 training images as uint8 and as float32",
    solution="""
    uint8_bytes = 50_000 * 32 * 32 * 3  # one byte per value
    float32_bytes = 4 * uint8_bytes  # four bytes per value
    """,
)
def _memory(uint8_bytes, float32_bytes):
    right = TRAIN_IMAGES * VALUES_PER_IMAGE
    if uint8_bytes != right:
        if uint8_bytes == TRAIN_IMAGES * 32 * 32:
            return "uint8: each pixel has 3 colour values (red, green, blue), one byte each"
        if uint8_bytes == 60_000 * VALUES_PER_IMAGE:
            return "uint8: count the training set only (50,000 images), not the test set too"
        return "uint8: images x height x width x channels values, one byte each"
    if float32_bytes == 8 * right:
        return "float32: that is float64 (8 bytes per value); float32 takes 4"
    if float32_bytes != 4 * right:
        return "float32: the same number of values as uint8, 4 bytes each"
    return None


@exercise(
    "01.2",
    kind="code",
    title="a stratified 80/20 split with train_test_split",
    solution="""
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(
        cifar.x_train, cifar.y_train, test_size=0.2, stratify=cifar.y_train, random_state=0
    )
    """,
)
def _split(y_all, y_tr, y_va):
    y_all, y_tr, y_va = (np.asarray(y).ravel() for y in (y_all, y_tr, y_va))
    if len(y_tr) + len(y_va) != len(y_all):
        return f"the two parts hold {len(y_tr) + len(y_va)} labels, the data {len(y_all)}"
    if abs(len(y_va) - 0.2 * len(y_all)) > 1:
        return f"the validation part has {len(y_va)} of {len(y_all)} labels: ask for test_size=0.2"
    classes = np.unique(y_all)
    if not np.array_equal(
        np.bincount(y_tr, minlength=len(classes)) + np.bincount(y_va, minlength=len(classes)),
        np.bincount(y_all, minlength=len(classes)),
    ):
        return "the parts do not add up to the data, class by class: split x and y together"
    expected = np.bincount(y_all, minlength=len(classes)) * len(y_va) / len(y_all)
    if np.abs(np.bincount(y_va, minlength=len(classes)) - expected).max() > 1:
        return "some class is over- or under-represented in validation: pass stratify=y"
    return None


@exercise(
    "01.3",
    kind="code",
    title="an augmentation pipeline: horizontal flips and shifts of up to 10%",
    solution="""
    my_augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"),
        ]
    )
    """,
)
def _augment(pipeline):
    import keras

    if pipeline is None:
        return NOT_ATTEMPTED
    layers = list(getattr(pipeline, "layers", []))
    flips = [layer for layer in layers if isinstance(layer, keras.layers.RandomFlip)]
    if not flips:
        return "add a keras.layers.RandomFlip layer"
    if any(layer.mode != "horizontal" for layer in flips):
        return 'flip left-right only (RandomFlip("horizontal")): upside-down photos are rare'
    if not any(isinstance(layer, keras.layers.RandomTranslation) for layer in layers):
        return "add a keras.layers.RandomTranslation layer for the shifts"
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(pipeline(images, training=True))
    if out.shape != images.shape:
        return f"augmentation must keep the image shape {images.shape[1:]}, got {out.shape[1:]}"
    if out.dtype != np.float32:
        return f"the output should stay float32, got {out.dtype}"
    if np.array_equal(out, images):
        return "with training=True the images came out unchanged: is every layer random?"
    if not np.array_equal(keras.ops.convert_to_numpy(pipeline(images, training=False)), images):
        return "with training=False the images must pass through unchanged"
    return None
