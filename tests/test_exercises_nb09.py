"""Notebook 09's exercises: each reference solution passes and a typical mistake gets its hint.

Tiny models and random images only: no CIFAR-10, a few seconds in all.
"""

import keras
import numpy as np
import pytest
from keras import layers

import exercises
from helpers import data


def _solved(exercise_id: str, **namespace) -> dict:
    """Run the registered solution of ``exercise_id`` in ``namespace`` and return it."""
    namespace = {"keras": keras, "layers": layers, "data": data, "np": np, **namespace}
    exec(exercises.get(exercise_id).solution, namespace)
    return namespace


# --- 09.1: compression ratio ------------------------------------------------------------------


def test_09_1_solution_passes():
    answer = _solved("09.1", CODE_SIZE=64)["compression"]
    assert exercises.verdict("09.1", answer, 64) is None
    assert exercises.verdict("09.1", 48, 64) is None


@pytest.mark.parametrize(
    ("answer", "hint"), [(16, "colour channels"), (64 / 3072, "other way round"), (100, "divide")]
)
def test_09_1_wrong_answers_get_hints(answer, hint):
    assert hint in exercises.verdict("09.1", answer, 64)


# --- 09.2: a tiny bottleneck ------------------------------------------------------------------


def _autoencoder(code_size: int):
    """A tiny dense autoencoder on uint8 images, with a Dense code like the notebook's."""
    inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8")
    x = layers.Flatten()(layers.Rescaling(1 / 255)(inputs))
    x = layers.Dense(code_size)(x)
    x = layers.Dense(int(np.prod(data.IMAGE_SHAPE)), activation="sigmoid")(x)
    return keras.Model(inputs, layers.Reshape(data.IMAGE_SHAPE)(x))


def _pixel_mse(target, output):
    target = keras.ops.cast(target, "float32") / 255
    return keras.ops.mean(keras.ops.square(target - output), axis=(1, 2, 3))


def _train(model, x, epochs):
    model.compile(optimizer="adam", loss=_pixel_mse)
    model.fit(x, x, epochs=epochs, batch_size=8, verbose=0)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (16, *data.IMAGE_SHAPE), dtype="uint8")


def test_09_2_solution_passes(images):
    sweep_errors = {8: 0.5, 32: 0.4}  # far above any error of a sigmoid output: tiny is better
    namespace = _solved(
        "09.2",
        build_autoencoder=_autoencoder,
        train_autoencoder=_train,
        x_sweep=images,
        x_val=images,
        EPOCHS=1,
        sweep_errors=sweep_errors,
    )
    assert namespace["worse"] is False
    assert exercises.verdict("09.2", namespace["tiny"], images, sweep_errors, False) is None


def test_09_2_judges_by_the_learners_own_measurement(images):
    tiny = _autoencoder(2)
    _train(tiny, images, 1)
    error = tiny.evaluate(images, images, verbose=0)
    assert exercises.verdict("09.2", tiny, images, {8: error / 2}, True) is None
    hint = exercises.verdict("09.2", tiny, images, {8: error / 2}, False)
    assert "does not match your measurement" in hint


def test_09_2_typical_mistakes_get_hints(images):
    untrained = _autoencoder(2)
    assert "train it first" in exercises.verdict("09.2", untrained, images, {8: 0.1}, True)
    too_big = _autoencoder(16)
    assert "smaller than every size" in exercises.verdict("09.2", too_big, images, {8: 0.1}, True)
    assert "autoencoder itself" in exercises.verdict("09.2", 0.05, images, {8: 0.1}, True)
    tiny = _autoencoder(2)
    _train(tiny, images, 1)
    assert "True or" in exercises.verdict("09.2", tiny, images, {8: 0.1}, "yes")


# --- 09.3: the LSTM row reader ----------------------------------------------------------------


def test_09_3_solution_passes():
    lstm_reader = _solved("09.3")["lstm_reader"]
    assert exercises.verdict("09.3", lstm_reader) is None


def _reader(recurrent, shape=(32, 96), rescale=True):
    def build(units):
        inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8")
        x = layers.Rescaling(1 / 255)(inputs) if rescale else inputs
        x = recurrent(units)(layers.Reshape(shape)(x))
        return keras.Model(inputs, layers.Dense(data.NUM_CLASSES, activation="softmax")(x))

    return build


@pytest.mark.parametrize(
    ("build", "hint"),
    [
        (_reader(layers.GRU), "that is a GRU"),
        (_reader(layers.LSTM, shape=(1024, 3)), "32 rows of 96"),
        (_reader(layers.LSTM, rescale=False), "Rescaling"),
        (_reader(lambda units: layers.LSTM(8)), "function's argument"),
    ],
)
def test_09_3_typical_mistakes_get_hints(build, hint):
    assert hint in exercises.verdict("09.3", build)


def test_09_3_an_empty_function_is_not_attempted():
    def lstm_reader(units): ...

    assert exercises.verdict("09.3", lstm_reader) == exercises.NOT_ATTEMPTED


# --- 09.4: patches and attention --------------------------------------------------------------


def test_09_4_solution_passes():
    namespace = _solved("09.4")
    assert exercises.verdict("09.4", namespace["n_patches"], namespace["attention_entries"]) is None
    assert (namespace["n_patches"], namespace["attention_entries"]) == (16, 256)


@pytest.mark.parametrize(
    ("answers", "hint"),
    [
        ((4, 16), "4 rows of them"),
        ((64, 4096), "4×4 patches"),
        ((16, 16), "n × n"),
        ((16, 1024), "ONE head"),
        ((16, 32), "n_patches²"),
    ],
)
def test_09_4_wrong_answers_get_hints(answers, hint):
    assert hint in exercises.verdict("09.4", *answers)
