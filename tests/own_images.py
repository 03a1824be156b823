"""A small class-folder of images for notebook 10 and its tests, with known problems in it.

``build(out_dir)`` writes ``out_dir/own_images/<class>/NNNN.jpg``: ``CLASSES`` classes of
``PER_CLASS`` JPEG photos each, taken from ``../shared/data/cifar10-jpeg.zip`` (the course
machines' copy of CIFAR-10 as JPEG files, ``train/<class>/NNNN.jpg``) or, when that file is
absent, drawn with NumPy and Pillow. Three problems are added on purpose, one of each kind
the folder check must find:

- ``CORRUPT``: a JPEG cut off after its first 200 bytes (corrupt);
- ``NOT_IMAGE``: a text file, ``notes.txt``, in a class folder (not an image);
- ``DUPLICATE``: a byte-for-byte copy of the first photo of the first class.

Run it as a script to build the folder and print its path, e.g. for ``IMAGES_DIR``::

    export IMAGES_DIR="$(python tests/own_images.py /tmp/own-images)"
"""

from __future__ import annotations

import io
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ZIP = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
CLASSES = ("airplane", "automobile", "cat", "ship")
PER_CLASS = 40
#: The problems added on purpose, relative to the class folder.
CORRUPT = "cat/broken.jpg"
NOT_IMAGE = "ship/notes.txt"
DUPLICATE = "airplane/copy_of_0000.jpg"
DUPLICATE_OF = "airplane/0000.jpg"


def _from_zip(folder: Path, zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        for name in CLASSES:
            for i in range(PER_CLASS):
                data = archive.read(f"train/{name}/{i:04d}.jpg")
                (folder / name / f"{i:04d}.jpg").write_bytes(data)


def _generated(folder: Path) -> None:
    """Photos drawn with NumPy: each class its own colour and stripes, plus noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for i in range(PER_CLASS):
            base = np.zeros((48, 48, 3), np.float32)
            base[..., c % 3] = 160
            base[:, :: 4 + c, :] += 60
            pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
            (folder / name / f"{i:04d}.jpg").write_bytes(buffer.getvalue())


def build(out_dir: str | Path, zip_path: Path = ZIP) -> Path:
    """Write the class folder under ``out_dir`` (replacing an earlier one) and return it."""
    folder = Path(out_dir) / "own_images"
    if folder.exists():
        shutil.rmtree(folder)
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
    if zip_path.is_file():
        _from_zip(folder, zip_path)
    else:
        _generated(folder)
    first = (folder / DUPLICATE_OF).read_bytes()
    (folder / CORRUPT).write_bytes(first[:200])
    (folder / NOT_IMAGE).write_text("photos of ships from the harbour, taken in May\n")
    (folder / DUPLICATE).write_bytes(first)
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/own_images.py OUT_DIR")
    print(build(sys.argv[1]))
