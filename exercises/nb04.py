"""Exercises of notebook 04 (transfer learning with VGG16)."""

from __future__ import annotations

import numpy as np

from exercises import NOT_ATTEMPTED, exercise, is_number

#: The 13 convolutions of VGG16, block by block (the layers that have weights).
VGG16_CONVS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}


@exercise(
    "04.1",
    kind="predict",
    title="the shape of VGG16's features for 64×64 images",
    solution="""
    # Five blocks, each ending in a 2×2 max-pooling: 64 / 2**5 = 2; the last block has 512
    # filters.
    feature_shape_64 = (64 // 2**5, 64 // 2**5, 512)
    """,
)
def _feature_shape(feature_shape_64):
    try:
        shape = tuple(feature_shape_64)
    except TypeError:
        return "give three whole numbers as a tuple: (height, width, channels)"
    if len(shape) != 3:
        return (
            f"give three numbers, (height, width, channels), not {len(shape)}: the batch "
            f"axis is not part of one image's features"
        )
    if not all(is_number(v) for v in shape):
        return "give three whole numbers as a tuple: (height, width, channels)"
    height, width, channels = shape
    if channels != 512:
        return "the channels are the filters of the last convolution: look at block 5's filters"
    if (height, width) == (64, 64):
        return "the convolutions keep the size (padding 'same'), but each block ends in a pooling"
    if (height, width) == (4, 4):
        return "that is four halvings; count VGG16's blocks: each ends in a 2×2 max-pooling"
    if (height, width) != (2, 2):
        return "each of VGG16's blocks ends in a 2×2 max-pooling that halves the side"
    return None


@exercise(
    "04.2",
    kind="predict",
    title="trainable parameters with a frozen base and the GAP head",
    solution="""
    # The frozen base counts for nothing; GAP and Dropout have no weights; GAP gives 512
    # numbers. Dense(256): 512 * 256 weights + 256 biases; Dense(10): 256 * 10 + 10.
    trainable_params = (512 * 256 + 256) + (256 * 10 + 10)
    """,
)
def _trainable_params(trainable_params):
    if not is_number(trainable_params):
        return "give one number (an int), e.g. 1_000_000"
    right = (512 * 256 + 256) + (256 * 10 + 10)
    base = 14_714_688
    if trainable_params == right:
        return None
    if trainable_params in (right + base, base):
        return "base.trainable = False: none of VGG16's 14.7 M weights are trainable any more"
    if trainable_params == 512 * 256 + 256 * 10:
        return "each Dense layer has one bias per unit too"
    if trainable_params == 512 * 256 + 256:
        return "do not forget the 10-way output layer"
    return (
        "count the weights and biases of the head's two Dense layers (global average pooling "
        "and dropout have none); GAP hands one number per channel of block 5 to the first one"
    )


@exercise(
    "04.3",
    kind="experiment",
    title="a smaller head (Dense 64), compared on the validation split",
    solution="""
    config.set_seed(1)
    small_head = build_head(best_kind, backbone.feature_shape, units=64)
    small_head.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    small_head.fit(features["train"].values, y_train, epochs=HEAD_EPOCHS, batch_size=64, verbose=0)
    small_is_better = val_accuracy(small_head, features["validation"].values) > phase1[best_kind]
    """,
)
def _small_head(small_head, small_is_better, *, validation, reference):
    import keras

    from helpers import evaluation

    if not isinstance(small_head, keras.Model):
        return "small_head should be the head itself: the keras.Model that build_head returns"
    units = [layer.units for layer in small_head.layers if isinstance(layer, keras.layers.Dense)]
    if 64 not in units:
        return f"the head's Dense layers have {units} units: build it with units=64"
    x_val, y_val = validation
    if tuple(small_head.input.shape[1:]) != tuple(x_val.shape[1:]):
        return f"the head must take VGG16's features, of shape {tuple(x_val.shape[1:])}"
    optimizer = getattr(small_head, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):  # built by fit
        return "compile the head and train it (fit) on the cached training features first"
    if not isinstance(small_is_better, bool | np.bool_):
        return "small_is_better should be True or False"
    score = evaluation.accuracy(y_val, evaluation.predict_proba(small_head, x_val).argmax(1))
    if bool(small_is_better) != (score > reference):
        return (
            f"recomputed on the validation split, the small head scores {score:.3f} and the "
            f"phase-1 head {reference:.3f}: which is higher?"
        )
    return None


def _vgg16_base():
    import keras

    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))


@exercise(
    "04.4",
    kind="code",
    title="freeze all of VGG16 but blocks 4 and 5",
    solution="""
    def unfreeze_top_two_blocks(base):
        base.trainable = True  # a frozen model hides all its layers' weights
        for layer in base.layers:
            layer.trainable = layer.name.startswith(("block4", "block5"))
    """,
)
def _unfreeze_top_two(unfreeze_top_two_blocks):
    if not callable(unfreeze_top_two_blocks):
        return "unfreeze_top_two_blocks should be a function that takes the base"
    base = _vgg16_base()
    base.trainable = False  # as after phase 1: the function must make the base trainable
    before = [layer.trainable for layer in base.layers]
    unfreeze_top_two_blocks(base)
    if [layer.trainable for layer in base.layers] == before and not base.trainable:
        return NOT_ATTEMPTED  # the function changed nothing (still the placeholder)
    if not base.trainable_weights:
        return (
            "no weight of the base is trainable: with base.trainable = False a model hides "
            "all its layers' weights from training; make the base trainable first"
        )
    learning = {layer.name for layer in base.layers if layer.trainable_weights}
    wanted = {f"block{b}_conv{i}" for b in (4, 5) for i in range(1, VGG16_CONVS[b] + 1)}
    if wanted - learning:
        return f"these layers of blocks 4 and 5 are still frozen: {sorted(wanted - learning)}"
    if learning - wanted:
        return f"these layers should stay frozen: {sorted(learning - wanted)}"
    return None
