"""helpers.data: locating, reading and splitting CIFAR-10, and refusing bad files."""

import os
import pickle

import numpy as np
import pytest

from helpers import data
from helpers.data import CifarDataError, load_cifar10

from .conftest import write_batch


def test_reads_batches_folder_as_uint8_channels_last(tiny_cifar, no_cifar_env):
    ds = load_cifar10(tiny_cifar)
    assert ds.x_train.shape == (100, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (20, 32, 32, 3)
    assert ds.y_train.shape == (100,) and ds.y_train.dtype == np.int64
    assert ds.class_names[0] == "airplane" and len(ds.class_names) == 10
    # Row layout is 1024 red, 1024 green, 1024 blue values: check one pixel by hand.
    raw = pickle.loads((tiny_cifar / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    assert ds.x_train[0, 0, 1].tolist() == [raw[0, 1], raw[0, 1024 + 1], raw[0, 2048 + 1]]


@pytest.mark.parametrize("how", ["batches_dir", "parent_dir", "archive", "archive_parent"])
def test_cifar10_dir_accepts_every_documented_location(
    how, tiny_cifar, tiny_cifar_archive, monkeypatch
):
    location = {
        "batches_dir": tiny_cifar,
        "parent_dir": tiny_cifar.parent,
        "archive": tiny_cifar_archive,
        "archive_parent": tiny_cifar_archive.parent,
    }[how]
    if how == "archive_parent":  # a folder with only the archive in it
        os.rename(tiny_cifar.parent, tiny_cifar.parent.with_name("moved"))
    monkeypatch.setenv("CIFAR10_DIR", str(location))
    ds = load_cifar10()
    assert len(ds.x_train) == 100 and len(ds.x_test) == 20
    assert "CIFAR10_DIR" in ds.source


def test_argument_wins_over_environment(tiny_cifar, monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "nowhere"))
    assert "data_dir" in load_cifar10(tiny_cifar).source


def test_missing_folder_names_path_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(CifarDataError, match=r"CIFAR10_DIR.*nowhere.*does not exist.*make-cifar10"):
        load_cifar10()


def test_folder_without_batches(monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "empty"))
    with pytest.raises(CifarDataError, match=r"empty.*neither cifar-10-batches-py"):
        load_cifar10()


def test_one_batch_missing_names_it(tiny_cifar, no_cifar_env):
    (tiny_cifar / "data_batch_3").unlink()
    with pytest.raises(CifarDataError, match=r"data_batch_3 is missing"):
        load_cifar10(tiny_cifar)


def test_truncated_batch_names_file_and_says_what_to_do(tiny_cifar, no_cifar_env):
    path = tiny_cifar / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CifarDataError, match=r"data_batch_2 is truncated or corrupt.*get the data"):
        load_cifar10(tiny_cifar)


def test_truncated_archive(tiny_cifar_archive, no_cifar_env):
    tiny_cifar_archive.write_bytes(tiny_cifar_archive.read_bytes()[:3000])
    with pytest.raises(CifarDataError, match=r"cifar-10-python.tar.gz.*(truncated|not a readable)"):
        load_cifar10(tiny_cifar_archive)


def test_wrong_shape(tiny_cifar, no_cifar_env):
    write_batch(tiny_cifar / "test_batch", 4, 0, data=np.zeros((4, 1024), np.uint8))
    with pytest.raises(CifarDataError, match=r"test_batch: 'data' has shape \(4, 1024\)"):
        load_cifar10(tiny_cifar)


def test_label_count_mismatch(tiny_cifar, no_cifar_env):
    write_batch(tiny_cifar / "test_batch", 4, 0, labels=[1, 2, 3])
    with pytest.raises(CifarDataError, match=r"test_batch: \(3,\) labels for 4 images"):
        load_cifar10(tiny_cifar)


def test_labels_out_of_range(tiny_cifar, no_cifar_env):
    write_batch(tiny_cifar / "data_batch_4", 4, 0, labels=[0, 1, 2, 57])
    with pytest.raises(CifarDataError, match=r"data_batch_4: labels range from 0 to 57, outside"):
        load_cifar10(tiny_cifar)


class _Exploit:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_not_executed(tiny_cifar, tmp_path, no_cifar_env):
    marker = tmp_path / "pwned"
    # Prove the payload really runs under a plain pickle.load...
    pickle.loads(pickle.dumps(_Exploit(tmp_path / "control")))
    assert (tmp_path / "control").exists()
    # ...and that the course's loader refuses it without running it.
    payload = {b"data": _Exploit(marker), b"labels": [0]}
    (tiny_cifar / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CifarDataError, match=r"data_batch_1: refusing to load posix.system"):
        load_cifar10(tiny_cifar)
    assert not marker.exists()


def test_no_mirror_and_no_network_explains_how_to_get_data(no_cifar_env, monkeypatch, tmp_path):
    # An empty Keras cache and an origin that refuses connections: the real download path fails.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "ORIGIN", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(
        CifarDataError, match=r"download from http://127.0.0.1:9.*failed.*CIFAR10_DIR"
    ):
        load_cifar10()


def test_subsets_are_stratified_and_reproducible(tiny_cifar, no_cifar_env):
    ds = load_cifar10(tiny_cifar, train_size=50, test_size=10, seed=3)
    assert np.bincount(ds.y_train).tolist() == [5] * 10
    assert np.bincount(ds.y_test).tolist() == [1] * 10
    again = load_cifar10(tiny_cifar, train_size=50, test_size=10, seed=3)
    np.testing.assert_array_equal(ds.x_train, again.x_train)


def test_train_val_split_is_stratified_seeded_and_disjoint():
    x = np.arange(1000).reshape(1000, 1)
    y = np.repeat(np.arange(10), 100)
    x_tr, y_tr, x_val, y_val = data.train_val_split(x, y, 0.2, seed=1)
    assert len(x_val) == 200 and np.bincount(y_val).tolist() == [20] * 10
    assert not set(x_tr.ravel()) & set(x_val.ravel())
    np.testing.assert_array_equal(x_val, data.train_val_split(x, y, 0.2, seed=1)[2])
    assert not np.array_equal(x_val, data.train_val_split(x, y, 0.2, seed=2)[2])


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.1", True])
def test_bad_split_fraction(fraction):
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split(y.reshape(-1, 1), y, fraction)


def test_split_too_small_for_classes():
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match="fewer than one example per class"):
        data.train_val_split(y.reshape(-1, 1), y, 0.05)


@pytest.mark.parametrize("size", [0, 5, 101, 2.5, "10", None])
def test_bad_subset_size(size):
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match="subset size"):
        data.stratified_subset(y.reshape(-1, 1), y, size)


def test_subset_that_leaves_out_fewer_than_one_per_class():
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match=r"subset size 95 of 100 leaves out fewer .* at most 90"):
        data.stratified_subset(y.reshape(-1, 1), y, 95)


@pytest.mark.parametrize("y", [np.eye(10)[np.arange(20) % 10], np.array([], dtype=int)])
def test_split_needs_one_label_per_example(y):
    with pytest.raises(ValueError, match=r"one integer label per example.*argmax"):
        data.train_val_split(np.zeros((len(y), 1)), y, 0.5)


@pytest.mark.parametrize("images", [np.zeros((4, 32, 32), np.uint8), np.zeros((0, 32, 32, 3))])
def test_channel_stats_names_the_shape_it_needs(images):
    with pytest.raises(ValueError, match=r"shape \(N, height, width, 3\), got shape"):
        data.channel_stats(images)
