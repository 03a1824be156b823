"""CIFAR-10: finding it, reading it safely, and splitting it.

``load_cifar10()`` reads the official "python version" of CIFAR-10
(``cifar-10-batches-py``, A. Krizhevsky, "Learning Multiple Layers of Features
from Tiny Images", 2009). It looks, in order, at

1. the ``data_dir`` argument,
2. the ``CIFAR10_DIR`` environment variable (an offline mirror),
3. the Keras download cache, downloading the archive once (checked by SHA-256).

Each of the first two may be the ``cifar-10-batches-py`` folder itself, a
folder that holds it (or the archive), or the ``cifar-10-python.tar.gz``
archive. The batch files are pickles; they are read with an unpickler that
only knows how to build NumPy arrays, so a hostile file is refused instead of
executed. Images stay ``uint8`` (150 MB for the training set); scaling to
floats happens inside the models.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import pickle
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from helpers import config

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: Height, width and channels of one CIFAR-10 image: the course's one name for it.
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = len(CLASS_NAMES)

DIR_ENV = "CIFAR10_DIR"
BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: SHA-256 of the official archive (the same checksum Keras uses).
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

_HOW_TO_GET = (
    f"Download {ORIGIN} (163 MB) on a machine that is online, copy it here, and set "
    f"{DIR_ENV} to the archive or to the folder it unpacks to ({BATCHES_DIR}). "
    f"On a course machine with ../shared, build a mirror with "
    f"`../shared/tools/make-cifar10-mirror DIR` and set {DIR_ENV} to the path it prints."
)


class CifarDataError(ValueError):
    """CIFAR-10 could not be found or a file of it is damaged; the message says what to do."""


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 as uint8 arrays: images ``(N, 32, 32, 3)`` and integer labels ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str


# --- reading batch files --------------------------------------------------------------------

# What the CIFAR-10 pickles need to rebuild their arrays, and nothing else. ``_codecs.encode``
# turns text back into bytes in pickles written by Python 3 with protocol 2; it runs no code.
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a function or class that a CIFAR-10 batch never needs."""


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, bytes, numbers and NumPy arrays; refuses any other callable."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _RefusedGlobal(
            f"refusing to load {module}.{name}: a CIFAR-10 batch contains only arrays, "
            "lists and bytes, so this file is not one (it may be malicious)"
        )


def _unpickle(raw: bytes, name: str) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _RefusedGlobal as err:
        raise CifarDataError(
            f"{name}: {err}. Replace it with the official file. {_HOW_TO_GET}"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
    ) as err:
        raise CifarDataError(
            f"{name} is truncated or corrupt ({type(err).__name__}: {err}). "
            f"Delete it and get the data again. {_HOW_TO_GET}"
        ) from err
    if not isinstance(obj, dict):
        raise CifarDataError(f"{name} does not hold a CIFAR-10 batch (a dict). {_HOW_TO_GET}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn one batch file's bytes into ``(images uint8 (N,32,32,3), labels int64 (N,))``."""
    batch = _unpickle(raw, name)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise CifarDataError(f"{name} has no 'data' array or no 'labels'. {_HOW_TO_GET}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CifarDataError(
            f"{name}: 'data' has shape {data.shape} and dtype {data.dtype}; a CIFAR-10 batch "
            f"holds uint8 rows of 3072 values (N, 3072). {_HOW_TO_GET}"
        )
    labels = np.asarray(labels)
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise CifarDataError(
            f"{name}: {labels.shape} labels for {len(data)} images; expected one integer "
            f"label per image. {_HOW_TO_GET}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise CifarDataError(
            f"{name}: labels range from {labels.min()} to {labels.max()}, outside 0-9. "
            f"The file is not CIFAR-10 (CIFAR-100?). {_HOW_TO_GET}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels last
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_batches_dir(folder: Path) -> tuple[np.ndarray, ...]:
    parts = {}
    for name in (*TRAIN_FILES, TEST_FILE):
        path = folder / name
        if not path.is_file():
            raise CifarDataError(
                f"{path} is missing: {folder} does not hold the CIFAR-10 batches "
                f"({', '.join(TRAIN_FILES)}, {TEST_FILE}). {_HOW_TO_GET}"
            )
        parts[name] = _parse_batch(path.read_bytes(), str(path))
    return _join(parts)


def _read_archive(archive: Path) -> tuple[np.ndarray, ...]:
    parts = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in (*TRAIN_FILES, TEST_FILE):
                label = f"{archive}!{BATCHES_DIR}/{name}"
                try:
                    member = tar.extractfile(f"{BATCHES_DIR}/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise CifarDataError(f"{label} is missing from the archive. {_HOW_TO_GET}")
                parts[name] = _parse_batch(member.read(), label)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise CifarDataError(
            f"{archive} is not a readable .tar.gz ({err}). Delete it and get it again. "
            f"{_HOW_TO_GET}"
        ) from err
    return _join(parts)


def _join(parts: dict) -> tuple[np.ndarray, ...]:
    x_train = np.concatenate([parts[n][0] for n in TRAIN_FILES])
    y_train = np.concatenate([parts[n][1] for n in TRAIN_FILES])
    x_test, y_test = parts[TEST_FILE]
    parts.clear()
    _release_freed_memory()
    return x_train, y_train, x_test, y_test


def _release_freed_memory() -> None:
    """Give the batch files' freed read buffers back to the operating system.

    glibc keeps large freed buffers for reuse, which here leaves about 170 MB
    of dead memory in the process after loading; on Binder's 2 GB that matters.
    Elsewhere (macOS, Windows, musl) this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- finding the data ------------------------------------------------------------------------


def _resolve(location: Path, origin: str) -> Path:
    """Map a user-given path to a batches folder or an archive, or explain what is wrong."""
    if not location.exists():
        raise CifarDataError(f"{origin} points at {location}, which does not exist. {_HOW_TO_GET}")
    if location.is_file():
        return location
    for candidate in (location, location / BATCHES_DIR):
        if (candidate / TEST_FILE).exists() or any((candidate / f).exists() for f in TRAIN_FILES):
            return candidate
    if (location / ARCHIVE_NAME).is_file():
        return location / ARCHIVE_NAME
    raise CifarDataError(
        f"{origin} points at {location}, which holds neither {BATCHES_DIR}/ nor "
        f"{ARCHIVE_NAME}. {_HOW_TO_GET}"
    )


def _download() -> Path:
    """Fetch the archive into the Keras cache (``~/.keras/datasets``), once, checksummed."""
    import keras

    origin = ORIGIN

    try:
        path = keras.utils.get_file(
            fname=ARCHIVE_NAME, origin=origin, file_hash=ARCHIVE_SHA256, hash_algorithm="sha256"
        )
    except Exception as err:  # urllib, SSL and checksum errors all land here
        raise CifarDataError(
            f"CIFAR-10 is not available offline and the download from {origin} failed "
            f"({type(err).__name__}: {err}). {_HOW_TO_GET}"
        ) from err
    return Path(path)


def describe_source(data_dir: str | os.PathLike | None = None) -> str:
    """Say where ``load_cifar10(data_dir)`` will read CIFAR-10 from, without reading it."""
    if data_dir is not None:
        return f"{data_dir} (argument)"
    if os.environ.get(DIR_ENV):
        return f"{os.environ[DIR_ENV]} ({DIR_ENV}, local mirror)"
    return f"Keras download cache (~/.keras/datasets/{ARCHIVE_NAME}, fetched once from {ORIGIN})"


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = config.DEFAULT_SEED,
) -> Cifar10:
    """Load CIFAR-10 as uint8 arrays, optionally as stratified slices of each split.

    ``data_dir`` (or ``CIFAR10_DIR``) may be the ``cifar-10-batches-py`` folder, a
    folder holding it or the archive, or the ``cifar-10-python.tar.gz`` archive;
    with neither, the official archive is downloaded once into the Keras cache.
    ``train_size``/``test_size`` keep that many images, with every class in
    the same proportion (see ``stratified_subset``). Raises ``CifarDataError``
    with what to do when the data is missing or damaged.
    """
    if data_dir is not None:
        origin = "data_dir"
        location = _resolve(Path(data_dir).expanduser(), origin)
    elif os.environ.get(DIR_ENV):
        origin = DIR_ENV
        location = _resolve(Path(os.environ[DIR_ENV]).expanduser(), origin)
    else:
        origin = "download"
        location = _download()
    if location.is_file():
        x_train, y_train, x_test, y_test = _read_archive(location)
    else:
        x_train, y_train, x_test, y_test = _read_batches_dir(location)
    dataset = Cifar10(x_train, y_train, x_test, y_test, CLASS_NAMES, f"{location} ({origin})")
    return subset(dataset, train_size=train_size, test_size=test_size, seed=seed)


def load_course_data(data_dir: str | os.PathLike | None = None) -> Cifar10:
    """CIFAR-10 at the size of the current mode: whole in the full course, a small
    stratified slice with ``COURSE_FAST=1`` (see ``helpers.config``)."""
    mode = config.current_mode()
    return load_cifar10(data_dir, train_size=mode.train_size, test_size=mode.test_size)


def channel_stats(images: np.ndarray, chunk: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, in pixel units (0-255).

    Works through the images a chunk at a time, so it never holds a float copy
    of the whole dataset (50,000 images as float64 would take 1.2 GB).
    """
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, 3).astype(np.float64)
        total += block.sum(axis=0)
        total_sq += (block**2).sum(axis=0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    return mean, np.sqrt(total_sq / count - mean**2)


def memory_table(n_images: int, shape: tuple[int, ...] = (32, 32, 3)):
    """How much memory ``n_images`` take as uint8, float32 and float64 (a pandas DataFrame)."""
    import pandas as pd

    values = n_images * int(np.prod(shape))
    rows = [
        {
            "dtype": name,
            "bytes per value": np.dtype(name).itemsize,
            "MB": values * np.dtype(name).itemsize / 1e6,
        }
        for name in ("uint8", "float32", "float64")
    ]
    return pd.DataFrame(rows).set_index("dtype")


# --- splitting -------------------------------------------------------------------------------


def stratified_subset(
    x: np.ndarray, y: np.ndarray, size: int, seed: int = config.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``size`` examples with the class proportions of ``y`` (seeded, reproducible)."""
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(y))
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError(f"subset size must be an integer, got {size!r}")
    if not n_classes <= size <= len(y):
        raise ValueError(
            f"subset size must be between {n_classes} (one per class) and {len(y)} "
            f"(all examples), got {size}"
        )
    if size == len(y):
        return x, y
    keep, _ = train_test_split(
        np.arange(len(y)), train_size=int(size), stratify=y, random_state=seed
    )
    keep.sort()
    return x[keep], y[keep]


def subset(
    dataset: Cifar10,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = config.DEFAULT_SEED,
) -> Cifar10:
    """A copy of ``dataset`` with stratified slices of its train and/or test split."""
    x_train, y_train, x_test, y_test = (
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
    )
    if train_size is not None:
        x_train, y_train = stratified_subset(x_train, y_train, train_size, seed)
    if test_size is not None:
        x_test, y_test = stratified_subset(x_test, y_test, test_size, seed)
    return replace(dataset, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = config.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``(x_train, y_train, x_val, y_val)`` with the same class balance in both.

    A stratified split keeps each class at 10% of the validation set, so its
    accuracy is not skewed by chance; the seed makes the split reproducible.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(val_fraction, bool) or not isinstance(val_fraction, float | int):
        raise ValueError(f"val_fraction must be a number between 0 and 1, got {val_fraction!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be strictly between 0 and 1 (e.g. 0.1 for 10%), got {val_fraction}"
        )
    n_classes = len(np.unique(y))
    n_val = int(np.ceil(val_fraction * len(y)))
    if n_val < n_classes or len(y) - n_val < n_classes:
        raise ValueError(
            f"val_fraction={val_fraction} of {len(y)} examples leaves fewer than one example "
            f"per class ({n_classes}) on one side; use more data or a fraction nearer 0.5"
        )
    x_tr, x_val, y_tr, y_val = train_test_split(
        x, y, test_size=val_fraction, stratify=y, random_state=seed
    )
    return x_tr, y_tr, x_val, y_val
