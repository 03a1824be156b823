"""Shared fixtures: tiny CIFAR-10 files in the official layout, made in tmp_path."""

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_batch(path: Path, n: int, seed: int, labels=None, data=None) -> None:
    """Write one batch file exactly as the official release does (dict with bytes keys)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = [i % 10 for i in range(n)]
    if data is None:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    batch = {
        b"batch_label": b"test batch",
        b"labels": list(labels),
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def tiny_cifar(tmp_path) -> Path:
    """A folder holding ``cifar-10-batches-py`` with 5 x 20 training and 20 test images."""
    folder = tmp_path / "mirror" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for seed, name in enumerate(BATCH_FILES):
        write_batch(folder / name, 20, seed)
    return folder


@pytest.fixture
def tiny_cifar_archive(tiny_cifar, tmp_path) -> Path:
    """The same tiny data packed like the official ``cifar-10-python.tar.gz``."""
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_cifar, arcname="cifar-10-batches-py")
    return archive


@pytest.fixture
def no_cifar_env(monkeypatch):
    """Make sure a mirror configured for the notebooks does not leak into unit tests."""
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
