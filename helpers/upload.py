""" "Try your own image": from an ipywidgets ``FileUpload`` to the model's top classes.

The logic is plain Python so it can be tested without a browser:

1. ``uploaded_files(value)`` reads the widget's ``value``, whose format differs
   between ipywidgets 8 (a tuple of dicts, ``content`` a ``memoryview``) and
   ipywidgets 7.7 as on Colab (a dict ``name -> {"metadata": ..., "content": bytes}``);
   a plain dict ``name -> bytes``, as ``google.colab.files.upload()`` returns, works too.
2. ``decode_image(raw)`` opens the bytes with Pillow: any mode (grayscale,
   RGBA, palette, 16-bit) becomes RGB, images larger than ``MAX_PIXELS`` are
   refused before they are decoded (a "decompression bomb" is a small file
   that expands to gigabytes), and phone photos are turned upright (EXIF).
3. ``to_cifar(image)`` centre-crops to a square and shrinks to 32×32 uint8,
   the size the course's models were trained on.
4. ``classify(value, model, class_names)`` runs 1-3 and the model, and returns
   an ``UploadResult`` holding either the top-k classes or a clear message:
   a wrong or broken file never ends in a traceback.

``upload_panel`` wires this to the widgets; it is the only part that needs Jupyter.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np

#: Largest image (width × height) that is decoded: 40 megapixels, more than a phone photo.
MAX_PIXELS = 40_000_000
#: Largest file accepted, in bytes.
MAX_BYTES = 30 * 1024 * 1024
#: Side of the square images the course's models take.
SIZE = 32


class UploadError(ValueError):
    """An uploaded file that cannot be used as an image; the message says what to do."""


@dataclass
class UploadResult:
    """What happened to one upload: the 32×32 image and its top classes, or a message."""

    name: str
    image: np.ndarray | None = None  # (32, 32, 3) uint8, what the model saw
    top: object = None  # pandas DataFrame: class, probability (most probable first)
    message: str = ""
    original_size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.image is not None and self.top is not None


# --- 1. the widget's value --------------------------------------------------------------------


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """``[(file name, bytes), ...]`` from a ``FileUpload.value`` of ipywidgets 7.7 or 8.

    ipywidgets 8: a tuple of dicts with ``name`` and ``content`` (a memoryview).
    ipywidgets 7.7: a dict ``{name: {"metadata": {...}, "content": bytes}}``.
    Also accepted: ``{name: bytes}`` (Colab's ``files.upload()``). An empty
    value (nothing uploaded yet) gives an empty list.
    """
    if value is None:
        return []
    if isinstance(value, dict):  # ipywidgets 7.7 or files.upload()
        items = []
        for name, entry in value.items():
            content = entry.get("content") if isinstance(entry, dict) else entry
            items.append((str(name), content))
    elif isinstance(value, list | tuple):  # ipywidgets 8
        items = []
        for entry in value:
            if not isinstance(entry, dict) or "content" not in entry:
                raise UploadError(
                    "this FileUpload value is neither the ipywidgets 8 format (a tuple of dicts "
                    "with 'name' and 'content') nor the 7.7 format (a dict of files)."
                )
            items.append((str(entry.get("name", "upload")), entry["content"]))
    else:
        raise UploadError(
            f"cannot read a FileUpload value of type {type(value).__name__}; pass the "
            "widget's .value (ipywidgets 7.7 or 8)."
        )
    files = []
    for name, content in items:
        if isinstance(content, memoryview | bytearray):
            content = bytes(content)
        if not isinstance(content, bytes):
            raise UploadError(f"{name}: the upload holds no file content; upload it again.")
        files.append((name, content))
    return files


# --- 2. decoding ------------------------------------------------------------------------------


def decode_image(raw: bytes, name: str = "upload", *, max_pixels: int = MAX_PIXELS):
    """Open ``raw`` with Pillow and return an RGB ``PIL.Image``, or raise ``UploadError``.

    Transparent areas are put on a white background; grayscale and palette
    images are converted; the image is turned upright when its EXIF says so.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(raw) == 0:
        raise UploadError(f"{name} is empty (0 bytes); choose the file again.")
    if len(raw) > MAX_BYTES:
        raise UploadError(
            f"{name} is {len(raw) / 2**20:.0f} MB; files up to {MAX_BYTES // 2**20} MB are "
            "accepted. Save a smaller copy (a 32×32 model needs no more than a few hundred pixels)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on damaged metadata
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise UploadError(
                    f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
                    f"images up to {max_pixels / 1e6:.0f} megapixels are accepted. Very large "
                    "images (or files that only claim to be, a 'decompression bomb') could "
                    "exhaust memory: shrink it first."
                )
            if width < 1 or height < 1:
                raise UploadError(f"{name} is {width}×{height} pixels: it holds no image.")
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image, name)
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError(
            f"{name} is not an image Pillow can read (it may be a text or PDF file renamed, "
            "or an unsupported format). Upload a PNG, JPEG, GIF, BMP or WebP image."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UploadError(
            f"{name} is too large to decode safely: {err} Images up to "
            f"{max_pixels / 1e6:.0f} megapixels are accepted: shrink it first."
        ) from None
    except Exception as err:  # Pillow's decoders raise many kinds on a damaged file
        raise UploadError(
            f"{name} looks like an image but could not be decoded ({type(err).__name__}: "
            f"{str(err)[:200]}); it may be truncated or damaged. Save it again or try "
            "another file."
        ) from None


def _to_rgb(image, name: str = "upload"):
    """RGB copy of any Pillow image: alpha on white, 16-bit and float grayscale scaled to 8 bits
    (refused with ``UploadError`` when some pixels are NaN or infinite)."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise UploadError(
                f"{name}: {bad} of {values.size} pixels are not numbers (NaN) or infinite, so "
                "it cannot be shown as an image. Export it as an 8-bit PNG or JPEG (with the "
                "missing values filled in) and upload that."
            )
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


# --- 3. resizing ------------------------------------------------------------------------------


def to_cifar(image, size: int = SIZE) -> np.ndarray:
    """Centre-crop a Pillow image to a square and resize it to ``size``×``size`` uint8 RGB.

    Cropping (rather than squashing) keeps the object's proportions, as in CIFAR-10.
    """
    from PIL import Image, ImageOps

    small = ImageOps.fit(image.convert("RGB"), (size, size), method=Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


# --- 4. the model's answer --------------------------------------------------------------------


def top_classes(proba, class_names, k: int = 3):
    """The ``k`` most probable classes of one probability vector, as a DataFrame."""
    import pandas as pd

    proba = np.asarray(proba, dtype=np.float64).ravel()
    if proba.shape != (len(class_names),):
        raise UploadError(
            f"the model returned {proba.size} probabilities for {len(class_names)} classes; "
            "use a model trained on these classes."
        )
    order = np.argsort(-proba, kind="stable")[:k]
    return pd.DataFrame({"class": [class_names[i] for i in order], "probability": proba[order]})


def _predict(model, batch: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict"):
        return np.asarray(model.predict(batch, verbose=0))
    return np.asarray(model(batch))


def classify(value, model, class_names, k: int = 3, *, max_pixels: int = MAX_PIXELS):
    """Classify the first file of a ``FileUpload`` value: an ``UploadResult``, never a traceback
    for a bad file.

    ``model`` is a Keras model (uint8 images in, softmax out) or any function
    from a ``(1, 32, 32, 3)`` uint8 batch to probabilities.
    """
    try:
        files = uploaded_files(value)
    except UploadError as err:
        return UploadResult(name="upload", message=str(err))
    if not files:
        return UploadResult(
            name="", message="No file uploaded yet: click Upload and pick an image."
        )
    name, raw = files[0]
    notes = (
        [f"{len(files) - 1} more file(s) ignored: one image at a time."] if len(files) > 1 else []
    )
    try:
        image = decode_image(raw, name, max_pixels=max_pixels)
    except UploadError as err:
        return UploadResult(name=name, message=str(err), notes=notes)
    small = to_cifar(image)
    proba = _predict(model, small[None])
    return UploadResult(
        name=name,
        image=small,
        top=top_classes(proba[0], class_names, k),
        original_size=image.size,
        notes=notes,
    )


def as_upload_value(name: str, raw: bytes, *, version: int = 8):
    """Build a ``FileUpload.value`` by hand (ipywidgets ``version`` 8 or 7), for tests and for
    running the notebook where nobody can click Upload."""
    if version == 8:
        return ({"name": name, "type": "", "size": len(raw), "content": memoryview(raw)},)
    if version == 7:
        return {name: {"metadata": {"name": name, "type": "", "size": len(raw)}, "content": raw}}
    raise ValueError(f"version must be 7 or 8 (ipywidgets major version), got {version!r}")


def encode_image(image: np.ndarray, format: str = "PNG", scale: int = 1) -> bytes:
    """Encode a uint8 image as PNG or JPEG bytes, optionally enlarged ``scale`` times."""
    from PIL import Image

    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    pil.save(buffer, format=format)
    return buffer.getvalue()


# --- the widgets ------------------------------------------------------------------------------


def show_result(result: UploadResult) -> None:
    """Display an ``UploadResult``: the image and a bar chart of its top classes, or the message."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from helpers import plots

    if not result.ok:
        print(result.message)
        return
    for note in result.notes:
        print(note)
    fig = plots.top_k_bars(result.image, result.top, title=result.name)
    display(fig)
    plt.close(fig)


def upload_panel(model, class_names, k: int = 3):
    """A ``FileUpload`` button and an output area that shows ``classify``'s answer.

    Works with ipywidgets 7.7 and 8; returns the ``VBox`` (display it as a cell's last line).
    """
    import ipywidgets as widgets

    button = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
    output = widgets.Output()

    def on_change(change) -> None:
        with output:
            output.clear_output(wait=True)
            show_result(classify(change["new"], model, class_names, k))

    button.observe(on_change, names="value")
    return widgets.VBox(
        [
            widgets.HTML(
                "Upload a photo (PNG, JPEG, ...); it is cropped to a square and shrunk "
                "to 32×32 pixels, like CIFAR-10."
            ),
            button,
            output,
        ]
    )
