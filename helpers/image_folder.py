"""Check a folder of images (one sub-folder per class) before training on it (notebook 10).

``keras.utils.image_dataset_from_directory`` stops mid-epoch at the first file it cannot
decode, so ``check_folder`` first looks at every file with Pillow and sorts out the ones it
would fail on (not images, corrupt, unreadable formats, decompression bombs), the exact
duplicates (so one photo cannot land in both training and test) and the tiny images, without
changing the learner's folder. ``link_view`` then builds a clean copy from links, split into
parts. ``read_image`` is the one safe image reader of the course (``upload`` and ``predict``
use it too).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: Extensions ``image_dataset_from_directory`` reads; other files are not looked at by it.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: Formats (as Pillow names them) that TensorFlow's image decoder reads.
READABLE_FORMATS = ("BMP", "GIF", "JPEG", "PNG")
#: Largest image (width × height) that is decoded: 40 megapixels, more than a phone photo.
MAX_PIXELS = 40_000_000
#: Images smaller than this on either side are listed as tiny.
MIN_SIDE = 32


class ImageFileError(ValueError):
    """A file that cannot be used as an image; the message says why and what to do."""


class FolderError(ValueError):
    """The folder is not a folder of class sub-folders; the message says what is expected."""


def read_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS, finish=None):
    """Open an image file (a path, or its bytes) with Pillow, check and decode it; return
    ``finish(image)`` (default: an RGB copy) of the decoded ``PIL.Image``.

    The header is read first: an image of more than ``max_pixels`` (or a "decompression
    bomb", a small file claiming gigabytes of pixels) is refused before it is decoded. Then
    ``verify()`` checks the file's structure and ``load()`` decodes every pixel, so a truncated
    file fails here, not in the middle of training. Raises ``ImageFileError`` with a one-line
    reason; an ``ImageFileError`` that ``finish`` raises passes through unchanged.
    """
    from PIL import Image, UnidentifiedImageError

    def open_():
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on odd metadata
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_() as image:
                _check_size(image.size, max_pixels)
                image.verify()
            with open_() as image:  # verify() leaves the image unusable: reopen
                image.load()
                return finish(image) if finish else image.convert("RGB")
    except ImageFileError:
        raise
    except FileNotFoundError:
        raise ImageFileError("no such file") from None
    except IsADirectoryError:
        raise ImageFileError("a folder, not a file") from None
    except UnidentifiedImageError:
        raise ImageFileError("not an image (Pillow cannot read it)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageFileError(_too_large(max_pixels)) from None
    except Exception as err:  # Pillow's decoders raise many kinds on a damaged file
        raise ImageFileError(f"corrupt or truncated ({type(err).__name__}: {err})") from None


def _too_large(max_pixels: int) -> str:
    return (
        f"too large to decode safely (over {max_pixels / 1e6:.0f} megapixels, or a file "
        "that claims to be: a decompression bomb); shrink it first"
    )


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageFileError(f"{width}×{height} pixels: it holds no image")
    if width * height > max_pixels:
        megapixels = f"{width}×{height} pixels ({width * height / 1e6:.0f} megapixels)"
        raise ImageFileError(f"{megapixels}: {_too_large(max_pixels)}")


@dataclass
class FolderReport:
    """What ``check_folder`` found. Paths are relative to ``root`` (``class/file``)."""

    root: Path
    class_names: list[str]
    good: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why
    duplicates: dict[str, str] = field(default_factory=dict)  # file -> the copy kept
    tiny: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> (width, height)
    ignored: list[str] = field(default_factory=list)  # files outside the class folders
    min_side: int = MIN_SIDE

    @property
    def counts(self) -> dict[str, int]:
        """Number of good images per class (duplicates and skipped files left out)."""
        found = Counter(Path(p).parts[0] for p in self.good)
        return {name: found.get(name, 0) for name in self.class_names}

    def labelled(self) -> tuple[list[str], list[str]]:
        """The good files and their class names, in the same order."""
        return list(self.good), [Path(p).parts[0] for p in self.good]

    def __str__(self) -> str:
        return format_report(self)


def format_report(report: FolderReport, limit: int = 10) -> str:
    """The report as text: counts per class, then every problem with its reason."""
    total = sum(report.counts.values())
    lines = [f"{report.root}: {len(report.class_names)} classes, {total:,} good images"]
    width = max(len(name) for name in report.class_names)
    lines += [f"  {name:<{width}}  {n:>6,}" for name, n in report.counts.items()]
    sections = [
        ("skipped (not used for training)", report.skipped),
        ("exact duplicates (only the first copy is used)", report.duplicates),
        (f"tiny (under {report.min_side} px on a side; kept)", report.tiny),
    ]
    for title, entries in sections:
        lines.append(f"{title}: {len(entries) or 'none'}")
        for name, why in list(entries.items())[:limit]:
            detail = f"{why[0]}×{why[1]} px" if isinstance(why, tuple) else why
            detail = f"same bytes as {why}" if entries is report.duplicates else detail
            lines.append(f"  {name}: {detail}")
        if len(entries) > limit:
            lines.append(f"  ... and {len(entries) - limit} more")
    if report.ignored:
        lines.append(f"outside the class folders (ignored): {', '.join(report.ignored[:limit])}")
    return "\n".join(lines)


def class_folders(root: str | os.PathLike) -> list[str]:
    """The class names: the sub-folders of ``root``, sorted as Keras sorts them."""
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file, not a folder"
        raise FolderError(f"{root} {what}: give a folder with one sub-folder per class.")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise FolderError(
            f"{root} has {len(names)} sub-folder(s); a classifier needs at least two classes, "
            f"one sub-folder each (e.g. {root}/cats/*.jpg and {root}/dogs/*.jpg)."
        )
    return names


def _why_skipped(path: Path, max_pixels: int) -> tuple[str | None, tuple[int, int] | None]:
    """(reason to skip ``path`` or None, its size when it is a usable image)."""
    try:
        size, fmt = read_image(path, max_pixels, lambda image: (image.size, image.format))
    except ImageFileError as err:
        return str(err), None
    if path.suffix.lower() not in IMAGE_EXTENSIONS or fmt not in READABLE_FORMATS:
        reason = f"a {fmt} image, a format image_dataset_from_directory does not read"
        return f"{reason}; save it as JPEG or PNG", None
    return None, size


def check_folder(
    root: str | os.PathLike, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS
) -> FolderReport:
    """Look at every file of every class folder of ``root`` (sub-folders included) and sort
    it: good, skipped (with the reason), duplicate (of which file, by SHA-256), tiny. Reads
    only."""
    root = Path(root)
    report = FolderReport(root, class_folders(root), min_side=min_side)
    report.ignored = sorted(p.name for p in root.iterdir() if p.is_file())
    first_copy: dict[str, str] = {}
    for name in report.class_names:
        for path in sorted(p for p in (root / name).rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            why, size = _why_skipped(path, max_pixels)
            if why:
                report.skipped[relative] = why
                continue
            with open(path, "rb") as file:
                digest = hashlib.file_digest(file, "sha256").hexdigest()
            if digest in first_copy:
                report.duplicates[relative] = first_copy[digest]
                continue
            first_copy[digest] = relative
            report.good.append(relative)
            if min(size) < min_side:
                report.tiny[relative] = size
    return report


def link_view(
    root: str | os.PathLike,
    parts: dict[str, list[str]],
    dest: str | os.PathLike,
    class_names: list[str],
) -> dict[str, Path]:
    """Build ``dest/<part>/<class>/<file>`` from links to ``root``'s files (copies where the
    system refuses links), one folder per part (e.g. train, validation, test), with a folder
    for every class even when a part has none of its files; return ``{part: folder}``.
    ``dest`` is emptied first; it must not be inside ``root`` or hold it.
    """
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if dest == root or root in dest.parents or dest in root.parents:
        raise FolderError(f"the view {dest} must be apart from the images' folder {root}.")
    if dest.exists():
        shutil.rmtree(dest)  # only our links and copies live here
    folders = {}
    for part, files in parts.items():
        folders[part] = dest / part
        for name in class_names:
            (folders[part] / name).mkdir(parents=True)
        for relative in files:
            target = folders[part] / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink((root / relative).resolve(), target)
            except (OSError, NotImplementedError):  # e.g. Windows without the right to link
                shutil.copy2(root / relative, target)
    return folders
