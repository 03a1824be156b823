"""The GPU fast path: the compile and fit settings that make the same Keras model train faster
on the device present (mixed precision, XLA, ``steps_per_execution``, batch size with the
learning rate, the training set kept on the device). Notebook 07 explains each lever;
``helpers.capstone`` applies them.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import keras
import numpy as np

from helpers import config

#: Precision policies by device; see ``precision_policy``.
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
#: The batch size that learning rates in the course are quoted for.
REFERENCE_BATCH_SIZE = 512


class AcceleratorError(ValueError):
    """A fast-path option is out of range; the message says which values are accepted."""


@dataclass(frozen=True)
class FastPath:
    """Fit and compile settings for one device kind, from ``fast_path_settings``. Set
    ``precision`` (``use_precision``) before building the model: layers pick their dtype
    when they are created."""

    kind: str
    count: int
    precision: str
    jit_compile: bool | str
    steps_per_execution: int
    batch_size: int
    learning_rate: float
    resident_data: bool = False
    backend: str = ""

    def compile_kwargs(self) -> dict:
        """``jit_compile`` and ``steps_per_execution`` for ``model.compile``."""
        return {"jit_compile": self.jit_compile, "steps_per_execution": self.steps_per_execution}

    def fit_kwargs(self) -> dict:
        """``batch_size`` for ``model.fit``."""
        return {"batch_size": self.batch_size}

    def describe(self) -> str:
        """One line a notebook prints: what the fast path chose, and on which device."""
        device = self.kind + (f" x{self.count}" if self.count > 1 else "")
        device += f" ({self.backend})" if self.backend else ""
        return (
            f"{device}: precision {self.precision}, jit_compile={self.jit_compile}, "
            f"steps_per_execution={self.steps_per_execution}, batch {self.batch_size}, "
            f"learning rate {self.learning_rate:g}"
            + (", training set on the device" if self.resident_data else "")
        )

    def as_dict(self) -> dict:
        """The settings as a plain dict (for tables and benchmark JSON files)."""
        return asdict(self)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or kind.upper() not in ("CPU", "GPU", "TPU"):
        raise AcceleratorError(f"device kind must be 'CPU', 'GPU' or 'TPU', got {kind!r}")
    return kind.upper()


def _check_positive_int(option: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AcceleratorError(f"{option} must be a positive integer, got {value!r}")
    return value


def precision_policy(kind: str, compute_capability: tuple[int, int] | None = None) -> str:
    """The Keras dtype policy for a device. ``"mixed_bfloat16"`` on TPUs and on GPUs of compute
    capability 8.0 or newer (bfloat16 has float32's range: no loss scaling needed);
    ``"mixed_float16"`` on older GPUs or an unknown capability (Keras then adds loss scaling
    to the optimizer); ``"float32"`` on the CPU, the precision the course's CPU recipes were
    measured in (on a CPU with bfloat16 matrix units, Intel AMX, the capstone's GPU widths
    trained 1.7x faster in ``mixed_bfloat16``: ``benchmarks/precision_speed.py``)."""
    kind = _check_kind(kind)
    if kind == "CPU":
        return "float32"
    if kind == "TPU" or (compute_capability is not None and tuple(compute_capability) >= (8, 0)):
        return "mixed_bfloat16"
    return "mixed_float16"


def scale_learning_rate(
    learning_rate: float, batch_size: int, reference_batch_size: int = REFERENCE_BATCH_SIZE
) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``learning_rate`` is quoted for
    ``reference_batch_size``; a batch ``k`` times larger gets ``k`` times the rate."""
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("reference_batch_size", reference_batch_size)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
        raise AcceleratorError(f"learning_rate must be a number, got {learning_rate!r}")
    if not learning_rate > 0:
        raise AcceleratorError(f"learning_rate must be positive, got {learning_rate}")
    return float(learning_rate) * batch_size / reference_batch_size


def gpu_compute_capability() -> tuple[int, int] | None:
    """The compute capability of the first GPU the Keras backend sees, e.g. ``(9, 0)`` for an
    H100, or ``None`` when there is no GPU or the backend cannot tell."""
    backend, value = keras.backend.backend(), None
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                value = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        elif backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if gpus and getattr(gpus[0], "compute_capability", None):
                value = str(gpus[0].compute_capability).split(".")[:2]
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                value = torch.cuda.get_device_capability(0)
        return tuple(int(v) for v in value) if value else None
    except (RuntimeError, ValueError, AttributeError):
        return None


def fast_path_settings(
    kind: str | None = None,
    count: int | None = None,
    *,
    compute_capability: tuple[int, int] | None = None,
    batch_size: int = REFERENCE_BATCH_SIZE,
    learning_rate: float = 0.1,
    reference_batch_size: int = REFERENCE_BATCH_SIZE,
    steps_per_execution: int | None = None,
    resident_data: bool | None = None,
    backend: str | None = None,
) -> FastPath:
    """The fit/compile settings for a device: ``kind``/``count``/``compute_capability`` are
    detected when left out (pass them to see what another machine would get).

    ``batch_size`` is per device: the global batch is ``batch_size * count``, and the
    learning rate, quoted for ``reference_batch_size``, grows with it. XLA is on for GPUs
    and TPUs, and ``"auto"`` on the CPU (Keras: off on TensorFlow, where compiling costs more
    than it saves in a short run; on with JAX, whose only fast mode is compiled).
    ``steps_per_execution`` defaults to 1 on the CPU, 8 on a GPU, 32 on a TPU;
    ``resident_data`` to on except on the CPU (whose memory is the host's). On PyTorch
    (``backend``, default: Keras's) Keras allows one step per call, and reads
    ``jit_compile=True`` as ``torch.compile``, which the course has not tested: both stay off.
    """
    backend = backend or keras.backend.backend()
    if kind is None:
        kind, detected = config.detect_accelerator()
        count = detected if count is None else count
        if compute_capability is None and kind == "GPU":
            compute_capability = gpu_compute_capability()
    kind = _check_kind(kind)
    count = _check_positive_int("count", 1 if count is None else count)
    batch_size = _check_positive_int("batch_size", batch_size) * count
    torch = backend == "torch"
    if steps_per_execution is None:
        steps_per_execution = 1 if torch else {"CPU": 1, "GPU": 8, "TPU": 32}[kind]
    steps_per_execution = _check_positive_int("steps_per_execution", steps_per_execution)
    if torch and steps_per_execution > 1:
        raise AcceleratorError(
            f"steps_per_execution={steps_per_execution}: Keras's PyTorch backend runs one step "
            "per call (steps_per_execution=1); use 1, or the TensorFlow or JAX backend"
        )
    return FastPath(
        kind=kind,
        count=count,
        precision=precision_policy(kind, compute_capability),
        jit_compile=False if torch else "auto" if kind == "CPU" else True,
        steps_per_execution=steps_per_execution,
        batch_size=batch_size,
        learning_rate=scale_learning_rate(learning_rate, batch_size, reference_batch_size),
        resident_data=kind != "CPU" if resident_data is None else bool(resident_data),
        backend=backend,
    )


@contextmanager
def use_precision(policy: str):
    """Build models inside ``with use_precision("mixed_bfloat16"):``; the previous global
    dtype policy comes back afterwards, so later cells of a notebook are not affected."""
    if policy not in POLICIES:
        raise AcceleratorError(f"precision policy must be one of {POLICIES}, got {policy!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


class ImageBank(keras.layers.Layer):
    """The lookup layer of ``resident_data_model``: a ``uint8`` image array held as one
    non-trainable variable (so on the device); returns the images at the given indices."""

    def __init__(self, images, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.images = self.add_weight(
            shape=images.shape,
            dtype="uint8",
            initializer=lambda shape, dtype=None: keras.ops.convert_to_tensor(images),
            trainable=False,
            name="images",
        )

    def call(self, indices):
        return keras.ops.take(self.images, indices, axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, *self.images.shape[1:])


def resident_data_model(model, images: np.ndarray):
    """A model to *train* ``model`` with ``images`` kept on the device.

    The uint8 ``(N, height, width, channels)`` images are copied once into a variable on
    the accelerator; the returned model takes int32 indices (``resident_indices``) and feeds
    the images at them to ``model``, so each step sends 4 bytes per image instead of 3,072.
    It shares ``model``'s weights: evaluate, predict with and save ``model``, not it.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise AcceleratorError(
            f"resident_data_model needs uint8 images of shape (N, height, width, channels), "
            f"got {images.dtype} {images.shape}; pass the images as helpers.data loads them"
        )
    if tuple(model.input.shape[1:]) != images.shape[1:] or model.input.dtype != "uint8":
        raise AcceleratorError(
            f"the model takes {model.input.dtype} {tuple(model.input.shape[1:])}, the images "
            f"are uint8 {images.shape[1:]}: build the model for uint8 images of that shape"
        )
    index = keras.Input(shape=(), dtype="int32", name="index")
    bank = ImageBank(images, name="resident_images")
    return keras.Model(index, model(bank(index)), name=f"{model.name}_resident")


def resident_indices(images: np.ndarray) -> np.ndarray:
    """The inputs for a ``resident_data_model``: ``0, 1, ..., len(images) - 1`` as int32."""
    return np.arange(len(images), dtype="int32")
