"""Exercises of notebook 05: each solution passes, and typical wrong answers get their hint."""

from types import SimpleNamespace

import numpy as np
import pytest

import exercises
from helpers import data, evaluation

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


def _constant(label, dropout, history_gap):
    """A result whose model always predicts ``label`` and whose history logs ``history_gap``."""
    stack = [layers.Flatten()] + ([layers.Dropout(dropout)] if dropout else [])
    model = _model(*stack, layers.Dense(10, activation="softmax"))
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), 10.0 * np.eye(10)[label]])
    history = [{"epoch": 1, "accuracy": 0.5 + history_gap, "val_accuracy": 0.5}]
    return SimpleNamespace(model=model, history=history)


#: Labels of tiny "training" and "validation" sets: a model that always answers class c
#: scores the share of c in each, so its gap is share(train) - share(validation):
#: class 0: 0.6 - 0.3 = +0.3, class 1: 0.1 - 0.5 = -0.4, class 2: 0.3 - 0.2 = +0.1.
Y_TRAIN = np.array([0] * 6 + [1] * 1 + [2] * 3)
Y_VAL = np.array([0] * 3 + [1] * 5 + [2] * 2)
DATA = {
    "train": (np.zeros((10, *data.IMAGE_SHAPE), "float32"), Y_TRAIN),
    "validation": (np.zeros((10, *data.IMAGE_SHAPE), "float32"), Y_VAL),
}


def test_05_4_the_gap_is_measured_in_inference_mode_not_read_from_the_histories():
    plain = _constant(2, 0, history_gap=0.0)  # fair gap +0.1
    # the histories say the opposite of the fair gaps (dropout on lowers the logged accuracy)
    smaller = _constant(1, 0.5, history_gap=0.3)  # fair gap -0.4
    larger = _constant(0, 0.5, history_gap=-0.3)  # fair gap +0.3
    assert exercises.verdict("05.4", smaller, True, baseline=plain, **DATA) is None
    assert exercises.verdict("05.4", larger, False, baseline=plain, **DATA) is None
    hint = exercises.verdict("05.4", smaller, False, baseline=plain, **DATA)
    assert "which is smaller" in hint and "inference mode" in hint
    assert "dropout=0.5" in exercises.verdict(
        "05.4", _constant(1, 0.3, 0.0), True, baseline=plain, **DATA
    )
    assert "train=(x_small, y_small)" in exercises.verdict("05.4", smaller, True, baseline=plain)
    namespace = solved(
        "05.4",
        train_variant=lambda label, **kw: smaller,
        plain=plain,
        evaluation=evaluation,
        x_small=DATA["train"][0],
        y_small=Y_TRAIN,
        x_val=DATA["validation"][0],
        y_val=Y_VAL,
    )
    verdict = exercises.verdict(
        "05.4", namespace["heavy_dropout"], namespace["smaller_gap"], baseline=plain, **DATA
    )
    assert verdict is None
    assert namespace["smaller_gap"] is True
