""" "Try your own image": FileUpload values of ipywidgets 7.7 and 8, real image bytes, bad files."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import upload

NAMES = [f"class{i}" for i in range(10)]
VERSIONS = [8, 7]


class MeanColourModel:
    """A stand-in model: class 0 for red images, 1 for green, 2 for blue (via softmax)."""

    def __init__(self):
        self.seen = []

    def predict(self, batch, verbose=0):
        self.seen.append(batch)
        means = batch.reshape(len(batch), -1, 3).mean(axis=1) / 255.0
        logits = np.zeros((len(batch), 10))
        logits[:, :3] = 10 * means
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def _encode(pil: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_real_png_and_jpeg_give_top3(version, fmt):
    red = Image.new("RGB", (120, 80), (230, 20, 20))
    value = upload.as_upload_value(f"red.{fmt.lower()}", _encode(red, fmt), version=version)
    model = MeanColourModel()
    result = upload.classify(value, model, NAMES)
    assert result.ok, result.message
    assert result.image.shape == (32, 32, 3) and result.image.dtype == np.uint8
    assert model.seen[0].shape == (1, 32, 32, 3) and model.seen[0].dtype == np.uint8
    assert result.original_size == (120, 80)
    assert list(result.top.columns) == ["class", "probability"] and len(result.top) == 3
    assert result.top["class"].iloc[0] == "class0"  # red
    assert result.top["probability"].is_monotonic_decreasing
    assert abs(int(result.image[..., 0].mean()) - 230) <= 3  # colours survive the resize


@pytest.mark.parametrize("version", VERSIONS)
def test_grayscale_image_becomes_rgb(version):
    gray = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)), mode="L")
    result = upload.classify(
        upload.as_upload_value("gray.png", _encode(gray, "PNG"), version=version),
        MeanColourModel(),
        NAMES,
    )
    assert result.ok, result.message
    assert result.image.shape == (32, 32, 3)
    np.testing.assert_array_equal(result.image[..., 0], result.image[..., 2])  # R == G == B


def test_transparent_and_palette_images_are_put_on_white():
    rgba = Image.new("RGBA", (40, 40), (0, 0, 255, 0))  # fully transparent blue
    image = upload.decode_image(_encode(rgba, "PNG"), "clear.png")
    assert image.mode == "RGB" and image.getpixel((5, 5)) == (255, 255, 255)
    palette = Image.new("RGB", (40, 40), (0, 200, 0)).convert("P")
    assert upload.decode_image(_encode(palette, "GIF")).getpixel((1, 1))[1] > 150


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    values = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
    raw = _encode(Image.fromarray(values), "PNG")
    image = np.asarray(upload.decode_image(raw, "deep.png"))
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255


@pytest.mark.parametrize("version", VERSIONS)
def test_huge_image_is_refused_before_decoding(version):
    # 9000 x 9000: over the course's limit, under Pillow's own warning threshold
    value = upload.as_upload_value("big.png", _png_claiming(9_000, 9_000), version=version)
    result = upload.classify(value, MeanColourModel(), NAMES)
    assert not result.ok
    assert "9000×9000 pixels (81 megapixels)" in result.message
    # 100000 x 100000 (10 gigapixels in a file of 100 bytes): Pillow itself refuses to open it
    value = upload.as_upload_value("bomb.png", _png_claiming(100_000, 100_000), version=version)
    result = upload.classify(value, MeanColourModel(), NAMES)
    assert not result.ok
    assert "decompression bomb" in result.message and "megapixels" in result.message


def test_real_image_over_a_lower_limit_is_refused():
    raw = _encode(Image.new("RGB", (200, 100)), "PNG")
    result = upload.classify(
        upload.as_upload_value("big.png", raw), MeanColourModel(), NAMES, max_pixels=10_000
    )
    assert not result.ok and "200×100" in result.message


@pytest.mark.parametrize("version", VERSIONS)
def test_text_file_renamed_png_gives_a_clear_message(version):
    value = upload.as_upload_value("notes.png", b"just some notes, not an image\n", version=version)
    result = upload.classify(value, MeanColourModel(), NAMES)
    assert not result.ok and result.image is None
    assert "notes.png is not an image" in result.message


def test_truncated_image_gives_a_clear_message():
    raw = _encode(Image.new("RGB", (64, 64), (10, 20, 30)), "JPEG")
    result = upload.classify(upload.as_upload_value("cut.jpg", raw[:200]), MeanColourModel(), NAMES)
    assert not result.ok
    assert "cut.jpg" in result.message and "truncated" in result.message


def test_empty_file_and_empty_widget():
    assert "0 bytes" in upload.classify(upload.as_upload_value("e.png", b""), None, NAMES).message
    for empty in ((), {}, None):
        assert "No file uploaded yet" in upload.classify(empty, None, NAMES).message


def test_value_formats_read_the_same_bytes():
    raw = b"\x01\x02\x03"
    expected = [("a.png", raw)]
    assert upload.uploaded_files(upload.as_upload_value("a.png", raw, version=8)) == expected
    assert upload.uploaded_files(upload.as_upload_value("a.png", raw, version=7)) == expected
    assert upload.uploaded_files({"a.png": raw}) == expected  # google.colab.files.upload()
    with pytest.raises(upload.UploadError, match="ipywidgets 8 format"):
        upload.uploaded_files(({"name": "a.png"},))
    result = upload.classify("not a value", None, NAMES)
    assert not result.ok and "FileUpload value" in result.message


def test_only_first_of_several_files_is_used():
    raw = _encode(Image.new("RGB", (32, 32), (0, 0, 250)), "PNG")
    value = upload.as_upload_value("b.png", raw) + upload.as_upload_value("c.png", raw)
    result = upload.classify(value, MeanColourModel(), NAMES)
    assert result.ok and result.name == "b.png" and "1 more file" in result.notes[0]
    assert result.top["class"].iloc[0] == "class2"  # blue


def test_wrong_number_of_model_outputs():
    with pytest.raises(upload.UploadError, match="5 probabilities for 10 classes"):
        upload.top_classes(np.full(5, 0.2), NAMES)


def test_with_a_real_keras_model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    raw = upload.encode_image(image, "PNG", scale=4)
    result = upload.classify(upload.as_upload_value("x.png", raw, version=7), model, NAMES, k=3)
    assert result.ok and len(result.top) == 3
    expected = model.predict(result.image[None], verbose=0)[0]
    assert result.top["probability"].iloc[0] == pytest.approx(expected.max(), rel=1e-5)


def test_panel_builds_on_installed_ipywidgets():
    import ipywidgets as widgets

    panel = upload.upload_panel(MeanColourModel(), NAMES)
    assert isinstance(panel, widgets.VBox)
    assert any(isinstance(child, widgets.FileUpload) for child in panel.children)


def test_show_result_draws_the_bars_or_prints_the_message(capsys):
    import matplotlib

    matplotlib.use("Agg")
    raw = _encode(Image.new("RGB", (50, 40), (0, 240, 0)), "JPEG")
    good = upload.classify(upload.as_upload_value("g.jpg", raw), MeanColourModel(), NAMES)
    upload.show_result(good)  # outside IPython, display() prints the figure's repr
    assert "Figure" in capsys.readouterr().out
    bad = upload.classify(upload.as_upload_value("bad.png", b"%PDF-1.4"), MeanColourModel(), NAMES)
    upload.show_result(bad)
    assert capsys.readouterr().out.strip() == bad.message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_image_with_nan_or_inf_pixels_is_refused(bad):
    """A float TIFF with NaN (or +/-inf) pixels used to come out as a black image."""
    values = np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)
    values[3, 5] = bad
    raw = _encode(Image.fromarray(values, mode="F"), "TIFF")
    model = MeanColourModel()
    result = upload.classify(upload.as_upload_value("scan.tif", raw), model, NAMES)
    assert not result.ok and not model.seen
    assert "scan.tif: 1 of 3072 pixels are not numbers (NaN) or infinite" in result.message
    assert "8-bit PNG or JPEG" in result.message
    finite = _encode(Image.fromarray(np.nan_to_num(values, posinf=1, neginf=0), mode="F"), "TIFF")
    assert upload.classify(upload.as_upload_value("ok.tif", finite), model, NAMES).ok


def test_damaged_files_of_every_format_never_raise_a_raw_error():
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    for fmt in ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]:
        raw = bytearray(_encode(base, fmt))
        for _ in range(20):
            damaged = bytearray(raw)
            for _ in range(4):
                damaged[rng.integers(0, len(damaged))] = rng.integers(0, 256)
            result = upload.classify(
                upload.as_upload_value("d", bytes(damaged)), MeanColourModel(), NAMES
            )
            assert result.ok or result.message.startswith("d")
