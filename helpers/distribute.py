"""Scaling out: train one model on every local accelerator, whatever the Keras backend.

``choose_plan`` picks the data-parallel strategy from the backend and the device names (pure,
so the tests cover every branch without an accelerator): ``TPUStrategy`` or
``MirroredStrategy`` on TensorFlow, ``keras.distribution.DataParallel`` on JAX, none on one
device or on PyTorch. ``detect_plan`` feeds it this machine. Build, compile *and fit* inside
``with plan.scope():`` (on JAX the distribution must be active while ``fit`` shards batches).
Used by notebook 07 and ``helpers.capstone``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from helpers import config

STRATEGIES = ("single", "mirrored", "data_parallel", "tpu")


class DistributeError(ValueError):
    """A device list or backend cannot be used for distribution; the message says why."""


@dataclass(frozen=True)
class Plan:
    """How to spread training over devices: ``strategy`` is one of ``STRATEGIES``,
    ``devices`` the devices that hold a replica, ``reason`` a sentence for the reader."""

    strategy: str
    backend: str
    devices: tuple[str, ...]
    reason: str
    tpu_address: str | None = None

    @property
    def replicas(self) -> int:
        """How many copies of the model train side by side (1 without a strategy)."""
        return max(1, len(self.devices)) if self.strategy != "single" else 1

    def scope(self):
        """A context manager: build, compile and fit the model inside it."""
        strategy = make_strategy(self)
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    def describe(self) -> str:
        """One line for a notebook: the strategy, its devices and why it was chosen."""
        devices = ", ".join(self.devices) or "the default device"
        return f"{self.strategy} on {devices}: {self.reason}"


def _kind(device: str) -> str:
    """``"GPU"`` for ``"/physical_device:GPU:0"``, ``"gpu:1"``, ``"cuda:0"``, ``"GPU"``..."""
    parts = [p for p in str(device).replace("/", ":").split(":") if p and not p.isdigit()]
    if not parts:
        raise DistributeError(f"cannot tell the kind of device {device!r}; use e.g. 'GPU:0'")
    kind = parts[-1].upper()
    return "GPU" if kind == "CUDA" else kind


def choose_plan(
    backend: str, devices: Sequence[str], *, tpu_address: str | None = None, allow_cpu=False
) -> Plan:
    """The distribution strategy for ``backend`` and the visible ``devices`` (names such as
    ``"GPU:0"``, ``"/physical_device:GPU:1"``, ``"gpu:0"``, ``"TPU:3"``).

    ``tpu_address`` marks a Colab/Cloud TPU that TensorFlow must connect to.
    ``allow_cpu=True`` makes several CPU devices replicas: for demonstrations and tests only
    (one replica already uses all of a machine's cores), never faster. Raises
    ``DistributeError`` for an unknown backend or device.
    """
    if backend not in ("tensorflow", "jax", "torch", "numpy", "openvino"):
        raise DistributeError(
            f"unknown Keras backend {backend!r}; expected tensorflow, jax or torch"
        )
    by_kind: dict[str, list[str]] = {}
    for position, device in enumerate(map(str, devices)):
        index = device.rsplit(":", 1)[-1]
        kind = _kind(device)
        by_kind.setdefault(kind, []).append(f"{kind}:{index if index.isdigit() else position}")
    tpus, gpus = by_kind.get("TPU", []), by_kind.get("GPU", [])
    if backend == "tensorflow" and (tpu_address is not None or tpus):
        reason = "a TPU is attached: TPUStrategy runs one replica on each TPU core"
        address = "local" if tpu_address is None else tpu_address
        return Plan("tpu", backend, tuple(tpus), reason, address)
    cpus = by_kind.get("CPU", []) if allow_cpu else []
    found = next((same for same in (tpus, gpus, cpus) if len(same) >= 2), [])
    many = f"{len(found)} {found[0].split(':')[0]}s" if found else ""
    if found and backend == "tensorflow":
        reason = (
            f"{many}: MirroredStrategy keeps a copy of the model on each and averages their "
            "gradients (all-reduce) after every batch"
        )
        return Plan("mirrored", backend, tuple(found), reason)
    if found and backend == "jax":
        reason = (
            f"{many}: keras.distribution.DataParallel shards each batch over a 1-D device "
            "mesh and replicates the weights"
        )
        return Plan("data_parallel", backend, tuple(found), reason)
    if found:
        reason = f"{many}, but the {backend} backend has no Keras data-parallel strategy here"
        return Plan("single", backend, (found[0],), f"{reason}: training on one device")
    single = (tpus or gpus or ["CPU:0"])[0]
    reason = f"one device ({single}): no strategy needed, the model trains as usual"
    return Plan("single", backend, (single,), reason)


def colab_tpu_address(environ=None) -> str | None:
    """The TPU a TensorFlow program must connect to: ``grpc://...`` on an old-style Colab TPU
    runtime (``COLAB_TPU_ADDR``), ``"local"`` on a TPU VM (``TPU_NAME`` or
    ``TPU_ACCELERATOR_TYPE`` set), else ``None``."""
    environ = os.environ if environ is None else environ
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if environ.get("TPU_NAME") or environ.get("TPU_ACCELERATOR_TYPE"):
        return "local"
    return None


def detect_plan(*, allow_cpu: bool = False) -> Plan:
    """``choose_plan`` for this machine and Keras backend, the accelerators counted by
    ``config.detect_accelerator()``. With ``allow_cpu`` the CPU's devices are listed: one,
    unless the host was split (TensorFlow logical devices, JAX's
    ``--xla_force_host_platform_device_count``), as the tests do."""
    backend = keras.backend.backend()
    kind, count = config.detect_accelerator()
    if kind != "CPU":
        devices = [f"{kind}:{i}" for i in range(count)]
    elif allow_cpu and backend in ("tensorflow", "jax"):  # a host split into several devices
        devices = keras.distribution.list_devices("cpu")
    else:
        devices = ["CPU:0"]
    tpu_address = colab_tpu_address() if backend == "tensorflow" else None
    return choose_plan(backend, devices, tpu_address=tpu_address, allow_cpu=allow_cpu)


def global_batch_size(per_replica: int, plan: Plan) -> int:
    """The batch ``model.fit`` gets: each replica takes ``per_replica`` images of it."""
    if isinstance(per_replica, bool) or not isinstance(per_replica, int) or per_replica < 1:
        raise DistributeError(f"per_replica must be a positive integer, got {per_replica!r}")
    return per_replica * plan.replicas


@functools.cache
def make_strategy(plan: Plan):
    """The backend object of a plan: a ``tf.distribute`` strategy, a
    ``keras.distribution.DataParallel``, or ``None`` for a single device. Made once per plan
    (a TPU is initialised only once per session)."""
    if plan.strategy not in STRATEGIES:
        raise DistributeError(f"unknown strategy {plan.strategy!r}; expected one of {STRATEGIES}")
    if plan.strategy == "single":
        return None
    if plan.strategy == "data_parallel":  # Keras names JAX's devices "gpu:0", "tpu:3"...
        return keras.distribution.DataParallel(devices=[d.lower() for d in plan.devices])
    import tensorflow as tf

    if plan.strategy == "mirrored":
        return tf.distribute.MirroredStrategy([f"/{d}" for d in plan.devices])
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=plan.tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
