"""Exercises of notebook 05 (overfitting and its remedies)."""

from __future__ import annotations

import numpy as np

from exercises import exercise, is_number

#: The layer types of exercise 05.3's model, in order (the Input is not a layer).
SMALL_MODEL = [
    "Conv2D",
    "BatchNormalization",
    "Activation",
    "MaxPooling2D",
    "Flatten",
    "Dropout",
    "Dense",
]


@exercise(
    "05.1",
    kind="predict",
    title="how many weights an L2 penalty on Dense(128) adds up",
    solution="""
    # kernel_regularizer penalises the kernel only (2,048 inputs x 128 units), not the biases.
    penalised = 2_048 * 128
    """,
)
def _penalised(penalised):
    if not is_number(penalised):
        return "give one number (an int)"
    if penalised == 2_048 * 128:
        return None
    if penalised == 2_048 * 128 + 128:
        return "kernel_regularizer penalises the kernel only: the 128 biases are left alone"
    if penalised in (2_048, 128):
        return "the kernel connects every input to every unit: it has inputs × units weights"
    return "count the weights of the layer's kernel (inputs × units); the biases are not in it"


@exercise(
    "05.2",
    kind="predict",
    title="what Dropout(0.5) does at inference and in training",
    solution="""
    # At inference Dropout passes its input through; in training Keras divides the kept
    # units by (1 - rate), so the expected sum stays the same ("inverted dropout").
    at_inference = [1.0, 1.0, 1.0, 1.0]
    kept_in_training = 1 / (1 - 0.5)
    """,
)
def _dropout(at_inference, kept_in_training):
    import keras

    try:
        values = np.asarray(at_inference, dtype="float64").reshape(-1)
    except (TypeError, ValueError):
        return "at_inference should be a list of 4 numbers"
    if values.size != 4:
        return f"at_inference should have 4 numbers, one per input, not {values.size}"
    layer = keras.layers.Dropout(0.5)
    x = np.ones((1, 4), dtype="float32")
    expected = keras.ops.convert_to_numpy(layer(x, training=False)).reshape(-1)
    if not np.allclose(values, expected):
        if np.any(values == 0):
            return "at inference Dropout switches nothing off: every unit is used"
        return "at inference Dropout leaves its input as it is: no scaling either"
    if not is_number(kept_in_training):
        return "kept_in_training should be one number"
    if np.isclose(kept_in_training, 1.0) or np.isclose(kept_in_training, 0.5):
        return (
            "in training Keras scales the units it keeps so that their expected sum does not "
            "change when half of them are dropped (inverted dropout)"
        )
    if not np.isclose(kept_in_training, 1 / (1 - 0.5)):
        return "a kept unit is divided by (1 - rate) in training"
    return None


def _kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "InputLayer"]


@exercise(
    "05.3",
    kind="code",
    title="a model with batch norm and dropout in the right places",
    solution="""
    small_model = keras.Sequential(
        [
            keras.Input(shape=data.IMAGE_SHAPE),
            layers.Conv2D(16, 3, padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    """,
)
def _small_model(small_model):
    import keras

    if not isinstance(small_model, keras.Model):
        return "small_model should be a keras model: keras.Sequential([...])"
    kinds = _kinds(small_model)
    for missing in ("BatchNormalization", "Dropout", "Activation"):
        if missing not in kinds:
            return f"there is no {missing} layer in your model: {kinds}"
    convs = [layer for layer in small_model.layers if isinstance(layer, keras.layers.Conv2D)]
    if len(convs) != 1 or convs[0].filters != 16:
        return "the model has one convolution, Conv2D(16, 3, padding='same')"
    if convs[0].get_config()["activation"] != "linear":
        return "give the convolution no activation: the ReLU comes after batch normalisation"
    if kinds.index("BatchNormalization") > kinds.index("Activation"):
        return "batch normalisation goes between the convolution and its ReLU, not after it"
    if kinds.index("Dropout") < kinds.index("Flatten"):
        return "put the dropout just before the classifier: after Flatten"
    if kinds != SMALL_MODEL:
        return f"the layers should come in this order: {' -> '.join(SMALL_MODEL)}; yours: {kinds}"
    dropout = next(layer for layer in small_model.layers if type(layer).__name__ == "Dropout")
    if not np.isclose(dropout.rate, 0.5):
        return f"the dropout rate should be 0.5, not {dropout.rate}"
    head = small_model.layers[-1]
    if head.units != 10 or head.get_config()["activation"] != "softmax":
        return "the last layer is the classifier: Dense(10, activation='softmax')"
    if tuple(small_model.input_shape[1:]) != (32, 32, 3):
        return "the model takes CIFAR-10 images: keras.Input(shape=data.IMAGE_SHAPE)"
    return None


@exercise(
    "05.4",
    kind="experiment",
    title="dropout 0.5: a smaller train/validation gap than no remedy?",
    solution="""
    heavy_dropout = train_variant("dropout 0.5", dropout=0.5)
    # the fair gap (section 2): both sides measured after training, in inference mode
    train, validation = (x_small, y_small), (x_val, y_val)
    heavy_gap = evaluation.generalization_gap(heavy_dropout.model, train, validation)["gap"]
    plain_gap = evaluation.generalization_gap(plain.model, train, validation)["gap"]
    smaller_gap = bool(heavy_gap < plain_gap)
    """,
)
def _heavy_dropout(heavy_dropout, smaller_gap, *, baseline, train=None, validation=None):
    import keras

    from helpers import evaluation

    model = getattr(heavy_dropout, "model", None)
    if not isinstance(model, keras.Model) or not getattr(heavy_dropout, "history", None):
        return "heavy_dropout should be what train_variant returns (a result with a model)"
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    if not rates or not np.isclose(max(rates), 0.5):
        return f"train it with dropout=0.5 (its Dropout layers have rates {rates})"
    if not isinstance(smaller_gap, bool | np.bool_):
        return "smaller_gap should be True or False"
    if train is None or validation is None:
        return (
            "pass the images the gap is measured on to the check too: "
            "train=(x_small, y_small), validation=(x_val, y_val)"
        )
    gap = evaluation.generalization_gap(model, train, validation)["gap"]
    plain_gap = evaluation.generalization_gap(baseline.model, train, validation)["gap"]
    if bool(smaller_gap) != (gap < plain_gap):
        return (
            f"measured after training in inference mode (evaluation.generalization_gap), the "
            f"gap is {gap:+.3f} with dropout 0.5 and {plain_gap:+.3f} without a remedy; "
            f"which is smaller? (The accuracy logged during fit has dropout on: not a fair gap.)"
        )
    return None
