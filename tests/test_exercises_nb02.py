"""Exercises of notebook 02: the solutions pass, typical wrong answers get their hint."""

import keras
import numpy as np
from keras import layers

from exercises import verdict


def test_conv_output_shape_and_parameters():
    assert verdict("02.1", (14, 14, 16), 5 * 5 * 3 * 16 + 16) is None
    assert 'padding="same"' in verdict("02.1", (16, 16, 16), 1216)
    assert "strides=1" in verdict("02.1", (28, 28, 16), 1216)
    assert "bias" in verdict("02.1", (14, 14, 16), 5 * 5 * 3 * 16)
    assert "all 3 input channels" in verdict("02.1", (14, 14, 16), 5 * 5 * 16 + 16)


def test_multiply_adds_of_conv3():
    assert verdict("02.2", 4 * 4 * 128 * 3 * 3 * 64) == None  # noqa: E711
    assert "parameter count" in verdict("02.2", 3 * 3 * 64 * 128 + 128)
    assert "not its 6 x 6 input" in verdict("02.2", 6 * 6 * 128 * 3 * 3 * 64)


def test_strided_stack():
    right = keras.Sequential(
        [
            layers.Conv2D(32, 3, strides=2, padding="same"),
            layers.Conv2D(64, 3, strides=2, padding="same"),
        ]
    )
    assert verdict("02.3", right) is None
    valid = keras.Sequential([layers.Conv2D(32, 3, strides=2), layers.Conv2D(64, 3, strides=2)])
    assert 'padding="same"' in verdict("02.3", valid)
    pooled = keras.Sequential([layers.Conv2D(64, 3, padding="same"), layers.MaxPooling2D(4)])
    assert "Conv2D layers here" in verdict("02.3", pooled)


def _tiny_cnn(filters):
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, 3, padding="same", activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(x))
    return keras.Model(inputs, outputs)


class _History:
    def __init__(self, val_accuracy):
        self.history = {"val_accuracy": val_accuracy}


def test_half_the_filters_experiment():
    small, baseline = _tiny_cnn((16, 32, 64)), _tiny_cnn((32, 64, 128))
    fraction = 1 - small.count_params() / baseline.count_params()
    small_history, baseline_history = _History([0.20, 0.30]), _History([0.25, 0.35])
    args = (small, small_history, baseline, baseline_history)
    assert verdict("02.4", *args, fraction, False) is None
    assert "compare the last val_accuracy" in verdict("02.4", *args, fraction, True)
    assert "1 - small.count_params()" in verdict("02.4", *args, 0.5, False)
    assert "16, 32 and 64" in verdict("02.4", baseline, *args[1:], fraction, False)
    short = _History([0.3])
    assert "as many epochs" in verdict("02.4", small, short, baseline, baseline_history, 0, 0)
    x = np.zeros((1, 8, 8, 3), "float32")
    assert small(x).shape == (1, 10)
