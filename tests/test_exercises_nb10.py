"""Exercises of notebook 10: each solution passes, and typical wrong answers get their hint."""

import hashlib
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

import exercises

keras = pytest.importorskip("keras")


def solved(exercise_id, **context):
    """The names the registered solution of ``exercise_id`` defines, run in ``context``."""
    namespace = dict(context)
    exec(exercises.get(exercise_id).solution, namespace)
    return namespace


def _grouped_by(key):
    """A find_duplicates that groups files by ``key(bytes)``, keeping single files too."""

    def find_duplicates(paths):
        groups = defaultdict(list)
        for path in paths:
            with open(path, "rb") as f:
                groups[key(f.read())].append(path)
        return list(groups.values())

    return find_duplicates


def test_10_1_find_duplicates():
    assert exercises.verdict("10.1", solved("10.1")["find_duplicates"]) is None

    def placeholder(paths): ...

    assert exercises.verdict("10.1", placeholder) == exercises.NOT_ATTEMPTED
    singles_too = _grouped_by(lambda data: hashlib.sha256(data).hexdigest())
    assert "two or more" in exercises.verdict("10.1", singles_too)

    def first_bytes_only(paths):
        return [g for g in _grouped_by(lambda data: data[:12])(paths) if len(g) > 1]

    assert "all of each file's bytes" in exercises.verdict("10.1", first_bytes_only)
    assert "no group" in exercises.verdict("10.1", lambda paths: [])
    assert "function" in exercises.verdict("10.1", 42)
    assert "raised" in exercises.verdict("10.1", lambda paths: 1 / 0)


def test_10_2_balanced_class_weight():
    assert exercises.verdict("10.2", solved("10.2")["weight_a"]) is None
    assert exercises.verdict("10.2", 3.33) is None
    assert "number of classes" in exercises.verdict("10.2", 10)
    assert "inverse" in exercises.verdict("10.2", 0.3)
    assert "one number" in exercises.verdict("10.2", "3.33")
    assert exercises.verdict("10.2", ...) == exercises.NOT_ATTEMPTED


def test_10_3_head_parameters():
    context = {
        "mobile": SimpleNamespace(output=SimpleNamespace(shape=(None, 2, 2, 576))),
        "class_names": ["a", "b", "c", "d"],
    }
    answer = solved("10.3", **context)["trainable_params"]
    assert exercises.verdict("10.3", answer, channels=576, n_classes=4) is None
    assert answer == 576 * 4 + 4
    assert "bias" in exercises.verdict("10.3", 576 * 4, channels=576, n_classes=4)
    assert "trainable" in exercises.verdict("10.3", 939_120 + 2_308, channels=576, n_classes=4)
    assert "one number" in exercises.verdict("10.3", None, channels=576, n_classes=4)


def _classifier(learning_rate, train=True):
    """A tiny compiled model on 8x8 images, trained for one step (or not)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 8, 8, 3)).astype("uint8")
    y = np.arange(24) % 3
    if train:
        model.fit(x, y, epochs=1, verbose=0)
    return model, (x, y)


def test_10_4_higher_learning_rate_is_judged_on_the_validation_split():
    model, validation = _classifier(1e-2)
    score = float((model.predict(validation[0], verbose=0).argmax(1) == validation[1]).mean())
    for reference in (score - 0.05, score + 0.05):
        right = score > reference
        named = {"validation": validation, "reference": reference}
        assert exercises.verdict("10.4", model, right, **named) is None
        assert "which is higher" in exercises.verdict("10.4", model, not right, **named)
    named = {"validation": validation, "reference": 0.5}
    assert "learning_rate=1e-2" in exercises.verdict("10.4", _classifier(1e-3)[0], True, **named)
    untrained = _classifier(1e-2, train=False)[0]
    assert "train it first" in exercises.verdict("10.4", untrained, True, **named)
    assert "for_training" in exercises.verdict("10.4", "model", True, **named)
    assert "True or False" in exercises.verdict("10.4", model, "yes", **named)
    assert exercises.verdict("10.4", ..., ..., **named) == exercises.NOT_ATTEMPTED
