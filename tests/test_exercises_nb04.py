"""Exercises of notebook 04: each solution passes, and typical wrong answers get their hint."""

import numpy as np
import pytest

import exercises

keras = pytest.importorskip("keras")


def solved(exercise_id, **context):
    """The names the registered solution of ``exercise_id`` defines, run in ``context``."""
    namespace = dict(context)
    exec(exercises.get(exercise_id).solution, namespace)
    return namespace


def test_04_1_feature_shape():
    assert exercises.verdict("04.1", solved("04.1")["feature_shape_64"]) is None
    assert "four halvings" in exercises.verdict("04.1", (4, 4, 512))
    assert "block 5's filters" in exercises.verdict("04.1", (2, 2, 256))
    assert "batch" in exercises.verdict("04.1", (None, 2, 2, 512))
    assert exercises.verdict("04.1", ...) == exercises.NOT_ATTEMPTED


def test_04_2_trainable_parameters():
    assert exercises.verdict("04.2", solved("04.2")["trainable_params"]) is None
    assert "14.7 M" in exercises.verdict("04.2", 14_714_688 + 133_898)
    assert "bias" in exercises.verdict("04.2", 512 * 256 + 256 * 10)
    assert "one number" in exercises.verdict("04.2", "133898")


def _head(units, features=(1, 1, 512)):
    inputs = keras.Input(shape=features)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def trained_small_head():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1, 1, 512)).astype("float32")
    y = np.arange(40) % 10
    head = _head(64)
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    head.fit(x, y, epochs=1, verbose=0)
    score = float((head.predict(x, verbose=0).argmax(1) == y).mean())
    return head, (x, y), score


def test_04_3_small_head_is_judged_on_the_validation_split(trained_small_head):
    head, validation, score = trained_small_head
    for reference in (score - 0.05, score + 0.05):
        right = score > reference
        args = {"validation": validation, "reference": reference}
        assert exercises.verdict("04.3", head, right, **args) is None
        assert "which is higher" in exercises.verdict("04.3", head, not right, **args)
    assert "units=64" in exercises.verdict(
        "04.3", _head(256), True, validation=validation, reference=0.1
    )
    untrained = _head(64)
    assert "train it" in exercises.verdict(
        "04.3", untrained, True, validation=validation, reference=0.1
    )
    assert exercises.verdict("04.3", ..., ..., validation=validation, reference=0.1) == (
        exercises.NOT_ATTEMPTED
    )


def test_04_4_unfreeze_the_top_two_blocks():
    assert exercises.verdict("04.4", solved("04.4")["unfreeze_top_two_blocks"]) is None

    def placeholder(base): ...

    def frozen_base(base):  # forgets to make the base trainable again
        base.trainable = False
        for layer in base.layers:
            layer.trainable = layer.name.startswith(("block4", "block5"))

    def block5_only(base):
        base.trainable = True
        for layer in base.layers:
            layer.trainable = layer.name.startswith("block5")

    assert exercises.verdict("04.4", placeholder) == exercises.NOT_ATTEMPTED
    assert "make the base trainable" in exercises.verdict("04.4", frozen_base)
    assert "block4_conv1" in exercises.verdict("04.4", block5_only)


def test_04_4_a_function_that_forgets_base_trainable_gets_the_hint():
    # The check freezes its fresh base first, as phase 1 leaves it: only the layer flags
    # are not enough then.
    def layers_only(base):
        for layer in base.layers:
            layer.trainable = layer.name.startswith(("block4", "block5"))

    assert "make the base trainable" in exercises.verdict("04.4", layers_only)
