"""Checks of notebook 09, "Beyond the CNN": an autoencoder's compression ratio, a bottleneck
experiment, an LSTM that reads rows, and the patches and attention of a vision transformer."""

from __future__ import annotations

import numpy as np

from exercises import NOT_ATTEMPTED, exercise

IMAGE_VALUES = 32 * 32 * 3


@exercise(
    "09.1",
    kind="predict",
    title="the compression ratio of an autoencoder's bottleneck",
    solution="""
compression = 32 * 32 * 3 / CODE_SIZE  # numbers in the image / numbers in the code
""",
)
def _compression(compression, code_size):
    right = IMAGE_VALUES / code_size
    if np.isclose(compression, right, rtol=0.01):
        return None
    if np.isclose(compression, 32 * 32 / code_size, rtol=0.01):
        return "count the colour channels too: an image holds 32 × 32 × 3 numbers"
    if np.isclose(compression, code_size / IMAGE_VALUES, rtol=0.01):
        return "the other way round: how many image numbers per code number?"
    return "divide the numbers in one image (height × width × channels) by the code size"


def _all_layers(model):
    """The layers of ``model``, with the layers of the models nested in it."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_all_layers(layer))
    return found


def _bottleneck(model) -> int | None:
    """The size of the narrowest Dense layer of an autoencoder: its code."""
    import keras

    sizes = [layer.units for layer in _all_layers(model) if isinstance(layer, keras.layers.Dense)]
    return min(sizes) if sizes else None


def _reconstruction_error(model, images, chunk: int = 500) -> float:
    """Mean squared error per pixel between the uint8 ``images`` scaled to [0, 1] and the
    model's output, computed a chunk at a time."""
    total = 0.0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk]
        output = np.asarray(model.predict(block, batch_size=256, verbose=0), dtype="float64")
        total += float(np.sum((block / 255.0 - output) ** 2))
    return total / images.size


@exercise(
    "09.2",
    kind="experiment",
    title="a bottleneck of 2 numbers against the smallest code of the sweep",
    solution="""
tiny = build_autoencoder(2)
train_autoencoder(tiny, x_sweep, EPOCHS)
tiny_error = tiny.evaluate(x_val, x_val, batch_size=256, verbose=0)
worse = bool(tiny_error > sweep_errors[min(sweep_errors)])
""",
)
def _tiny_bottleneck(tiny, x_val, sweep_errors, worse):
    import keras

    if not isinstance(tiny, keras.Model):
        return "tiny should be the autoencoder itself: tiny = build_autoencoder(2), then train it"
    smallest = min(sweep_errors)
    code = _bottleneck(tiny)
    if code is None or code >= smallest:
        return f"use a code smaller than every size of the sweep ({smallest}): build_autoencoder(2)"
    if getattr(tiny, "optimizer", None) is None or int(tiny.optimizer.iterations) == 0:
        return "train it first, like the sweep: train_autoencoder(tiny, x_sweep, EPOCHS)"
    if not isinstance(worse, bool | np.bool_):
        return "answer worse = True or worse = False"
    error = _reconstruction_error(tiny, x_val)
    reference = sweep_errors[smallest]
    if abs(error - reference) <= 1e-5 or bool(worse) == (error > reference):
        return None
    return (
        "your answer does not match your measurement: compare "
        "tiny.evaluate(x_val, x_val, verbose=0) with sweep_errors[min(sweep_errors)]"
    )


@exercise(
    "09.3",
    kind="code",
    title="the row reader with an LSTM: Reshape((32, 96)) then LSTM(units)",
    solution="""
def lstm_reader(units):
    inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Reshape((32, 96))(x)  # 32 rows of 32 pixels × 3 channels
    x = layers.LSTM(units)(x)
    outputs = layers.Dense(data.NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs)
""",
)
def _lstm_reader(lstm_reader):
    import keras

    units = 16
    model = lstm_reader(units)
    if model is None:
        return NOT_ATTEMPTED
    if not isinstance(model, keras.Model):
        return "return the model: end the function with return keras.Model(inputs, outputs)"
    found = _all_layers(model)
    lstms = [layer for layer in found if isinstance(layer, keras.layers.LSTM)]
    if not lstms:
        if any(isinstance(layer, keras.layers.GRU) for layer in found):
            return "that is a GRU: this exercise asks for layers.LSTM(units)"
        return "the model has no LSTM layer: add layers.LSTM(units) after the Reshape"
    if lstms[0].units != units:
        return "give the LSTM the function's argument: layers.LSTM(units)"
    if tuple(model.input_shape[1:]) != (32, 32, 3):
        return "the input is one CIFAR-10 image: keras.Input(shape=data.IMAGE_SHAPE, dtype='uint8')"
    if not any(isinstance(layer, keras.layers.Rescaling) for layer in found):
        return "scale the uint8 pixels inside the model: layers.Rescaling(1 / 255) after the input"
    if tuple(lstms[0].input.shape[1:]) != (32, 96):
        return "feed the LSTM 32 rows of 96 numbers: layers.Reshape((32, 96)) before it"
    output = keras.ops.convert_to_numpy(model(np.zeros((2, 32, 32, 3), dtype="uint8")))
    if output.shape != (2, 10):
        return f"the model should give 10 class probabilities per image, it gives {output.shape}"
    if not np.allclose(output.sum(axis=1), 1, atol=1e-4):
        return "end with a softmax: layers.Dense(data.NUM_CLASSES, activation='softmax')"
    return None


@exercise(
    "09.4",
    kind="predict",
    title="patches and attention-matrix size of a ViT with 8×8 patches",
    solution="""
n_patches = (32 // 8) ** 2  # a 4 × 4 grid of patches
attention_entries = n_patches * n_patches  # every patch scores every patch, itself included
""",
)
def _patches(n_patches, attention_entries):
    if n_patches == 64:
        return "64 is for 4×4 patches; count again with patches of 8×8 pixels"
    if n_patches == 32 // 8:
        return "32 / 8 = 4 patches fit along a row, and 4 rows of them fit down the image"
    if n_patches != (32 // 8) ** 2:
        return "how many 8×8 squares tile a 32×32 image? (32 / 8) along each side"
    if attention_entries == n_patches:
        return "every patch scores every patch (itself included): the matrix is n × n"
    if attention_entries == 4 * n_patches**2:
        return "that is for the four heads together; the question asks for ONE head"
    if attention_entries != n_patches**2:
        return "one row per patch (query) and one column per patch (key): n_patches²"
    return None
