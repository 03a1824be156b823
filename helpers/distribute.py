"""Scaling out: train one model on every local accelerator, whatever the Keras backend.

Data parallelism copies the model onto each device, gives each device a slice
of every batch, and averages the gradients before each update. Keras reaches
it differently on each backend, and this module picks the right way from what
is present:

=============  ==========================  ==============================================
backend        devices                     strategy
=============  ==========================  ==============================================
tensorflow     a TPU (Colab, TPU VM)       ``tf.distribute.TPUStrategy``
tensorflow     2 or more GPUs              ``tf.distribute.MirroredStrategy``
jax            2 or more GPUs or TPU cores ``keras.distribution.DataParallel``
any            one device, or the CPU      no strategy: the model trains as usual
=============  ==========================  ==============================================

``choose_plan`` is pure (backend name and device names in, ``Plan`` out), so the
selection is tested without any accelerator; ``detect_plan`` feeds it what the
machine has. Build, compile *and fit* the model inside ``with plan.scope():`` (on
JAX the distribution must be active while ``fit`` shards the batches). The
global batch is the per-device batch times ``plan.replicas``
(``global_batch_size``); the learning rate follows it (``helpers.accelerate``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
        return _scope(self)

    def describe(self) -> str:
        """One line for a notebook: the strategy, its devices and why it was chosen."""
        return (
            f"{self.strategy} on {', '.join(self.devices) or 'the default device'}: {self.reason}"
        )


def _kind(device: str) -> str:
    """``"GPU"`` for ``"/physical_device:GPU:0"``, ``"gpu:1"``, ``"cuda:0"``, ``"GPU"``..."""
    parts = [p for p in str(device).replace("/", ":").split(":") if p and not p.isdigit()]
    if not parts:
        raise DistributeError(f"cannot tell the kind of device {device!r}; use e.g. 'GPU:0'")
    kind = parts[-1].upper()
    return "GPU" if kind == "CUDA" else kind


def _index(device: str, position: int) -> str:
    tail = str(device).rsplit(":", 1)[-1]
    return tail if tail.isdigit() else str(position)


def choose_plan(
    backend: str,
    devices: Sequence[str],
    *,
    tpu_address: str | None = None,
    allow_cpu: bool = False,
) -> Plan:
    """Pick the distribution strategy for ``backend`` and the visible ``devices``.

    ``devices`` are names such as ``"GPU:0"``, ``"/physical_device:GPU:1"``,
    ``"gpu:0"`` or ``"TPU:3"``. ``tpu_address`` marks a Colab/Cloud TPU that the
    TensorFlow backend must connect to (``detect_plan`` reads it from the
    environment). ``allow_cpu=True`` treats several CPU devices as replicas: that
    is only for demonstrations and tests (a machine's cores are already used by
    one replica), never faster. Returns a ``Plan``; raises ``DistributeError``
    for an unknown backend.
    """
    if backend not in ("tensorflow", "jax", "torch", "numpy", "openvino"):
        raise DistributeError(
            f"unknown Keras backend {backend!r}; expected tensorflow, jax or torch"
        )
    by_kind = _by_kind(devices)
    tpus, gpus, cpus = by_kind.get("TPU", []), by_kind.get("GPU", []), by_kind.get("CPU", [])
    if backend == "tensorflow" and (tpu_address is not None or tpus):
        return Plan(
            "tpu",
            backend,
            tuple(tpus),
            "a TPU is attached: TPUStrategy runs one replica on each TPU core",
            tpu_address=tpu_address if tpu_address is not None else "local",
        )
    for kind, found in (("TPU", tpus), ("GPU", gpus), ("CPU", cpus if allow_cpu else [])):
        if len(found) >= 2:
            return _replicated_plan(backend, kind, found)
    single = (tpus or gpus or ["CPU:0"])[:1]
    return Plan(
        "single",
        backend,
        tuple(single),
        f"one device ({single[0]}): no strategy needed, the model trains as usual",
    )


def _by_kind(devices: Sequence[str]) -> dict[str, list[str]]:
    """``{"GPU": ["GPU:0", "GPU:1"], ...}``: the devices in ``"KIND:i"`` form, by kind."""
    by_kind: dict[str, list[str]] = {}
    for position, device in enumerate(str(d) for d in devices):
        kind = _kind(device)
        by_kind.setdefault(kind, []).append(f"{kind}:{_index(device, position)}")
    return by_kind


def _replicated_plan(backend: str, kind: str, found: list[str]) -> Plan:
    """The plan for two or more devices of one ``kind`` on ``backend``."""
    if backend == "tensorflow":
        return Plan(
            "mirrored",
            backend,
            tuple(found),
            f"{len(found)} {kind}s: MirroredStrategy keeps a copy of the model on each "
            "and averages their gradients (all-reduce) after every batch",
        )
    if backend == "jax":
        return Plan(
            "data_parallel",
            backend,
            tuple(found),
            f"{len(found)} {kind}s: keras.distribution.DataParallel shards each batch "
            "over a 1-D device mesh and replicates the weights",
        )
    return Plan(
        "single",
        backend,
        (found[0],),
        f"{len(found)} {kind}s, but the {backend} backend has no Keras data-parallel "
        "strategy here: training on one device",
    )


def cpu_devices(backend: str | None = None) -> list[str]:
    """The CPU devices the Keras backend sees, as ``"CPU:i"`` names: one, unless the backend
    was asked to split the host (TensorFlow logical devices, JAX's
    ``--xla_force_host_platform_device_count``), which only demonstrations and tests do."""
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"CPU:{i}" for i, _ in enumerate(tf.config.list_logical_devices("CPU"))]
    if backend == "jax":
        import jax

        return [f"CPU:{d.id}" for d in jax.devices("cpu")]
    return ["CPU:0"]


def colab_tpu_address(environ=None) -> str | None:
    """The TPU a TensorFlow program must connect to, from the environment: ``grpc://...`` on
    an old-style Colab TPU runtime (``COLAB_TPU_ADDR``), ``"local"`` on a TPU VM
    (``TPU_NAME``/``TPU_ACCELERATOR_TYPE`` set), else ``None``."""
    environ = os.environ if environ is None else environ
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if environ.get("TPU_NAME") or environ.get("TPU_ACCELERATOR_TYPE"):
        return "local"
    return None


def detect_plan(*, allow_cpu: bool = False) -> Plan:
    """``choose_plan`` for this machine and the current Keras backend: the accelerator kind
    and count come from ``config.detect_accelerator()`` (the course's one device probe);
    the CPU's devices are listed only with ``allow_cpu``."""
    backend = keras.backend.backend()
    kind, count = config.detect_accelerator()
    if kind != "CPU":
        devices = [f"{kind}:{i}" for i in range(count)]
    else:
        devices = cpu_devices(backend) if allow_cpu else ["CPU:0"]
    return choose_plan(
        backend,
        devices,
        tpu_address=colab_tpu_address() if backend == "tensorflow" else None,
        allow_cpu=allow_cpu,
    )


def global_batch_size(per_replica: int, plan: Plan) -> int:
    """The batch ``model.fit`` gets: each replica takes ``per_replica`` images of it."""
    if isinstance(per_replica, bool) or not isinstance(per_replica, int) or per_replica < 1:
        raise DistributeError(f"per_replica must be a positive integer, got {per_replica!r}")
    return per_replica * plan.replicas


@functools.cache
def make_strategy(plan: Plan):
    """The backend object of a plan: a ``tf.distribute`` strategy, a
    ``keras.distribution.DataParallel``, or ``None`` for a single device. Made once per
    plan (a TPU is initialised only once per session)."""
    if plan.strategy == "single":
        return None
    if plan.strategy == "mirrored":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy([f"/{d}" for d in plan.devices])
    if plan.strategy == "tpu":
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=plan.tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if plan.strategy == "data_parallel":
        kinds = {_kind(d) for d in plan.devices}
        names = keras.distribution.list_devices(kinds.pop().lower())
        wanted = {int(d.rsplit(":", 1)[1]) for d in plan.devices}
        devices = [n for n in names if int(n.rsplit(":", 1)[1]) in wanted]
        return keras.distribution.DataParallel(devices=devices)
    raise DistributeError(f"unknown strategy {plan.strategy!r}; expected one of {STRATEGIES}")


@contextmanager
def _scope(plan: Plan) -> Iterator[object]:
    strategy = make_strategy(plan)
    if strategy is None:
        yield None
    elif plan.strategy == "data_parallel":
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(strategy)
        try:
            yield strategy
        finally:
            keras.distribution.set_distribution(previous)
    else:
        with strategy.scope():
            yield strategy
