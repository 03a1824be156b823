"""Exercises of notebook 08: each solution passes, a typical wrong answer gets its hint.

Tiny inputs only (no CIFAR-10): a residual block on a 16x16 input, two numbers, and a
two-layer model trained for one step on random images for the experiment's check.
"""

import keras
import keras_tuner as kt
import numpy as np
import pytest
from keras import layers

import exercises


def _solution_namespace(exercise_id: str, **names) -> dict:
    namespace = {"layers": layers, "keras": keras, **names}
    exec(exercises.get(exercise_id).solution, namespace)
    return namespace


# --- 08.1: a residual block that halves the image ---------------------------------------------


def test_08_1_solution_passes():
    residual_down = _solution_namespace("08.1")["residual_down"]
    assert exercises.verdict("08.1", residual_down) is None


def test_08_1_unanswered_is_not_attempted():
    def residual_down(x, filters): ...

    assert exercises.verdict("08.1", residual_down) == exercises.NOT_ATTEMPTED


def test_08_1_without_strides_gets_a_hint():
    def residual_down(x, filters):
        y = layers.Conv2D(filters, 3, padding="same")(x)
        shortcut = layers.Conv2D(filters, 1)(x)
        return layers.Add()([y, shortcut])

    assert "strides=2" in exercises.verdict("08.1", residual_down)


def test_08_1_without_addition_gets_a_hint():
    def residual_down(x, filters):
        return layers.Conv2D(filters, 3, strides=2, padding="same")(x)

    assert "Add()" in exercises.verdict("08.1", residual_down)


def test_08_1_an_error_becomes_a_hint():
    def residual_down(x, filters):
        y = layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        return layers.Add()([y, x])  # shapes differ: (8, 8, 32) and (16, 16, 16)

    assert "raised" in exercises.verdict("08.1", residual_down)


# --- 08.2: parameters of Conv2D and SeparableConv2D ---------------------------------------------


def test_08_2_solution_passes_and_matches_keras():
    answers = _solution_namespace("08.2")
    assert exercises.verdict("08.2", answers["n_conv"], answers["n_separable"]) is None
    inputs = keras.Input(shape=(8, 8, 32))
    conv = keras.Model(inputs, layers.Conv2D(64, 3)(inputs))
    separable = keras.Model(inputs, layers.SeparableConv2D(64, 3)(inputs))
    assert (conv.count_params(), separable.count_params()) == (
        answers["n_conv"],
        answers["n_separable"],
    )


@pytest.mark.parametrize(
    ("n_separable", "hint"),
    [
        (3 * 3 * 32 + 64, "pointwise"),
        (3 * 3 * 32 + 32 * 64, "bias"),
        (3 * 3 * 64 + 32 * 64 + 64, "INPUT channel"),
    ],
)
def test_08_2_typical_mistakes_get_their_hint(n_separable, hint):
    assert hint in exercises.verdict("08.2", 3 * 3 * 32 * 64 + 64, n_separable)


def test_08_2_conv_without_bias_gets_a_hint():
    assert "bias" in exercises.verdict("08.2", 3 * 3 * 32 * 64, 2400)


# --- 08.3: one hyperparameter changed, compared on validation ---------------------------------


@pytest.fixture(scope="module")
def experiment():
    """A best trial's hyperparameters, a tiny trained model and a tiny validation split."""
    best_hp = kt.HyperParameters()
    best_hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    best_hp.Int("depth", 1, 2, default=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 8, 8, 3), dtype="uint8")
    y = rng.integers(0, 10, 32)
    inputs = keras.Input(shape=(8, 8, 3), dtype="uint8")
    hidden = layers.Flatten()(layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    accuracy = float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y))
    return best_hp, model, (x, y), accuracy


def _one_change(best_hp, name="learning_rate", factor=0.5):
    my_hp = best_hp.copy()
    my_hp.values[name] = best_hp.get(name) * factor
    return my_hp


def test_08_3_an_honest_comparison_passes(experiment):
    best_hp, model, validation, accuracy = experiment
    my_hp = _one_change(best_hp)
    for best_score in (accuracy - 0.01, accuracy + 0.01):
        beats = accuracy > best_score
        assert (
            exercises.verdict("08.3", best_hp, my_hp, model, validation, best_score, beats) is None
        )


def test_08_3_a_wrong_conclusion_gets_the_two_scores(experiment):
    best_hp, model, validation, accuracy = experiment
    hint = exercises.verdict(
        "08.3", best_hp, _one_change(best_hp), model, validation, accuracy - 0.01, False
    )
    assert "compare the two again" in hint


def test_08_3_changing_two_hyperparameters_gets_a_hint(experiment):
    best_hp, model, validation, accuracy = experiment
    my_hp = _one_change(best_hp)
    my_hp.values["depth"] = 2
    hint = exercises.verdict("08.3", best_hp, my_hp, model, validation, accuracy, False)
    assert "change only one" in hint


def test_08_3_no_change_and_no_training_get_hints(experiment):
    best_hp, model, validation, accuracy = experiment
    hint = exercises.verdict("08.3", best_hp, best_hp.copy(), model, validation, accuracy, False)
    assert "change one of them" in hint
    untrained = keras.models.clone_model(model)
    untrained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hint = exercises.verdict(
        "08.3", best_hp, _one_change(best_hp), untrained, validation, accuracy, False
    )
    assert "not been trained" in hint


def test_08_3_unanswered_is_not_attempted(experiment):
    best_hp, _, validation, accuracy = experiment
    verdict = exercises.verdict("08.3", best_hp, best_hp.copy(), ..., validation, accuracy, ...)
    assert verdict == exercises.NOT_ATTEMPTED
