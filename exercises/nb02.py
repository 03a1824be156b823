"""Exercises of notebook 02 (Building a CNN): shapes, parameters, multiply-adds, filters."""

from __future__ import annotations

import numpy as np

from exercises import NOT_ATTEMPTED, exercise


@exercise(
    "02.1",
    kind="predict",
    title='output shape and parameters of Conv2D(16, 5, strides=2, padding="valid") on 32x32x3',
    solution="""
    size = (32 - 5) // 2 + 1  # valid padding: floor((H - K) / S) + 1 = 14
    out_shape = (size, size, 16)
    n_params = 5 * 5 * 3 * 16 + 16  # a weight per position and input channel, a bias per filter
    """,
)
def _conv_shape(out_shape, n_params):
    shape = tuple(int(n) for n in out_shape)
    if len(shape) != 3:
        return "give (height, width, channels), e.g. (30, 30, 8)"
    if shape[2] != 16:
        return "the number of output channels is the number of filters"
    if shape[:2] == (16, 16):
        return 'that is padding="same" (ceil(H / S)); with "valid" use floor((H - K) / S) + 1'
    if shape[:2] == (28, 28):
        return "that is strides=1; a stride of 2 divides the positions by about two"
    if shape[:2] != (14, 14):
        return "height and width: floor((32 - 5) / 2) + 1"
    if n_params == 5 * 5 * 3 * 16:
        return "the weights are right; add one bias per filter"
    if n_params == 5 * 5 * 16 + 16:
        return "each filter looks at all 3 input channels: 5 x 5 x 3 weights per filter"
    if n_params != 5 * 5 * 3 * 16 + 16:
        return "parameters: K x K x C_in x C_out + C_out (strides and padding do not change it)"
    return None


@exercise(
    "02.2",
    kind="predict",
    title="multiply-adds of the baseline's conv3 (64 -> 128 channels, 4x4 output)",
    solution="""
    conv3_macs = 4 * 4 * 128 * (3 * 3 * 64)  # output values x multiply-adds per output value
    """,
)
def _macs(conv3_macs):
    right = 4 * 4 * 128 * 3 * 3 * 64
    if conv3_macs == right:
        return None
    if conv3_macs == 3 * 3 * 64 * 128 + 128 or conv3_macs == 3 * 3 * 64 * 128:
        return "that is the parameter count; every weight is used once per output position (4 x 4)"
    if conv3_macs == 6 * 6 * 128 * 3 * 3 * 64:
        return "the convolution's output is 4 x 4 (6 - 3 + 1), not its 6 x 6 input"
    if conv3_macs == 4 * 4 * 128 * 3 * 3:
        return "each output value sums over all 64 input channels too"
    return "output values (4 x 4 x 128) times the multiply-adds per value (3 x 3 x 64)"


@exercise(
    "02.3",
    kind="code",
    title='a stack of 3x3 strided convolutions from 32x32x3 to 8x8x64, padding="same"',
    solution="""
    stack = keras.Sequential(
        [
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        ]
    )
    """,
)
def _stack(stack):
    import keras

    if stack is None:
        return NOT_ATTEMPTED
    layers = list(getattr(stack, "layers", []))
    if not layers or not all(isinstance(layer, keras.layers.Conv2D) for layer in layers):
        return "use only layers.Conv2D layers here (no pooling): strides do the shrinking"
    out = stack(np.zeros((2, 32, 32, 3), dtype="float32"))
    shape = tuple(int(n) for n in out.shape[1:])
    if shape == (8, 8, 64):
        return None
    if any(layer.padding != "same" for layer in layers):
        return f'got {shape}: with padding="same" a stride of 2 halves the size exactly'
    if shape[2] != 64:
        return f"got {shape}: the last convolution needs 64 filters"
    return f"got {shape}: each convolution with strides=2 halves height and width (32 -> 16 -> 8)"


@exercise(
    "02.4",
    kind="experiment",
    title="half the filters: parameters and validation accuracy against the baseline",
    solution="""
    small = build_cnn(filters=(16, 32, 64))
    small.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    small_history = small.fit(
        x_train, y_train, validation_data=(x_val, y_val), epochs=EPOCHS, batch_size=64, verbose=0
    )
    fewer_params_fraction = 1 - small.count_params() / model.count_params()
    small_is_better = (
        small_history.history["val_accuracy"][-1] > history.history["val_accuracy"][-1]
    )
    """,
)
def _half_filters(
    small, small_history, baseline, baseline_history, fewer_params_fraction, small_is_better
):
    import keras

    convs = [layer for layer in small.layers if isinstance(layer, keras.layers.Conv2D)]
    if [layer.filters for layer in convs] != [16, 32, 64]:
        return "build the model with half the filters: 16, 32 and 64"
    if "val_accuracy" not in small_history.history:
        return "train it with validation_data=(x_val, y_val) and metrics=['accuracy']"
    if len(small_history.history["val_accuracy"]) != len(baseline_history.history["val_accuracy"]):
        return "train for as many epochs as the baseline, so the comparison is fair"
    fraction = 1 - small.count_params() / baseline.count_params()
    if abs(fewer_params_fraction - fraction) > 0.01:
        return "fewer_params_fraction: 1 - small.count_params() / model.count_params()"
    better = (
        small_history.history["val_accuracy"][-1] > baseline_history.history["val_accuracy"][-1]
    )
    if bool(small_is_better) != better:
        return "small_is_better: compare the last val_accuracy of the two histories"
    return None
