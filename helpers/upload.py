""" "Try your own image" (notebook 06): from an ipywidgets ``FileUpload`` to the model's top
classes. ``classify`` is plain Python, tested without a browser: it reads the widget's value
(ipywidgets 7.7 or 8), decodes the file safely (``image_folder.read_image``), crops it to
32×32 like CIFAR-10 and returns an ``UploadResult``: the top classes, or a message that says
what to do; a wrong or broken file never ends in a traceback. ``upload_panel`` wires it to
the widgets.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from helpers import image_folder
from helpers.image_folder import MAX_PIXELS

#: Largest file accepted, in bytes.
MAX_BYTES = 30 * 1024 * 1024
#: Side of the square images the course's models take.
SIZE = 32


class UploadError(image_folder.ImageFileError):
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


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """``[(file name, bytes), ...]`` from a ``FileUpload.value``; empty when nothing is uploaded.

    ipywidgets 8 gives a tuple of dicts with ``name`` and ``content`` (a memoryview);
    ipywidgets 7.7 (Colab) a dict ``{name: {"metadata": {...}, "content": bytes}}``;
    Colab's ``files.upload()`` a dict ``{name: bytes}``.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        items = [(n, e.get("content") if isinstance(e, dict) else e) for n, e in value.items()]
    elif isinstance(value, list | tuple):
        if not all(isinstance(entry, dict) and "content" in entry for entry in value):
            raise UploadError(
                "this FileUpload value is neither the ipywidgets 8 format (a tuple of dicts "
                "with 'name' and 'content') nor the 7.7 format (a dict of files)."
            )
        items = [(entry.get("name", "upload"), entry["content"]) for entry in value]
    else:
        raise UploadError(
            f"cannot read a FileUpload value of type {type(value).__name__}; pass the "
            "widget's .value (ipywidgets 7.7 or 8)."
        )
    files = []
    for name, content in items:
        if not isinstance(content, bytes | memoryview | bytearray):
            raise UploadError(f"{name}: the upload holds no file content; upload it again.")
        files.append((str(name), bytes(content)))
    return files


def decode_image(raw: bytes, name: str = "upload", *, max_pixels: int = MAX_PIXELS):
    """Decode ``raw`` safely (``image_folder.read_image``) into an upright RGB ``PIL.Image``
    (EXIF orientation applied, transparency on white); raise ``UploadError`` saying why not."""
    from PIL import ImageOps

    if len(raw) == 0:
        raise UploadError(f"{name} is empty (0 bytes); choose the file again.")
    if len(raw) > MAX_BYTES:
        raise UploadError(
            f"{name} is {len(raw) / 2**20:.0f} MB; files up to {MAX_BYTES // 2**20} MB are "
            "accepted. Save a smaller copy (a 32×32 model needs no more than a few hundred pixels)."
        )

    def upright_rgb(image):
        return _to_rgb(ImageOps.exif_transpose(image), name)

    try:
        return image_folder.read_image(raw, max_pixels, finish=upright_rgb)
    except UploadError:
        raise
    except image_folder.ImageFileError as err:
        raise UploadError(
            f"{name} is {err}. Try another image (PNG, JPEG, GIF, BMP or WebP)."
        ) from None


def _to_rgb(image, name: str):
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
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def to_cifar(image, size: int = SIZE) -> np.ndarray:
    """Centre-crop a Pillow image to a square (keeping the object's proportions, as in
    CIFAR-10) and resize it to ``size``×``size`` uint8 RGB."""
    from PIL import Image, ImageOps

    small = ImageOps.fit(image.convert("RGB"), (size, size), method=Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


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


def classify(value, model, class_names, k: int = 3, *, max_pixels: int = MAX_PIXELS):
    """Classify the first file of a ``FileUpload`` value: an ``UploadResult``, never a traceback
    for a bad file. ``model`` is a Keras model (uint8 images in, softmax out) or any function
    from a ``(1, 32, 32, 3)`` uint8 batch to probabilities."""
    try:
        files = uploaded_files(value)
    except UploadError as err:
        return UploadResult(name="upload", message=str(err))
    if not files:
        return UploadResult(
            name="", message="No file uploaded yet: click Upload and pick an image."
        )
    (name, raw), more = files[0], len(files) - 1
    notes = [f"{more} more file(s) ignored: one image at a time."] if more else []
    try:
        image = decode_image(raw, name, max_pixels=max_pixels)
    except UploadError as err:
        return UploadResult(name=name, message=str(err), notes=notes)
    small = to_cifar(image)
    predict = getattr(model, "predict", None)
    proba = np.asarray(predict(small[None], verbose=0) if predict else model(small[None]))
    top = top_classes(proba[0], class_names, k)
    return UploadResult(name, small, top, original_size=image.size, notes=notes)


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
    """A ``FileUpload`` button and an output area that shows ``classify``'s answer (ipywidgets
    7.7 and 8); returns the ``VBox`` (display it as a cell's last line)."""
    import ipywidgets as widgets

    button = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
    output = widgets.Output()

    def on_change(change) -> None:
        with output:
            output.clear_output(wait=True)
            show_result(classify(change["new"], model, class_names, k))

    button.observe(on_change, names="value")
    intro = widgets.HTML(
        "Upload a photo (PNG, JPEG, ...); it is cropped to a square and shrunk "
        "to 32×32 pixels, like CIFAR-10."
    )
    return widgets.VBox([intro, button, output])
