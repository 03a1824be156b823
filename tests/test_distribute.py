"""helpers.distribute: which strategy is chosen for which devices, and that the chosen
strategy really trains (two CPU devices stand in for two GPUs)."""

import importlib.util
from pathlib import Path

import pytest

from helpers import distribute
from helpers.distribute import DistributeError
from tests.test_backends import run_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("backend", "devices", "strategy", "replicas"),
    [
        ("tensorflow", ["CPU:0"], "single", 1),
        ("tensorflow", ["CPU:0", "GPU:0"], "single", 1),
        ("tensorflow", ["CPU:0", "GPU:0", "GPU:1"], "mirrored", 2),
        ("tensorflow", ["/physical_device:GPU:0"] * 1 + ["/physical_device:GPU:1"], "mirrored", 2),
        ("tensorflow", [f"TPU:{i}" for i in range(8)] + ["CPU:0"], "tpu", 8),
        ("jax", ["cpu:0"], "single", 1),
        ("jax", ["gpu:0"], "single", 1),
        ("jax", ["gpu:0", "gpu:1", "gpu:2", "gpu:3"], "data_parallel", 4),
        ("jax", [f"TPU:{i}" for i in range(8)], "data_parallel", 8),
        ("torch", ["cuda:0", "cuda:1"], "single", 1),
        # several CPU devices are not replicas unless asked for (allow_cpu)
        ("tensorflow", ["CPU:0", "CPU:1"], "single", 1),
        ("jax", ["cpu:0", "cpu:1"], "single", 1),
    ],
)
def test_choose_plan(backend, devices, strategy, replicas):
    plan = distribute.choose_plan(backend, devices)
    assert plan.strategy == strategy
    assert plan.replicas == replicas
    assert plan.backend == backend
    assert plan.reason and strategy in plan.describe()


def test_gpus_win_over_cpus_and_single_plan_names_the_accelerator():
    plan = distribute.choose_plan("jax", ["cpu:0", "gpu:0"])
    assert plan.devices == ("GPU:0",)
    many = distribute.choose_plan("tensorflow", ["CPU:0", "GPU:0", "GPU:1"])
    assert many.devices == ("GPU:0", "GPU:1")


def test_allow_cpu_turns_cpu_devices_into_replicas():
    assert distribute.choose_plan("tensorflow", ["CPU:0", "CPU:1"], allow_cpu=True).strategy == (
        "mirrored"
    )
    plan = distribute.choose_plan("jax", ["cpu:0", "cpu:1"], allow_cpu=True)
    assert (plan.strategy, plan.replicas) == ("data_parallel", 2)


def test_colab_tpu_address_is_read_from_the_environment():
    assert distribute.colab_tpu_address({"COLAB_TPU_ADDR": "10.0.0.2:8470"}) == (
        "grpc://10.0.0.2:8470"
    )
    assert distribute.colab_tpu_address({"TPU_ACCELERATOR_TYPE": "v2-8"}) == "local"
    assert distribute.colab_tpu_address({}) is None
    # A TPU runtime whose cores TensorFlow has not initialised yet is still a TPU.
    plan = distribute.choose_plan("tensorflow", ["CPU:0"], tpu_address="grpc://10.0.0.2:8470")
    assert plan.strategy == "tpu" and plan.tpu_address == "grpc://10.0.0.2:8470"


def test_global_batch_grows_with_replicas():
    plan = distribute.choose_plan("jax", ["gpu:0", "gpu:1"])
    assert distribute.global_batch_size(256, plan) == 512
    single = distribute.choose_plan("jax", ["gpu:0"])
    assert distribute.global_batch_size(256, single) == 256
    with pytest.raises(DistributeError):
        distribute.global_batch_size(0, plan)


@pytest.mark.parametrize(
    ("backend", "devices"), [("theano", ["CPU:0"]), ("jax", ["0"]), ("jax", [""])]
)
def test_bad_input_is_refused(backend, devices):
    with pytest.raises(DistributeError):
        distribute.choose_plan(backend, devices)


def test_this_machine_falls_back_cleanly_to_one_device():
    """On a one-CPU (or one-GPU) machine the plan is 'single' and its scope is a no-op."""
    import keras

    from helpers import config

    plan = distribute.detect_plan()
    if config.detect_accelerator()[1] < 2:
        assert plan.strategy == "single" and plan.replicas == 1
        with plan.scope() as strategy:
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        assert strategy is None
        assert model.count_params() == 8


# Two CPU devices stand in for two GPUs: TensorFlow splits its CPU into two logical
# devices, JAX's XLA is asked for two host devices. The same capstone code trains.
SCRIPT = r"""
import json
import keras
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from helpers import accelerate, capstone, distribute

plan = distribute.detect_plan(allow_cpu=True)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8)
labels = rng.integers(0, 10, 80)
train, validation = (images[:64], labels[:64]), (images[64:], labels[64:])
recipe = capstone.Recipe(widths=(8, 8, 8), epochs=2, batch_size=16, ema_momentum=0.9)
result = capstone.train(train, validation, recipe, plan=plan)
# Again with the training set kept on the devices (as on GPUs), replicated by the plan.
on_device = accelerate.fast_path_settings(
    "CPU", plan.replicas, batch_size=16, learning_rate=0.2, reference_batch_size=16,
    resident_data=True,
)
resident = capstone.train(train, validation, recipe, plan=plan, fast_path=on_device)
kernel = result.model.get_layer("g1_conv1").kernel
sharding = getattr(getattr(kernel, "value", None), "sharding", None)
print("REPORT " + json.dumps({
    "strategy": plan.strategy,
    "replicas": plan.replicas,
    "distribution": result.distribution,
    "batch_size": result.fast_path["batch_size"],
    "epochs_run": result.epochs_run,
    "loss": result.history["loss"],
    "weight_devices": len(sharding.device_set) if sharding is not None else None,
    "resident": {"epochs_run": resident.epochs_run, "loss": resident.history["loss"],
                 "resident_data": resident.fast_path["resident_data"]},
}))
"""


def test_mirrored_strategy_trains_on_two_devices_with_tensorflow():
    report = run_script(SCRIPT, {"KERAS_BACKEND": "tensorflow"})
    assert (report["strategy"], report["replicas"], report["distribution"]) == (
        "mirrored",
        2,
        "mirrored",
    )
    assert report["batch_size"] == 32  # 16 per replica
    assert report["epochs_run"] == 2
    assert all(0 < loss < 10 for loss in report["loss"])
    _assert_resident_run_trained(report)


def _assert_resident_run_trained(report):
    resident = report["resident"]
    assert resident["resident_data"] and resident["epochs_run"] == 2
    assert all(0 < loss < 10 for loss in resident["loss"])


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason='JAX is not installed: pip install "jax[cpu]"'
)
def test_data_parallel_trains_on_two_devices_with_jax():
    # On a busy CPU one of the two fake devices can wait long at an all-reduce; XLA would
    # abort the process after its default collective timeout, so give it ten minutes.
    flags = (
        "--xla_force_host_platform_device_count=2 "
        "--xla_cpu_collective_call_terminate_timeout_seconds=600 "
        "--xla_cpu_collective_timeout_seconds=600"
    )
    report = run_script(SCRIPT, {"KERAS_BACKEND": "jax", "XLA_FLAGS": flags})
    assert (report["strategy"], report["replicas"], report["distribution"]) == (
        "data_parallel",
        2,
        "data_parallel",
    )
    assert report["batch_size"] == 32
    assert report["weight_devices"] == 2  # the weights are replicated on both devices
    assert all(0 < loss < 10 for loss in report["loss"])
    _assert_resident_run_trained(report)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed: pip install -r requirements-torch.txt",
)
def test_pytorch_trains_on_one_device_and_says_why():
    # Keras's distribution API is JAX-only: with PyTorch the plan is one device, and says so.
    plan = distribute.choose_plan("torch", ["cuda:0", "cuda:1"])
    assert plan.replicas == 1 and "no Keras data-parallel strategy" in plan.reason
    report = run_script(SCRIPT, {"KERAS_BACKEND": "torch"})
    assert (report["strategy"], report["replicas"]) == ("single", 1)
    assert report["batch_size"] == 16 and report["epochs_run"] == 2
    assert all(0 < loss < 10 for loss in report["loss"])
    _assert_resident_run_trained(report)
