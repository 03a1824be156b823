"""helpers.transfer: weights resolution, frozen base and heads, the feature cache, FLOPs.

VGG16 is big, so the tests use 32x32 inputs, a dozen images, random weights saved
to tmp files, and build the shared read-only models once per module.
"""

import numpy as np
import pytest

from helpers import config, transfer

keras = pytest.importorskip("keras")

N_IMAGES = 20


def save_legacy_weights(model, path):
    """Write ``model``'s weights in the legacy .h5 layout of the real ImageNet file."""
    import h5py

    try:
        from keras.src.legacy.saving import legacy_h5_format
    except ImportError:  # pragma: no cover - a Keras without the legacy writer
        model.save(str(path))  # a full-model .h5, which load_weights reads the same way
        return
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A randomly initialised VGG16 without top, saved like the real file; and its weights."""
    keras.utils.set_random_seed(7)
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("weights") / transfer.WEIGHTS_FILE
    save_legacy_weights(model, path)
    return path, model.get_weights()


@pytest.fixture(scope="module")
def backbone(weights_file):
    """A 32 px backbone with the weights of ``weights_file`` (read-only in the tests)."""
    return transfer.build_backbone(32, weights=weights_file[0])


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(N_IMAGES, 32, 32, 3), dtype=np.uint8)
    y = np.arange(N_IMAGES) % 10
    return x, y


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No VGG16_WEIGHTS, an empty Keras home, artifacts in tmp_path, an unreachable origin."""
    monkeypatch.delenv(transfer.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path / "artifacts"))
    # Port 9 (discard) on this machine: the download fails at once, online or not.
    monkeypatch.setattr(transfer, "WEIGHTS_ORIGIN", f"http://127.0.0.1:9/{transfer.WEIGHTS_FILE}")
    return tmp_path


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# --- the model ---------------------------------------------------------------------------------


def test_backbone_is_frozen_vgg16_with_preprocessing_inside(backbone):
    assert backbone.model.count_params() == 14_714_688
    assert backbone.model.trainable_weights == []
    assert backbone.feature_shape == (1, 1, 512)
    assert backbone.extractor.input.dtype == "uint8"
    kinds = [type(layer).__name__ for layer in backbone.extractor.layers]
    assert kinds == ["InputLayer", "Resizing", "Dense", "Functional"]
    assert backbone.extractor.get_layer("vgg16_preprocess").trainable_weights == []


def test_preprocess_layer_is_vgg16_preprocess_input(images):
    x = images[0][:4]
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, transfer.preprocess_layer()(inputs))
    expected = keras.applications.vgg16.preprocess_input(x.astype("float32"))
    np.testing.assert_allclose(model.predict(x.astype("float32"), verbose=0), expected, atol=1e-4)
    # RGB -> BGR, minus the ImageNet mean: a red pixel becomes "blue" in VGG16's eyes.
    red = np.zeros((1, 1, 1, 3), dtype="float32")
    red[..., 0] = 255
    out = model.predict(red, verbose=0)[0, 0, 0]
    np.testing.assert_allclose(out, 255 * np.eye(3)[2] + expected_mean_offset(), atol=1e-4)


def expected_mean_offset():
    return keras.applications.vgg16.preprocess_input(np.zeros((1, 3), dtype="float32"))[0]


def test_heads_differ_in_their_first_layer():
    flat = transfer.build_head((4, 4, 512), "flatten")
    gap = transfer.build_head((4, 4, 512), "gap")
    assert flat.count_params() == 4 * 4 * 512 * 256 + 256 + 256 * 10 + 10
    assert gap.count_params() == 512 * 256 + 256 + 256 * 10 + 10
    with pytest.raises(transfer.TransferConfigError, match="flatten"):
        transfer.build_head((1, 1, 512), "mlp")


@pytest.mark.parametrize("size", [16, 31.5, "64", True])
def test_bad_input_size_is_refused(size):
    with pytest.raises(transfer.TransferConfigError, match="at least 32"):
        transfer.check_input_size(size)


def test_input_size_is_chosen_for_the_hardware():
    assert config.transfer_input_size("CPU") == 32
    assert config.transfer_input_size("GPU") > 32
    assert config.transfer_input_size() in transfer.INPUT_SIZES


def test_training_the_head_leaves_every_base_weight_bit_for_bit_unchanged(backbone, images):
    x, y = images
    model = transfer.add_head(backbone, "flatten")
    base_before = backbone.model.get_weights()
    head_before = model.head.get_weights()
    model.model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # through the frozen base
    features = backbone.extractor.predict(x, verbose=0)
    model.head.fit(features, y, epochs=2, batch_size=8, verbose=0)  # on features
    assert _same(backbone.model.get_weights(), base_before)
    assert not _same(model.head.get_weights(), head_before)


# --- weights resolution ------------------------------------------------------------------------


def test_vgg16_weights_file_is_loaded_exactly(weights_file, clean_env, monkeypatch):
    path, expected = weights_file
    monkeypatch.setenv(transfer.WEIGHTS_ENV, str(path))
    source = transfer.resolve_weights(allow_random=False)
    assert source.path == path and source.origin == transfer.WEIGHTS_ENV and source.pretrained
    # The file has no input size in it: the same weights serve a 64 px model.
    loaded = transfer.build_backbone(64, weights="auto")
    assert loaded.weights == source
    assert _same(loaded.model.get_weights(), expected)


def test_weights_file_that_is_not_the_published_one_gets_a_loud_warning(
    weights_file, clean_env, monkeypatch, capsys
):
    path, _ = weights_file
    monkeypatch.setenv(transfer.WEIGHTS_ENV, str(path))
    source = transfer.resolve_weights(allow_random=False)
    assert source.path == path and source.pretrained  # the right layout: it is used ...
    err = capsys.readouterr().err
    assert transfer.UNPUBLISHED_WEIGHTS_WARNING in err  # ... but not silently
    assert transfer.file_md5(path) in err and transfer.WEIGHTS_MD5 in err
    assert "13 convolutions" in err and "accuracies" in err
    # The published file (here: its checksum made to match) passes without a word.
    monkeypatch.setattr(transfer, "WEIGHTS_MD5", transfer.file_md5(path))
    transfer.resolve_weights(allow_random=False)
    assert transfer.UNPUBLISHED_WEIGHTS_WARNING not in capsys.readouterr().err


def test_weights_file_of_another_network_is_refused_before_keras_reads_it(
    clean_env, monkeypatch, tmp_path
):
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(str(path))
    monkeypatch.setenv(transfer.WEIGHTS_ENV, str(path))
    for allow_random in (False, True):
        with pytest.raises(transfer.WeightsError, match="does not hold the weights of VGG16"):
            transfer.resolve_weights(allow_random=allow_random)


def test_keras_3_weights_file_is_loaded_too(weights_file, tmp_path):
    path = tmp_path / "vgg16_notop.weights.h5"
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    model.set_weights(weights_file[1])
    model.save_weights(str(path))
    assert _same(transfer.build_backbone(32, weights=path).model.get_weights(), weights_file[1])


def test_missing_weights_file_error_names_the_variable_and_the_path(clean_env, monkeypatch):
    missing = clean_env / "nowhere" / transfer.WEIGHTS_FILE
    monkeypatch.setenv(transfer.WEIGHTS_ENV, str(missing))
    for allow_random in (False, True):  # a wrong path is an error even in fast mode
        with pytest.raises(transfer.WeightsError) as err:
            transfer.resolve_weights(allow_random=allow_random)
        assert transfer.WEIGHTS_ENV in str(err.value) and str(missing) in str(err.value)


def test_corrupt_weights_files_give_clear_errors(weights_file, tmp_path):
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not HDF5 " * 100)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(weights_file[0].read_bytes()[:100_000])
    for path in (garbage, truncated):
        with pytest.raises(transfer.WeightsError, match="corrupt") as err:
            transfer.load_vgg16_weights(base, path)
        assert transfer.WEIGHTS_ENV in str(err.value) and transfer.WEIGHTS_FILE in str(err.value)


@pytest.mark.parametrize("fmt", ["legacy.h5", "keras3.weights.h5"])
def test_weights_of_another_network_give_a_clear_error(tmp_path, fmt):
    other = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3), keras.layers.Flatten()]
        + [keras.layers.Dense(10)]
    )
    path = tmp_path / f"other_{fmt}"
    if fmt == "legacy.h5":
        save_legacy_weights(other, path)
    else:
        other.save_weights(str(path))
    with pytest.raises(transfer.WeightsError, match="does not hold the weights of VGG16"):
        transfer.build_backbone(32, weights=path)


def test_no_network_and_no_file_error_names_vgg16_weights(clean_env, capsys):
    with pytest.raises(transfer.WeightsError) as err:
        transfer.resolve_weights(allow_random=False)
    message = str(err.value)
    assert transfer.WEIGHTS_ENV in message and transfer.WEIGHTS_FILE in message
    assert "127.0.0.1:9" in message  # it did try the (unreachable) origin
    assert transfer.RANDOM_WEIGHTS_WARNING not in capsys.readouterr().err


def test_full_mode_without_weights_refuses_to_build(clean_env, monkeypatch):
    monkeypatch.setenv(config.FAST_ENV, "0")
    with pytest.raises(transfer.WeightsError, match=transfer.WEIGHTS_ENV):
        transfer.build_backbone(32)


def test_fast_mode_without_weights_warns_loudly_and_goes_on_random(clean_env, monkeypatch, capsys):
    monkeypatch.setenv(config.FAST_ENV, "1")
    source = transfer.resolve_weights()
    assert source.path is None and not source.pretrained
    err = capsys.readouterr().err
    assert transfer.RANDOM_WEIGHTS_WARNING in err and "WARNING" in err
    assert transfer.WEIGHTS_ENV in err


def test_download_uses_the_keras_cache_checked_by_md5(weights_file, clean_env, monkeypatch):
    import hashlib

    path, expected = weights_file
    cached = clean_env / "keras-home" / "models" / transfer.WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    # With the real checksum this stand-in is refused and re-downloaded (which fails here) ...
    with pytest.raises(transfer.WeightsError, match="download"):
        transfer.resolve_weights(allow_random=False)
    # ... with its own checksum it is accepted from the cache, without any network.
    cached.write_bytes(path.read_bytes())
    monkeypatch.setattr(transfer, "WEIGHTS_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    source = transfer.resolve_weights(allow_random=False)
    assert source.path == cached and source.pretrained


# --- the feature cache -------------------------------------------------------------------------


def test_feature_cache_is_reused_when_nothing_changed(backbone, images, clean_env):
    x, _ = images
    first = transfer.cached_features(backbone, x)
    assert not first.reused and first.path.is_file()
    assert first.path.parent == config.artifacts_dir() / "features"
    stamp = first.path.stat().st_mtime_ns
    second = transfer.cached_features(backbone, x)
    assert second.reused and second.path == first.path
    assert first.path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.values, first.values)
    np.testing.assert_allclose(first.values, backbone.extractor.predict(x, verbose=0), atol=1e-4)


def test_feature_cache_is_rebuilt_when_input_size_weights_or_images_change(
    backbone, weights_file, images, clean_env
):
    x, _ = images
    first = transfer.cached_features(backbone, x)
    bigger = transfer.build_backbone(64, weights=weights_file[0])
    at_64 = transfer.cached_features(bigger, x)
    assert not at_64.reused and at_64.path != first.path and at_64.values.shape[1:] == (2, 2, 512)
    # Other weights (here: one bias of the top block nudged) give other features.
    layer = bigger.model.get_layer("block5_conv3")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + 1.0])
    nudged = transfer.cached_features(bigger, x)
    assert not nudged.reused and nudged.path != at_64.path
    assert not np.array_equal(nudged.values, at_64.values)
    other_images = transfer.cached_features(backbone, x[::-1].copy())
    assert not other_images.reused and other_images.path != first.path
    assert transfer.cached_features(backbone, x).reused  # the first entry is still there


def test_damaged_cache_file_is_computed_again(backbone, images, clean_env):
    x, _ = images
    first = transfer.cached_features(backbone, x)
    first.path.write_bytes(b"damaged")
    again = transfer.cached_features(backbone, x)
    assert not again.reused
    np.testing.assert_array_equal(again.values, first.values)


# --- cost --------------------------------------------------------------------------------------


def test_conv_flops_from_layer_shapes():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, padding="same"),
            keras.layers.Conv2D(2, 3),  # valid: 6x6 output
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    expected = 2 * (8 * 8 * 3 * 3 * 3 * 4) + 2 * (6 * 6 * 3 * 3 * 4 * 2) + 2 * (6 * 6 * 2 * 5)
    assert transfer.conv_flops(model) == expected


def test_flops_grow_with_the_square_of_the_input_size():
    table = transfer.flops_table((32, 64))
    assert list(table["feature map"]) == ["1×1×512", "2×2×512"]
    assert table["cost vs first"].tolist() == [1.0, 4.0]


def test_saved_model_loads_without_custom_objects(backbone, images, tmp_path):
    x, _ = images
    model = transfer.add_head(backbone, "gap").model
    path = tmp_path / "vgg16_gap.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
