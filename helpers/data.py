"""CIFAR-10 (A. Krizhevsky, 2009): finding it, loading it, and splitting it.

``load_cifar10`` reads the official "python version" from, in order, its ``data_dir``
argument, the ``CIFAR10_DIR`` environment variable (an offline mirror), or the Keras download
cache (downloading the archive once, checked by SHA-256); the files are read safely by
``helpers.cifar_files``. Images stay ``uint8``; scaling to floats happens inside the models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from helpers import cifar_files, config
from helpers.cifar_files import (
    ARCHIVE_NAME,
    BATCHES_DIR,
    CLASS_NAMES,
    DIR_ENV,
    HOW_TO_GET,
    ORIGIN,
    TEST_FILE,
    TRAIN_FILES,
    CifarDataError,
    read_archive,
    read_batches_dir,
)

#: Shared with ``cifar_files``; the notebooks read them here (``data.IMAGE_SHAPE``).
IMAGE_SHAPE, NUM_CLASSES = cifar_files.IMAGE_SHAPE, cifar_files.NUM_CLASSES

#: SHA-256 of the official archive (the same checksum Keras uses).
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 as uint8 arrays: images ``(N, 32, 32, 3)`` and integer labels ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str


def _resolve(location: Path, origin: str) -> Path:
    """Map a user-given path to a batches folder or an archive, or explain what is wrong."""
    if not location.exists():
        raise CifarDataError(f"{origin} points at {location}, which does not exist. {HOW_TO_GET}")
    if location.is_file():
        return location
    for candidate in (location, location / BATCHES_DIR):
        if (candidate / TEST_FILE).exists() or any((candidate / f).exists() for f in TRAIN_FILES):
            return candidate
    if (location / ARCHIVE_NAME).is_file():
        return location / ARCHIVE_NAME
    raise CifarDataError(
        f"{origin} points at {location}, which holds neither {BATCHES_DIR}/ nor "
        f"{ARCHIVE_NAME}. {HOW_TO_GET}"
    )


def _download() -> Path:
    """Fetch the archive into the Keras cache (``~/.keras/datasets``), once, checksummed."""
    import keras

    try:
        path = keras.utils.get_file(
            fname=ARCHIVE_NAME, origin=ORIGIN, file_hash=ARCHIVE_SHA256, hash_algorithm="sha256"
        )
    except Exception as err:  # urllib, SSL and checksum errors all land here
        raise CifarDataError(
            f"CIFAR-10 is not available offline and the download from {ORIGIN} failed "
            f"({type(err).__name__}: {err}). {HOW_TO_GET}"
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

    ``data_dir`` (or ``CIFAR10_DIR``) may be the ``cifar-10-batches-py`` folder, a folder
    holding it or the archive, or the ``cifar-10-python.tar.gz`` archive; with neither, the
    archive is downloaded once. ``train_size``/``test_size`` keep that many images, every
    class in the same proportion. Raises ``CifarDataError`` saying what to do when the data
    is missing or damaged.
    """
    if data_dir is None and not os.environ.get(DIR_ENV):
        origin, location = "download", _download()
    else:
        origin = "data_dir" if data_dir is not None else DIR_ENV
        given = data_dir if data_dir is not None else os.environ[DIR_ENV]
        location = _resolve(Path(given).expanduser(), origin)
    read = read_archive if location.is_file() else read_batches_dir
    dataset = Cifar10(*read(location), CLASS_NAMES, f"{location} ({origin})")
    return subset(dataset, train_size=train_size, test_size=test_size, seed=seed)


def load_course_data(data_dir: str | os.PathLike | None = None) -> Cifar10:
    """CIFAR-10 at the size of the current mode: whole in the full course, a small
    stratified slice with ``COURSE_FAST=1`` (see ``helpers.config``)."""
    mode = config.current_mode()
    return load_cifar10(data_dir, train_size=mode.train_size, test_size=mode.test_size)


def channel_stats(images: np.ndarray, chunk: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, in pixel units (0-255),
    computed a chunk at a time: a float64 copy of the training set would take 1.2 GB."""
    if getattr(images, "ndim", 0) != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(
            "channel_stats needs a non-empty array of colour images, shape (N, height, width, "
            f"3), got shape {getattr(images, 'shape', type(images).__name__)}"
        )
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, 3).astype(np.float64)
        total += block.sum(axis=0)
        total_sq += (block**2).sum(axis=0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    return mean, np.sqrt(total_sq / count - mean**2)


def _class_counts(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The classes in ``y`` and how many examples each has, once ``x`` and ``y`` agree."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(
            f"{what} needs y with one integer label per example, shape (N,) with N > 0; got "
            f"shape {y.shape}. For one-hot labels pass y.argmax(axis=1)"
        )
    if len(x) != len(y):
        raise ValueError(
            f"{what}: x has {len(x)} examples but y has {len(y)} labels; pass the images and "
            "the labels of the same split"
        )
    return np.unique(y, return_counts=True)


def _two_of_each(classes: np.ndarray, counts: np.ndarray, what: str) -> None:
    """Refuse a stratified split when some class has a single example."""
    if counts.min() < 2:
        label = classes[counts.argmin()].item()
        raise ValueError(
            f"{what}: class {label!r} has only 1 example, but a stratified split (scikit-learn's "
            "train_test_split with stratify=) needs at least two examples of each class. Add "
            f"examples of class {label!r} or leave it out of x and y"
        )


def stratified_subset(
    x: np.ndarray, y: np.ndarray, size: int, seed: int = config.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``size`` examples with the class proportions of ``y`` (seeded, reproducible)."""
    from sklearn.model_selection import train_test_split

    classes, counts = _class_counts(x, y, "stratified_subset")
    n_classes = len(classes)
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError(f"subset size must be an integer, got {size!r}")
    if not n_classes <= size <= len(y):
        raise ValueError(
            f"subset size must be between {n_classes} (one per class) and {len(y)} "
            f"(all examples), got {size}"
        )
    if size == len(y):
        return x, y
    if len(y) - size < n_classes:
        raise ValueError(
            f"subset size {size} of {len(y)} leaves out fewer examples than there are classes "
            f"({n_classes}), which a stratified draw cannot do; keep all {len(y)} or at most "
            f"{len(y) - n_classes}"
        )
    _two_of_each(classes, counts, "stratified_subset")
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
    x_train, y_train = dataset.x_train, dataset.y_train
    x_test, y_test = dataset.x_test, dataset.y_test
    if train_size is not None:
        x_train, y_train = stratified_subset(x_train, y_train, train_size, seed)
    if test_size is not None:
        x_test, y_test = stratified_subset(x_test, y_test, test_size, seed)
    return replace(dataset, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = config.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``(x_train, y_train, x_val, y_val)``, stratified (the same class balance in
    both, so validation accuracy is not skewed by chance) and seeded (reproducible)."""
    from sklearn.model_selection import train_test_split

    if isinstance(val_fraction, bool) or not isinstance(val_fraction, float | int):
        raise ValueError(f"val_fraction must be a number between 0 and 1, got {val_fraction!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be strictly between 0 and 1 (e.g. 0.1 for 10%), got {val_fraction}"
        )
    classes, counts = _class_counts(x, y, "train_val_split")
    _two_of_each(classes, counts, "train_val_split")
    n_classes = len(classes)
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
