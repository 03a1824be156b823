"""helpers.predict: ``python -m helpers.predict MODEL IMAGE...`` on real JPEG files and on bad
ones, run as the learner runs it (a subprocess), with a small model saved in tmp_path."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import predict
from tests import own_images

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=None):
    """Run the command in a fresh Python, as a learner would; return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "helpers.predict", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return own_images.build(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny classifier of 4 classes on 40x40 raw pixels (Rescaling inside), saved as the
    notebook saves its model: model.keras and model.classes.json."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(40, 40, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(own_images.CLASSES), activation="softmax")(x)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    keras.Model(inputs, outputs).save(path)
    predict.classes_file(path).write_text(json.dumps(sorted(own_images.CLASSES)))
    return path


def test_real_jpegs_get_their_top_three_and_exit_status_0(saved_model, folder):
    images = ["airplane/0001.jpg", "cat/0002.jpg", "ship/0003.jpg"]
    result = run(saved_model, *images, cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == images
    for line in lines:
        guesses = line.split(": ", 1)[1].split(", ")
        assert len(guesses) == 3
        names = [g.rsplit(" ", 1)[0] for g in guesses]
        assert set(names) <= set(own_images.CLASSES) and len(set(names)) == 3
        shares = [float(g.rsplit(" ", 1)[1].rstrip("%")) for g in guesses]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.1
    assert result.stderr.strip() == "", "no warnings or start-up log on a normal run"


def test_bad_files_get_one_line_each_and_the_others_go_on(saved_model, folder):
    images = [
        own_images.CORRUPT,
        "airplane/0001.jpg",
        own_images.NOT_IMAGE,
        "no_such_photo.jpg",
        "cat",  # a folder
    ]
    result = run(saved_model, *images, cwd=folder)
    assert result.returncode == 1
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert list(lines) == images
    assert lines[own_images.CORRUPT].startswith("not classified: corrupt")
    assert lines[own_images.NOT_IMAGE] == "not classified: not an image (Pillow cannot read it)"
    assert lines["no_such_photo.jpg"] == "not classified: no such file"
    assert lines["cat"] == "not classified: a folder, not a file"
    assert lines["airplane/0001.jpg"].count("%") == 3
    assert "4 of 5 files could not be classified" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_says_what_the_command_does():
    result = run("--help")
    assert result.returncode == 0
    assert "usage: python -m helpers.predict" in result.stdout
    assert "Exit status" in result.stdout


@pytest.mark.parametrize("problem", ["missing", "corrupt", "no classes", "wrong classes"])
def test_an_unusable_model_gives_a_clear_error_and_status_2(
    problem, saved_model, folder, tmp_path, capsys
):
    model = tmp_path / "model.keras"
    if problem == "corrupt":
        model.write_bytes(saved_model.read_bytes()[:500])  # a truncated download
    elif problem != "missing":
        model.write_bytes(saved_model.read_bytes())
    if problem == "wrong classes":
        predict.classes_file(model).write_text(json.dumps(["a", "b"]))
    status = predict.main([str(model), str(folder / "airplane/0001.jpg")])
    error = capsys.readouterr().err
    assert status == predict.MODEL_ERROR
    assert error.startswith("error: ") and "Traceback" not in error
    expected = {
        "missing": "does not exist",
        "corrupt": "cannot load the model",
        "no classes": "no class names",
        "wrong classes": "names 2 classes, but the model has 4 outputs",
    }[problem]
    assert expected in error


def test_classes_from_another_file_and_fewer_guesses(saved_model, folder, tmp_path, capsys):
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["w", "x", "y", "z"]))
    args = [str(saved_model), str(folder / "cat/0001.jpg"), "--classes", str(names), "--top", "1"]
    assert predict.main(args) == predict.OK
    line = capsys.readouterr().out.strip()
    assert line.count("%") == 1 and line.split(": ")[1].split(" ")[0] in "wxyz"


def test_images_are_resized_to_the_model_input_as_raw_pixels(folder):
    pixels = predict.prepare(folder / "ship/0003.jpg", (40, 40))
    assert pixels.shape == (40, 40, 3) and pixels.dtype == np.float32
    assert pixels.max() > 1.0, "raw 0-255 pixels: the model rescales them itself"


def test_top_k_and_probabilities():
    assert predict.top_k(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], 2) == "b 70.0%, c 20.0%"
    logits = np.array([[2.0, 0.0, -1.0]])
    proba = predict._probabilities(logits)
    assert np.allclose(proba.sum(), 1) and proba.argmax() == 0
    already = np.array([[0.2, 0.8]])
    assert predict._probabilities(already) is already
    assert predict.classes_file("a/flowers.keras") == Path("a/flowers.classes.json")
