"""helpers.image_folder: the folder check finds exactly the planted problems, reads only, and
the clean view of links is what image_dataset_from_directory reads."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import image_folder
from tests import own_images


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the SHA-256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return own_images.build(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def report(folder):
    return image_folder.check_folder(folder)


def test_the_test_folder_has_what_own_images_promises(folder):
    assert sorted(p.name for p in folder.iterdir()) == sorted(own_images.CLASSES)
    for relative in (own_images.CORRUPT, own_images.NOT_IMAGE, own_images.DUPLICATE):
        assert (folder / relative).is_file()


def test_check_finds_exactly_the_corrupt_the_non_image_and_the_duplicate(report):
    assert set(report.skipped) == {own_images.CORRUPT, own_images.NOT_IMAGE}
    assert "corrupt" in report.skipped[own_images.CORRUPT]
    assert "not an image" in report.skipped[own_images.NOT_IMAGE]
    assert report.duplicates == {own_images.DUPLICATE: own_images.DUPLICATE_OF}
    assert report.tiny == {}
    assert report.class_names == sorted(own_images.CLASSES)


def test_class_counts_leave_out_the_skipped_files_and_the_second_copy(report):
    assert report.counts == {name: own_images.PER_CLASS for name in sorted(own_images.CLASSES)}
    files, labels = report.labelled()
    assert len(files) == len(labels) == own_images.PER_CLASS * len(own_images.CLASSES)
    assert own_images.DUPLICATE_OF in files and own_images.DUPLICATE not in files
    assert all(Path(f).parts[0] == label for f, label in zip(files, labels, strict=True))


def test_the_report_names_every_problem(report):
    text = str(report)
    for relative in (own_images.CORRUPT, own_images.NOT_IMAGE, own_images.DUPLICATE):
        assert relative in text
    assert f"same bytes as {own_images.DUPLICATE_OF}" in text
    assert "4 classes" in text


def test_checking_and_linking_change_nothing_in_the_folder(folder, report, tmp_path):
    before = snapshot(folder)
    image_folder.check_folder(folder)
    files, _ = report.labelled()
    image_folder.link_view(folder, {"train": files[:10]}, tmp_path / "view", report.class_names)
    assert snapshot(folder) == before


def test_link_view_makes_every_class_folder_and_points_at_the_originals(folder, report, tmp_path):
    files, _ = report.labelled()
    first_class = [f for f in files if f.startswith(report.class_names[0] + "/")]
    views = image_folder.link_view(
        folder, {"train": files[5:], "test": first_class[:3]}, tmp_path / "view", report.class_names
    )
    assert sorted(p.name for p in views["test"].iterdir()) == report.class_names
    linked = views["test"] / first_class[0]
    assert linked.read_bytes() == (folder / first_class[0]).read_bytes()
    assert sum(1 for p in views["train"].rglob("*") if p.is_file()) == len(files) - 5
    again = image_folder.link_view(folder, {"test": first_class[:1]}, tmp_path / "view", ["a", "b"])
    assert not (again["test"].parent / "train").exists(), "the view is rebuilt from scratch"


def test_link_view_refuses_a_view_inside_the_images(folder):
    with pytest.raises(image_folder.FolderError, match="apart from"):
        image_folder.link_view(folder, {"train": []}, folder / "view", ["a"])


def test_link_view_falls_back_to_copies(folder, report, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(os, "symlink", refuse)
    files, _ = report.labelled()
    views = image_folder.link_view(folder, {"train": files[:2]}, tmp_path / "v", report.class_names)
    copied = views["train"] / files[0]
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_bytes() == (folder / files[0]).read_bytes()


def test_image_dataset_from_directory_reads_the_view(folder, report, tmp_path):
    keras = pytest.importorskip("keras")
    files, _ = report.labelled()
    views = image_folder.link_view(folder, {"train": files}, tmp_path / "view", report.class_names)
    dataset = keras.utils.image_dataset_from_directory(
        views["train"], image_size=(32, 32), batch_size=64, shuffle=False, verbose=False
    )
    assert dataset.class_names == report.class_names
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    assert np.bincount(labels).tolist() == list(report.counts.values())


def _save(path: Path, size, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(path, format=fmt)


def test_tiny_images_are_listed_and_kept(tmp_path):
    _save(tmp_path / "a" / "small.png", (8, 12))
    _save(tmp_path / "a" / "fine.png", (40, 40))
    _save(tmp_path / "b" / "fine.jpg", (64, 48), "JPEG")
    report = image_folder.check_folder(tmp_path)
    assert report.tiny == {"a/small.png": (8, 12)}
    assert "a/small.png" in report.good
    assert "a/small.png: 8×12 px" in str(report)


def test_formats_keras_cannot_read_are_skipped_with_a_hint(tmp_path):
    _save(tmp_path / "a" / "scan.tiff", (40, 40), "TIFF")
    _save(tmp_path / "a" / "renamed.jpg", (40, 40), "TIFF")  # a TIFF named .jpg
    _save(tmp_path / "b" / "ok.png", (40, 40))
    report = image_folder.check_folder(tmp_path)
    assert set(report.skipped) == {"a/scan.tiff", "a/renamed.jpg"}
    assert all("save it as JPEG or PNG" in why for why in report.skipped.values())
    assert report.counts == {"a": 0, "b": 1}


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    _save(tmp_path / "big.png", (100, 100))
    with pytest.raises(image_folder.ImageFileError, match="decompression bomb"):
        image_folder.read_image(tmp_path / "big.png", max_pixels=5_000)
    assert image_folder.read_image(tmp_path / "big.png").size == (100, 100)


def test_read_image_gives_rgb_and_one_line_reasons(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(gray)
    assert image_folder.read_image(gray).mode == "RGB"
    with pytest.raises(image_folder.ImageFileError, match="no such file"):
        image_folder.read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(image_folder.ImageFileError, match="not an image"):
        image_folder.read_image(tmp_path / "empty.jpg")


def test_files_outside_the_class_folders_are_reported_as_ignored(tmp_path):
    _save(tmp_path / "a" / "x.png", (40, 40))
    _save(tmp_path / "b" / "y.png", (40, 40))
    (tmp_path / "LICENSE.txt").write_text("photos under CC-BY")
    report = image_folder.check_folder(tmp_path)
    assert report.ignored == ["LICENSE.txt"]
    assert "LICENSE.txt" in str(report)


@pytest.mark.parametrize("layout", ["missing", "file", "one class"])
def test_a_folder_that_is_not_a_class_folder_gets_a_clear_error(tmp_path, layout):
    root = tmp_path / "photos"
    if layout == "file":
        root.write_text("not a folder")
    elif layout == "one class":
        _save(root / "cats" / "a.png", (40, 40))
    with pytest.raises(image_folder.FolderError, match="sub-folder"):
        image_folder.check_folder(root)


def test_own_images_generates_photos_without_the_zip(tmp_path):
    folder = own_images.build(tmp_path, zip_path=tmp_path / "absent.zip")
    report = image_folder.check_folder(folder)
    assert set(report.skipped) == {own_images.CORRUPT, own_images.NOT_IMAGE}
    assert report.duplicates == {own_images.DUPLICATE: own_images.DUPLICATE_OF}
    assert report.counts == {name: own_images.PER_CLASS for name in sorted(own_images.CLASSES)}
