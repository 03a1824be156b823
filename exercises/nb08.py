"""Exercises of notebook 08 (Choosing the model): a residual block, separable convolutions,
and an experiment with one hyperparameter of the search's best trial."""

from __future__ import annotations

import numpy as np

from exercises import NOT_ATTEMPTED, exercise


@exercise(
    "08.1",
    kind="code",
    title="a residual block that halves the image, with a strided 1x1 projection shortcut",
    solution="""
    def residual_down(x, filters):
        y = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        y = layers.BatchNormalization(momentum=0.9)(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization(momentum=0.9)(y)
        shortcut = layers.Conv2D(filters, 1, strides=2, use_bias=False)(x)  # the projection
        shortcut = layers.BatchNormalization(momentum=0.9)(shortcut)
        return layers.Activation("relu")(layers.Add()([y, shortcut]))
    """,
)
def _residual_down(residual_down):
    import keras

    inputs = keras.Input(shape=(16, 16, 16))
    outputs = residual_down(inputs, 32)
    if outputs is None:
        return NOT_ATTEMPTED
    shape = tuple(outputs.shape[1:])
    if shape[-1] != 32:
        return f"the block ends with {shape[-1]} channels: both paths need `filters` (32) of them"
    if shape[:2] != (8, 8):
        return (
            f"on a 16x16 input the block's output is {shape[0]}x{shape[1]}, not 8x8: the "
            'first 3x3 convolution needs strides=2 (and padding="same")'
        )
    model = keras.Model(inputs, outputs)
    kinds = [type(layer).__name__ for layer in model.layers]
    if "Add" not in kinds:
        return "there is no addition: a residual block ends with layers.Add()([main, shortcut])"
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    projections = [c for c in convs if tuple(c.kernel_size) == (1, 1)]
    if not projections:
        return "the shortcut needs a projection: a 1x1 Conv2D with strides=2 and `filters` filters"
    if len(convs) < 3:
        return "the main path has two 3x3 convolutions (the first with strides=2)"
    return None


@exercise(
    "08.2",
    kind="predict",
    title="parameters of Conv2D(64, 3) and SeparableConv2D(64, 3) on 32 input channels",
    solution="""
    n_conv = 3 * 3 * 32 * 64 + 64  # a 3x3x32 filter per output channel, plus 64 biases
    n_separable = 3 * 3 * 32 + 32 * 64 + 64  # depthwise, pointwise, biases
    """,
)
def _separable(n_conv, n_separable):
    conv = 3 * 3 * 32 * 64 + 64
    separable = 3 * 3 * 32 + 32 * 64 + 64
    if n_conv == conv - 64:
        return "Conv2D: the weights are right; add one bias per filter (64)"
    if n_conv != conv:
        return "Conv2D: 3 x 3 x C_in weights per filter, C_out filters, plus C_out biases"
    if n_separable == separable - 64:
        return "SeparableConv2D: the weights are right; add one bias per output channel (64)"
    if n_separable in (3 * 3 * 32 + 64, 3 * 3 * 32):
        return (
            "SeparableConv2D: you have the depthwise step; add the pointwise 1x1 convolution "
            "that mixes the channels (C_in x C_out weights)"
        )
    if n_separable in (3 * 3 * 32 * 64 + 32 * 64 + 64, 3 * 3 * 64 + 32 * 64 + 64):
        return (
            "SeparableConv2D: the depthwise step has one 3x3 filter per INPUT channel "
            "(3 x 3 x 32 weights), not per output channel"
        )
    if n_separable != separable:
        return "SeparableConv2D: depthwise 3 x 3 x C_in, plus pointwise C_in x C_out, plus C_out"
    return None


def _accuracy(model, validation) -> float:
    """Validation accuracy, computed as the notebook's ``accuracy`` does (on any backend)."""
    from helpers import evaluation

    x_val, y_val = validation
    predicted = evaluation.predict_proba(model, x_val).argmax(axis=1)
    return float(np.mean(predicted == np.asarray(y_val).ravel()))


@exercise(
    "08.3",
    kind="experiment",
    title="change one hyperparameter of the best trial and compare on validation",
    solution="""
    my_hp = best_hp.copy()
    my_hp.values["learning_rate"] = best_hp.get("learning_rate") / 2
    config.set_seed()
    my_model = tuner.hypermodel.build(my_hp)
    my_model.fit(x_small, y_small, epochs=TRIAL_EPOCHS, batch_size=BATCH_SIZE, verbose=0)
    my_accuracy = accuracy(my_model, x_val, y_val)
    print(f"validation: mine {my_accuracy:.1%}, best trial {best_score:.1%}")
    beats_best = bool(my_accuracy > best_score)
    """,
)
def _one_change(best_hp, my_hp, my_model, validation, best_score, beats_best):
    best, mine = dict(best_hp.values), dict(my_hp.values)
    changed = sorted(name for name in best if mine.get(name) != best[name])
    if not changed:
        return "my_hp has the best trial's values: change one of them"
    if len(changed) > 1:
        return (
            f"you changed {', '.join(changed)}: change only one, so the comparison says what "
            "that one hyperparameter does"
        )
    if not hasattr(my_model, "predict") or not getattr(my_model, "optimizer", None):
        return "my_model should be a compiled Keras model: tuner.hypermodel.build(my_hp)"
    if int(np.asarray(my_model.optimizer.iterations)) == 0:
        return "my_model has not been trained yet: fit it on x_small for TRIAL_EPOCHS epochs"
    if not isinstance(beats_best, bool | np.bool_):
        return "beats_best should be True or False"
    accuracy = _accuracy(my_model, validation)
    if bool(beats_best) != (accuracy > best_score):
        return (
            f"on the validation split your model scores {accuracy:.1%} and the best trial "
            f"{best_score:.1%}: compare the two again"
        )
    return None
