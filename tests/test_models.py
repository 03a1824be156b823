"""The course's models: shapes and parameter counts worked out from the formulas."""

import numpy as np
import pytest

from helpers import models


def conv_params(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def dense_params(n_in, n_out):
    return n_in * n_out + n_out


def layer_table(model):
    return {layer.name: (layer.output.shape[1:], layer.count_params()) for layer in model.layers}


def test_baseline_shapes_and_parameter_counts():
    model = models.build_baseline()
    expected = {
        "rescale": ((32, 32, 3), 0),
        "conv1": ((30, 30, 32), conv_params(3, 3, 32)),
        "pool1": ((15, 15, 32), 0),
        "conv2": ((13, 13, 64), conv_params(3, 32, 64)),
        "pool2": ((6, 6, 64), 0),
        "conv3": ((4, 4, 128), conv_params(3, 64, 128)),
        "pool3": ((2, 2, 128), 0),
        "flatten": ((512,), 0),
        "dense": ((128,), dense_params(512, 128)),
        "predictions": ((10,), dense_params(128, 10)),
    }
    table = {name: (tuple(shape), n) for name, (shape, n) in layer_table(model).items()}
    table.pop("image")
    assert table == expected
    assert model.count_params() == 160_202 == sum(n for _, n in expected.values())
    assert model.input.dtype == "uint8"


def test_models_take_uint8_and_return_float32_probabilities():
    model = models.build_baseline()
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    out = np.asarray(model(images))
    assert out.shape == (4, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"


def test_recommended_switches_change_the_architecture():
    full = models.build_recommended(width=8, convs_per_block=2, dropout=0.2)
    names = {layer.name for layer in full.layers}
    assert {"augment", "bn_b1c1", "bn_b3c2", "drop_head", "gap"} <= names
    plain = models.build_recommended(
        width=8, convs_per_block=2, augment=False, batch_norm=False, dropout=0.0
    )
    plain_names = {layer.name for layer in plain.layers}
    assert not any(n.startswith(("bn_", "drop", "augment")) for n in plain_names)
    # Without batch norm each conv has a bias: 3x3 convs, widths 8, 16, 32, two per block.
    convs = [(3, 8), (8, 8), (8, 16), (16, 16), (16, 32), (32, 32)]
    assert plain.count_params() == sum(conv_params(3, a, b) for a, b in convs) + dense_params(
        32, 10
    )
    assert full.get_layer("conv_b1c1").kernel_regularizer is None
    l2 = models.build_recommended(width=8, l2=1e-4)
    assert l2.get_layer("conv_b1c1").kernel_regularizer is not None


def test_augmentation_is_only_active_in_training():
    model = models.build_recommended(width=8, dropout=0.0)
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(model(images, training=False), model(images, training=False))
    aug = models.augmentation_layers()
    out = np.asarray(aug(images.astype("float32"), training=True))
    assert out.shape == images.shape and not np.allclose(out, images)
    np.testing.assert_array_equal(aug(images.astype("float32"), training=False), images)


@pytest.mark.parametrize(
    "options",
    [
        {"dropout": 1.5},
        {"dropout": "0.2"},
        {"width": 0},
        {"convs_per_block": 0},
        {"batch_norm": "yes"},
        {"augment": 1},
        {"l2": -1e-4},
        {"translate": 0.7},
        {"head": "dense"},
        {"pool_early": "no"},
    ],
)
def test_recommended_refuses_bad_options(options):
    with pytest.raises(models.ModelConfigError):
        models.build_recommended(**options)


def test_pool_early_runs_the_later_convolutions_at_half_the_resolution():
    late = models.build_recommended(width=8, convs_per_block=2, augment=False)
    early = models.build_recommended(width=8, convs_per_block=2, augment=False, pool_early=True)
    # Same weights either way; only where the pooling sits changes.
    assert early.count_params() == late.count_params()
    assert late.get_layer("conv_b1c2").output.shape == (None, 32, 32, 8)
    assert early.get_layer("conv_b1c2").output.shape == (None, 16, 16, 8)
    assert early.get_layer("conv_b3c2").output.shape == (None, 4, 4, 32)
    layers = [layer.name for layer in early.layers]
    assert layers.index("pool1") == layers.index("conv_b1c1") + 1
    assert early.get_layer("gap").output.shape == late.get_layer("gap").output.shape


def test_flatten_head_has_the_capacity_to_memorise():
    gap = models.build_recommended(width=32, batch_norm=False, augment=False)
    flat = models.build_recommended(width=32, batch_norm=False, augment=False, head="flatten")
    # Flatten (4 x 4 x 128 = 2,048 values) -> Dense 128 -> Dense 10 replaces GAP -> Dense 10.
    assert flat.count_params() - gap.count_params() == (2048 * 128 + 128) + (128 * 10 + 10) - (
        128 * 10 + 10
    )
    assert flat.get_layer("dense").output.shape == (None, 128)
