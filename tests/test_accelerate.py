"""helpers.accelerate: the fast-path settings chosen for each device, and the precision scope."""

import numpy as np
import pytest

from helpers import accelerate
from helpers.accelerate import AcceleratorError


@pytest.mark.parametrize(
    ("kind", "capability", "policy"),
    [
        ("CPU", None, "float32"),
        ("GPU", (7, 5), "mixed_float16"),  # T4 (Colab): float16 tensor cores, no bfloat16
        ("GPU", (8, 0), "mixed_bfloat16"),  # A100
        ("GPU", (9, 0), "mixed_bfloat16"),  # H100
        ("GPU", None, "mixed_float16"),  # unknown capability: the policy every GPU runs
        ("TPU", None, "mixed_bfloat16"),
        ("gpu", (8, 6), "mixed_bfloat16"),
    ],
)
def test_precision_policy_follows_the_device(kind, capability, policy):
    assert accelerate.precision_policy(kind, capability) == policy


def test_linear_scaling_rule():
    assert accelerate.scale_learning_rate(0.1, 512) == pytest.approx(0.1)
    assert accelerate.scale_learning_rate(0.1, 1024) == pytest.approx(0.2)
    assert accelerate.scale_learning_rate(0.4, 128, reference_batch_size=512) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: accelerate.scale_learning_rate(-1, 512),
        lambda: accelerate.scale_learning_rate(0.1, 0),
        lambda: accelerate.scale_learning_rate(0.1, 2.5),
        lambda: accelerate.precision_policy("NPU"),
        lambda: accelerate.fast_path_settings("GPU", 0),
        lambda: accelerate.fast_path_settings("GPU", 1, steps_per_execution=0),
    ],
)
def test_bad_options_are_refused_with_a_value_error(call):
    with pytest.raises(AcceleratorError) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_cpu_gets_the_plain_path():
    path = accelerate.fast_path_settings("CPU", 1, batch_size=128, learning_rate=0.05)
    assert path.precision == "float32"
    assert path.jit_compile == "auto"  # Keras: off on TensorFlow's CPU, on with JAX
    assert path.resident_data is False  # on a CPU the host is the device
    assert path.steps_per_execution == 1
    assert path.batch_size == 128
    assert path.learning_rate == pytest.approx(0.05 * 128 / 512)


def test_h100_gets_bfloat16_xla_and_several_steps_per_call():
    path = accelerate.fast_path_settings("GPU", 1, compute_capability=(9, 0), learning_rate=0.2)
    assert path.precision == "mixed_bfloat16"
    assert path.jit_compile is True
    assert path.steps_per_execution > 1
    assert path.compile_kwargs() == {"jit_compile": True, "steps_per_execution": 8}
    assert path.resident_data is True
    assert path.fit_kwargs() == {"batch_size": 512}
    assert "GPU" in path.describe() and "mixed_bfloat16" in path.describe()


def test_several_gpus_multiply_batch_and_learning_rate():
    one = accelerate.fast_path_settings("GPU", 1, compute_capability=(8, 0))
    four = accelerate.fast_path_settings("GPU", 4, compute_capability=(8, 0))
    assert four.batch_size == 4 * one.batch_size
    assert four.learning_rate == pytest.approx(4 * one.learning_rate)
    assert four.as_dict()["count"] == 4


def test_detected_settings_on_this_machine_match_detect_accelerator():
    from helpers import config

    kind, count = config.detect_accelerator()
    path = accelerate.fast_path_settings()
    assert (path.kind, path.count) == (kind, count)
    if kind == "CPU":
        assert path.precision == "float32" and path.jit_compile == "auto"


def test_use_precision_sets_and_restores_the_global_policy():
    import keras

    before = keras.config.dtype_policy().name
    with accelerate.use_precision("mixed_float16"):
        layer = keras.layers.Dense(2)
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == before
    assert layer.compute_dtype == "float16" and layer.variable_dtype == "float32"
    with pytest.raises(AcceleratorError), accelerate.use_precision("float8"):
        pass


def test_mixed_float16_training_wraps_the_optimizer_and_keeps_outputs_float32():
    """What the fast path does on an older GPU, run on the CPU: Keras adds loss scaling."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=32)
    with accelerate.use_precision("mixed_float16"):
        inputs = keras.Input((32, 32, 3), dtype="uint8")
        h = keras.layers.Rescaling(1 / 255)(inputs)
        h = keras.layers.Conv2D(4, 3)(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(h)
        model = keras.Model(inputs, outputs)
        model.compile("sgd", "sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert model.layers[2].compute_dtype == "float16"
    assert str(model.output.dtype) == "float32"
    assert np.isfinite(history.history["loss"][0])


def _images(n=12):
    return np.random.default_rng(1).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _tiny_model():
    import keras

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(h))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))


def test_resident_data_model_looks_the_images_up_by_index():
    images = _images()
    model = _tiny_model()
    trainer = accelerate.resident_data_model(model, images)
    bank = trainer.get_layer("resident_images")
    assert bank.images.dtype == "uint8" and not bank.trainable_weights
    looked_up = np.asarray(bank(np.array([5, 0, 5], dtype="int32")))
    np.testing.assert_array_equal(looked_up, images[[5, 0, 5]])
    # Same weights as the model: the lookup model's prediction is the model's on the images.
    np.testing.assert_allclose(
        trainer.predict(accelerate.resident_indices(images), verbose=0),
        model.predict(images, verbose=0),
        atol=1e-6,
    )
    assert [id(w) for w in trainer.trainable_weights] == [id(w) for w in model.trainable_weights]


def test_training_the_resident_model_trains_the_model():
    images, labels = _images(32), np.arange(32) % 10
    model = _tiny_model()
    before = [w.copy() for w in model.get_weights()]
    trainer = accelerate.resident_data_model(model, images)
    trainer.compile("sgd", "sparse_categorical_crossentropy")
    trainer.fit(accelerate.resident_indices(images), labels, batch_size=8, epochs=1, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((4, 32, 32, 3), "float32"), "uint8 images"),
        (np.zeros((4, 28, 28, 3), "uint8"), "build the model"),
    ],
)
def test_resident_data_model_refuses_images_the_model_cannot_take(images, match):
    with pytest.raises(AcceleratorError, match=match):
        accelerate.resident_data_model(_tiny_model(), images)


def test_pytorch_gets_one_step_per_call_and_no_xla():
    # Keras's PyTorch backend refuses steps_per_execution > 1, and reads jit_compile=True as
    # torch.compile (not XLA), which the course has not tested: the fast path says so.
    path = accelerate.fast_path_settings("GPU", 1, compute_capability=(9, 0), backend="torch")
    assert path.precision == "mixed_bfloat16" and path.resident_data is True
    assert path.compile_kwargs() == {"jit_compile": False, "steps_per_execution": 1}
    assert "(torch)" in path.describe()
    with pytest.raises(AcceleratorError, match="PyTorch backend runs one step per call"):
        accelerate.fast_path_settings("GPU", 1, steps_per_execution=8, backend="torch")
    for backend in ("tensorflow", "jax"):
        gpu = accelerate.fast_path_settings("GPU", 1, backend=backend)
        assert gpu.jit_compile is True and gpu.steps_per_execution == 8
