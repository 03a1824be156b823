"""Course-wide settings: the fast/full mode switch, seeds, device and platform.

Every notebook starts with ``config.setup()``. Everything that depends on the
mode (data size, epochs) is read from here, never from ad-hoc variables in a
notebook, so ``COURSE_FAST=1`` shrinks the whole course in one place.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The public repository; the Colab setup cell of every notebook installs from it.
REPO_URL = "https://github.com/dl-image-course/keras-image-recognition"

#: Environment variable of the mode switch: ``COURSE_FAST=1`` is the fast mode.
FAST_ENV = "COURSE_FAST"

#: Seed used by ``setup()`` unless a notebook asks for another one.
DEFAULT_SEED = 42

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Mode:
    """How big the course runs: ``fast`` (CI, smoke tests) or ``full`` (the real course), with
    the sizes of the CIFAR-10 slices it uses (``None``: the whole split)."""

    name: str
    train_size: int | None
    test_size: int | None

    @property
    def fast(self) -> bool:
        return self.name == "fast"


FAST = Mode("fast", train_size=2_000, test_size=1_000)
FULL = Mode("full", train_size=None, test_size=None)


def current_mode(environ: Mapping[str, str] | None = None) -> Mode:
    """The mode ``COURSE_FAST`` selects (unset or ``0``: full). Raises ``ValueError`` for a
    value that is neither on nor off: a typo should not silently run the full course on CI."""
    raw = (os.environ if environ is None else environ).get(FAST_ENV, "")
    if raw.strip().lower() in _TRUE:
        return FAST
    if raw.strip().lower() in _FALSE:
        return FULL
    raise ValueError(
        f"{FAST_ENV}={raw!r} is not a valid mode. Use {FAST_ENV}=1 for the fast mode "
        f"(small data, a few epochs) or leave it unset (or {FAST_ENV}=0) for the full course."
    )


def is_fast() -> bool:
    """True when the course runs in fast mode (``COURSE_FAST=1``)."""
    return current_mode().fast


def pick(*, fast, full):
    """``fast`` in fast mode, ``full`` otherwise: ``EPOCHS = pick(fast=1, full=30)``."""
    return fast if is_fast() else full


def set_seed(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and the Keras backend so a re-run gives the same numbers."""
    import keras

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    # Keras also seeds TensorFlow when it is installed, importing it on the JAX and torch
    # backends too: filter its start-up log here as well.
    with _filtered_stderr(ROUTINE_STARTUP_LOG):
        keras.utils.set_random_seed(seed)
    return seed


def detect_platform(environ: Mapping[str, str] | None = None) -> str:
    """Where the notebook runs: ``"colab"``, ``"binder"`` or ``"local"``."""
    environ = os.environ if environ is None else environ
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in environ:
        return "colab"
    if "BINDER_LAUNCH_HOST" in environ or "BINDER_REPO_URL" in environ:
        return "binder"
    return "local"


#: Lines the backends print to stderr on every start, whatever the machine: notices, not
#: problems (TensorFlow's oneDNN and CPU-instruction notices, "no CUDA driver" on a machine
#: without a GPU). ``start_backend`` filters them; every other line still reaches stderr.
ROUTINE_STARTUP_LOG = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "failed call to cuInit",
)


@contextmanager
def _filtered_stderr(routine: tuple[str, ...]) -> Iterator[None]:
    """Capture what C++ code writes to file descriptor 2, then re-emit all but ``routine`` lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not any(notice in line for notice in routine):
                    print(line, file=sys.stderr)


def start_backend() -> str:
    """Import Keras, start its backend and probe the devices with ``ROUTINE_STARTUP_LOG``
    filtered out (every notebook's first cell: no red start-up text, real errors still show);
    returns the backend's name."""
    with _filtered_stderr(ROUTINE_STARTUP_LOG):
        import keras

        detect_accelerator()
    return keras.backend.backend()


def detect_accelerator() -> tuple[str, int]:
    """Return the accelerator kind the Keras backend sees (``"GPU"``, ``"TPU"`` or ``"CPU"``)
    and how many of them there are (1 for the CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        for kind in ("TPU", "GPU"):
            devices = tf.config.list_logical_devices(kind)
            if devices:
                return kind, len(devices)
    elif backend == "jax":
        import jax

        devices = [d for d in jax.devices() if d.platform != "cpu"]
        if devices:
            return devices[0].platform.upper(), len(devices)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "GPU", torch.cuda.device_count()
    return "CPU", 1


def transfer_input_size(accelerator: str | None = None) -> int:
    """Side in pixels of the images fed to VGG16 (notebook 04): 32 px (CIFAR-10's own, the
    smallest VGG16 accepts) on a CPU, where the cost grows with the square of the side; 128 px
    on a GPU or TPU (``accelerator``, default: the detected one)."""
    kind = accelerator or detect_accelerator()[0]
    return 32 if kind.upper() == "CPU" else 128


def project_root() -> Path:
    """The course's root folder (the one with ``notebooks/``), or the working directory
    when ``helpers`` was installed from a package rather than from the repository."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "notebooks").is_dir() else Path.cwd()


def artifacts_dir() -> Path:
    """Folder for checkpoints, saved models and caches (``COURSE_ARTIFACTS`` overrides it)."""
    path = Path(os.environ.get("COURSE_ARTIFACTS") or project_root() / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def banner(seed: int) -> str:
    """The summary ``setup()`` prints: versions, device, mode, how to switch the backend."""
    import keras

    mode, (kind, count) = current_mode(), detect_accelerator()
    sizes = "full CIFAR-10"
    if mode.fast:
        sizes = f"{mode.train_size:,} train / {mode.test_size:,} test images, a few epochs"
    backend = keras.backend.backend()
    version = getattr(sys.modules.get(backend), "__version__", "")  # tensorflow, jax, torch
    return "\n".join(
        [
            f"Python {platform.python_version()} | Keras {keras.__version__} "
            f"(backend: {backend}{f' {version}' if version else ''})",
            f"Device: {kind}{f' x{count}' if count > 1 else ''} | Platform: {detect_platform()}",
            f"Mode: {mode.name} ({sizes}) | seed {seed}",
            backend_switch_hint(),
        ]
    )


#: The Keras backends the course runs on (``KERAS_BACKEND``).
BACKENDS = ("tensorflow", "jax", "torch")


def backend_switch_hint(
    platform_name: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The banner's last line: the active backend, what chose it (Keras reads
    ``KERAS_BACKEND``, else ``~/.keras/keras.json``, else uses TensorFlow, once, at its first
    import), and how to choose another on this platform."""
    import keras

    environ = os.environ if environ is None else environ
    platform_name = platform_name or detect_platform(environ)
    active = keras.backend.backend()
    other, third = [name for name in BACKENDS if name != active][:2]
    home = environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            in_json = json.load(file).get("backend")
    except (OSError, ValueError, AttributeError):
        in_json = None
    if environ.get("KERAS_BACKEND"):
        source = "KERAS_BACKEND"
    elif isinstance(in_json, str) and in_json:
        source = "~/.keras/keras.json"
    else:
        source = "Keras's default"
    if platform_name == "colab":
        how = (
            f'put os.environ["KERAS_BACKEND"] = "{other}" (or "{third}") in a new first cell, '
            "before importing keras, then Runtime > Restart session and run all"
        )
    else:
        how = (
            f"set KERAS_BACKEND={other} (or {third}) before Keras is imported, "
            f'e.g. make lab BACKEND={other}, or set "backend" in ~/.keras/keras.json'
        )
    return f"Backend: {active} (chosen by {source}); to switch, {how}"


def setup(seed: int = DEFAULT_SEED) -> Mode:
    """Seed everything and print the banner (every notebook calls it first); returns the
    current ``Mode``."""
    mode = current_mode()  # fail early on a bad COURSE_FAST value
    set_seed(seed)
    print(banner(seed))
    return mode
