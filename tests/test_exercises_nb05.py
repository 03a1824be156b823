"""Exercises of notebook 05: each solution passes, and typical wrong answers get their hint."""

from types import SimpleNamespace

import pytest

import exercises
from helpers import data

keras = pytest.importorskip("keras")
layers = keras.layers


def solved(exercise_id, **context):
    """The names the registered solution of ``exercise_id`` defines, run in ``context``."""
    namespace = {"keras": keras, "layers": layers, "data": data, **context}
    exec(exercises.get(exercise_id).solution, namespace)
    return namespace


def test_05_1_l2_penalises_the_kernel_only():
    assert exercises.verdict("05.1", solved("05.1")["penalised"]) is None
    assert "biases" in exercises.verdict("05.1", 2_048 * 128 + 128)
    assert exercises.verdict("05.1", ...) == exercises.NOT_ATTEMPTED


def test_05_2_dropout_at_inference_and_in_training():
    answer = solved("05.2")
    assert exercises.verdict("05.2", answer["at_inference"], answer["kept_in_training"]) is None
    assert "switches nothing off" in exercises.verdict("05.2", [1, 0, 1, 0], 2.0)
    assert "no scaling" in exercises.verdict("05.2", [0.5] * 4, 2.0)
    assert "inverted dropout" in exercises.verdict("05.2", [1] * 4, 1.0)


def _model(*stack):
    return keras.Sequential([keras.Input(shape=data.IMAGE_SHAPE), *stack])


def test_05_3_layer_order_is_checked():
    assert exercises.verdict("05.3", solved("05.3")["small_model"]) is None
    bn_after_relu = _model(
        layers.Conv2D(16, 3, padding="same"),
        layers.Activation("relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    )
    assert "between the convolution and its ReLU" in exercises.verdict("05.3", bn_after_relu)
    no_dropout = _model(
        layers.Conv2D(16, 3, padding="same"),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    )
    assert "no Dropout" in exercises.verdict("05.3", no_dropout)
    dropout_first = _model(
        layers.Conv2D(16, 3, padding="same"),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.MaxPooling2D(),
        layers.Dropout(0.5),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    )
    assert "after Flatten" in exercises.verdict("05.3", dropout_first)


def _result(accuracy, val_accuracy, dropout):
    stack = [layers.Flatten(), layers.Dropout(dropout), layers.Dense(10)] if dropout else []
    model = _model(*(stack or [layers.Flatten(), layers.Dense(10)]))
    history = [{"epoch": 1, "accuracy": accuracy, "val_accuracy": val_accuracy}]
    return SimpleNamespace(model=model, history=history)


def test_05_4_the_gap_is_recomputed_from_the_histories():
    plain = _result(0.9, 0.5, 0)
    smaller = _result(0.7, 0.55, 0.5)
    larger = _result(0.95, 0.5, 0.5)
    assert exercises.verdict("05.4", smaller, True, baseline=plain) is None
    assert exercises.verdict("05.4", larger, False, baseline=plain) is None
    assert "which is smaller" in exercises.verdict("05.4", smaller, False, baseline=plain)
    assert "dropout=0.5" in exercises.verdict("05.4", _result(0.7, 0.5, 0.3), True, baseline=plain)
    namespace = solved("05.4", train_variant=lambda label, **kw: smaller, plain=plain)
    verdict = exercises.verdict(
        "05.4", namespace["heavy_dropout"], namespace["smaller_gap"], baseline=plain
    )
    assert verdict is None
