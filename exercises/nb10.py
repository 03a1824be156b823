"""Exercises of notebook 10 (your own images)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from exercises import NOT_ATTEMPTED, exercise, is_number


def _duplicate_files(folder: Path) -> tuple[list[Path], set[frozenset[str]]]:
    """Files with known duplicates: (the paths, the groups of names that have equal bytes)."""
    contents = {
        "a.jpg": b"\xff\xd8 photo one",
        "b.jpg": b"\xff\xd8 photo two",
        "copy_of_a.jpg": b"\xff\xd8 photo one",
        "c.png": b"\x89PNG photo three",
        "also_c.png": b"\x89PNG photo three",
        "third_c.png": b"\x89PNG photo three",
        "d.jpg": b"\xff\xd8 photo one, longer",
    }
    paths = []
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    groups = {
        frozenset({"a.jpg", "copy_of_a.jpg"}),
        frozenset({"c.png", "also_c.png", "third_c.png"}),
    }
    return paths, groups


@exercise(
    "10.1",
    kind="code",
    title="find exact duplicates by hashing each file's bytes",
    solution="""
    import hashlib
    from collections import defaultdict


    def find_duplicates(paths):
        groups = defaultdict(list)
        for path in paths:
            with open(path, "rb") as f:
                groups[hashlib.sha256(f.read()).hexdigest()].append(path)
        return [group for group in groups.values() if len(group) > 1]
    """,
)
def _find_duplicates(find_duplicates):
    if not callable(find_duplicates):
        return "find_duplicates should be a function that takes a list of paths"
    with tempfile.TemporaryDirectory() as tmp:
        paths, wanted = _duplicate_files(Path(tmp))
        found = find_duplicates(list(paths))
    if found is None:
        return NOT_ATTEMPTED
    try:
        groups = {frozenset(Path(p).name for p in group) for group in found}
    except TypeError:
        return "return a list of groups, each group a list of paths: [[path1, path2], ...]"
    if any(len(group) < 2 for group in groups):
        return "keep only the groups of two or more files: a file alone is no duplicate"
    if groups == wanted:
        return None
    if any({"a.jpg", "d.jpg"} <= group for group in groups):
        return "d.jpg only starts like a.jpg: hash all of each file's bytes, not the first ones"
    if not groups:
        return "no group found: two files with the same SHA-256 of their bytes go together"
    return (
        f"the check's files have two groups of equal bytes, {sorted(map(sorted, wanted))}; "
        f"yours gave {sorted(map(sorted, groups))}: group by the hash of the whole file"
    )


@exercise(
    "10.2",
    kind="predict",
    title="the 'balanced' class weight of a rare class",
    solution="""
    # n_images / (n_classes * n_c): 1,000 images, 3 classes, 100 of class A.
    weight_a = (100 + 300 + 600) / (3 * 100)
    """,
)
def _balanced_weight(weight_a):
    if not is_number(weight_a):
        return "give one number, e.g. 1.5"
    right = 1000 / (3 * 100)
    if abs(weight_a - right) < 0.01:
        return None
    if abs(weight_a - 1000 / 100) < 0.01:
        return "divide by the number of classes too: n_images / (n_classes × n_A)"
    if abs(weight_a - 100 / 1000) < 0.01 or abs(weight_a - 3 * 100 / 1000) < 0.01:
        return "the rare class gets the large weight: n_images / (n_classes × n_A), not its inverse"
    if abs(weight_a - 600 / 100) < 0.01:
        return "the formula uses all images, not the largest class: n_images / (n_classes × n_A)"
    return "use the formula of the cell above: n_images / (n_classes × n_A), with n_A = 100"


@exercise(
    "10.3",
    kind="predict",
    title="trainable parameters of a new head on a frozen base",
    solution="""
    # Global average pooling: one number per channel; then Dense(n_classes): a weight per
    # channel and class, plus one bias per class. Dropout has no weights.
    trainable_params = mobile.output.shape[-1] * len(class_names) + len(class_names)
    """,
)
def _head_params(trainable_params, *, channels, n_classes):
    if not is_number(trainable_params):
        return "give one number (an int)"
    right = channels * n_classes + n_classes
    if trainable_params == right:
        return None
    if trainable_params == channels * n_classes:
        return "the Dense layer has one bias per class too"
    if trainable_params > 100_000:
        return "base.trainable = False: none of the backbone's weights are trainable"
    return (
        "only the Dense layer learns: global average pooling hands it one number per channel "
        "of the base's last layer; count its weights and biases"
    )


@exercise(
    "10.4",
    kind="experiment",
    title="a ten times higher learning rate for the head, judged on validation",
    solution="""
    config.set_seed(SEED)
    high_lr_model = for_training(build_classifier(mobile, None, "mobilenet_lr"), 1e-2)
    high_lr_model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=HEAD_EPOCHS,
        class_weight=class_weight,
        shuffle=False,
        verbose=0,
    )
    high_lr_is_better = bool(
        val_accuracy(high_lr_model) > comparison.loc["MobileNetV3Small", "validation accuracy"]
    )
    """,
)
def _high_lr(high_lr_model, high_lr_is_better, *, validation, reference):
    import keras

    from helpers import evaluation

    if not isinstance(high_lr_model, keras.Model):
        return "high_lr_model should be the model that for_training returns"
    optimizer = getattr(high_lr_model, "optimizer", None)
    if optimizer is None:
        return "wrap the classifier with for_training(...), which compiles it"
    rate = float(optimizer.learning_rate)
    if not np.isclose(rate, 1e-2):
        return f"its learning rate is {rate:g}: wrap it with for_training(..., learning_rate=1e-2)"
    if int(optimizer.iterations) == 0:
        return "train it first: fit it on train_ds for HEAD_EPOCHS epochs, as above"
    if not isinstance(high_lr_is_better, bool | np.bool_):
        return "high_lr_is_better should be True or False"
    x_val, y_val = validation
    score = evaluation.accuracy(y_val, evaluation.predict_proba(high_lr_model, x_val).argmax(1))
    if bool(high_lr_is_better) != (score > float(reference)):
        return (
            f"recomputed on the validation split, the model with learning rate 1e-2 scores "
            f"{score:.3f} and the one with 1e-3 {float(reference):.3f}: which is higher?"
        )
    return None
