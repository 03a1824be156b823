"""Classify image files with a saved model, from the command line (notebook 10)::

    python -m helpers.predict MODEL.keras IMAGE [IMAGE ...] [--top K] [--classes FILE]

The class names come from ``<model>.classes.json`` beside the model (``classes_file``; notebook
10 writes it) or from ``--classes``. Each image is decoded safely (``image_folder.read_image``)
and resized bilinearly to the model's input, as ``image_dataset_from_directory`` does; its raw
0-255 pixels go in (the course's models rescale inside). A file that cannot be classified gets
a one-line reason and the others go on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: Exit statuses: all images classified; some not; the model (or its classes) unusable.
OK, SOME_FAILED, MODEL_ERROR = 0, 1, 2


class ModelFileError(ValueError):
    """The model or its class names cannot be used; the message says what to do."""


def classes_file(model_path: str | Path) -> Path:
    """Where the class names of ``model_path`` are kept: ``<name>.classes.json`` beside it."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".classes.json")


def read_class_names(path: str | Path, n_outputs: int) -> list[str]:
    """The list of class names in the JSON file ``path``; one per output of the model."""
    path = Path(path)
    try:
        names = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(
            f"no class names at {path}: save the list of class names there as JSON "
            f"(notebook 10 does), or name the file with --classes."
        ) from None
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{path} is not a JSON list of class names ({err}).") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{path} must hold a JSON list of class names (strings).")
    if len(names) != n_outputs:
        raise ModelFileError(
            f"{path} names {len(names)} classes, but the model has {n_outputs} outputs."
        )
    return names


def load(model_path: str | Path):
    """Load a ``.keras`` model for inference, or raise ``ModelFileError`` saying why not."""
    import keras

    model_path = Path(model_path)
    if not model_path.is_file():
        what = "is a folder" if model_path.is_dir() else "does not exist"
        raise ModelFileError(f"the model file {model_path} {what}; give a saved .keras file.")
    try:
        return keras.saving.load_model(model_path, compile=False)
    except Exception as err:  # a truncated zip, a file that is no model, a newer format...
        said = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ModelFileError(
            f"cannot load the model {model_path} ({type(err).__name__}: {said}); it may be "
            f"damaged or not a .keras file: save it again with model.save('name.keras')."
        ) from None


def prepare(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """The image file ``path`` as raw 0-255 RGB pixels of ``size``, float32 (h, w, 3)."""
    import keras

    from helpers import image_folder

    pixels = np.asarray(image_folder.read_image(path), dtype="float32")
    resized = keras.ops.image.resize(pixels[None], size, interpolation="bilinear")
    return keras.ops.convert_to_numpy(resized)[0]


def top_k(proba: np.ndarray, names: list[str], k: int) -> str:
    """``"name 91.2%, name 5.0%, ..."`` for the ``k`` most probable classes."""
    order = np.argsort(-proba, kind="stable")[:k]
    return ", ".join(f"{names[i]} {proba[i]:.1%}" for i in order)


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax of the outputs, unless they already are probabilities."""
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def classify(model, names: list[str], images: list[str], k: int = 3, out=None) -> int:
    """Print the top ``k`` classes of every image, in the order given (a one-line reason for
    each file that cannot be classified); return how many could not be classified."""
    from helpers import image_folder

    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[1] and shape[2]):
        raise ModelFileError(f"the model takes inputs of shape {shape}, not fixed-size images.")
    ready, lines = {}, {}  # both keyed by the image's position in ``images``
    for i, image in enumerate(images):
        try:
            ready[i] = prepare(image, (int(shape[1]), int(shape[2])))
        except image_folder.ImageFileError as err:
            lines[i] = f"not classified: {err}"
    if ready:
        batch = np.stack(list(ready.values()))
        proba = _probabilities(np.asarray(model.predict(batch, verbose=0), dtype="float64"))
        for i, row in zip(ready, proba, strict=True):
            lines[i] = top_k(row, names, k)
    for i, image in enumerate(images):
        print(f"{image}: {lines[i]}", file=out or sys.stdout)
    return len(images) - len(ready)


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    cli = argparse.ArgumentParser(
        prog="python -m helpers.predict",
        description="Classify image files with a saved Keras model (.keras) and print the "
        "most probable classes of each. Exit status: 0 when every image was classified, "
        "1 when some were not, 2 when the model cannot be used.",
    )
    cli.add_argument("model", help="the saved model, e.g. artifacts/10_own_images/model.keras")
    cli.add_argument("images", nargs="+", metavar="image", help="image files (JPEG, PNG, ...)")
    cli.add_argument("--top", type=int, default=3, help="how many classes to print (default 3)")
    cli.add_argument("--classes", help="JSON list of class names (default: MODEL.classes.json)")
    args = cli.parse_args(argv)
    from helpers import config

    config.start_backend()  # Keras, with the backends' routine start-up log filtered out
    try:
        model = load(args.model)
        n_outputs = int(model.output_shape[-1])
        names = read_class_names(args.classes or classes_file(args.model), n_outputs)
        failed = classify(model, names, args.images, k=max(1, min(args.top, n_outputs)))
    except ModelFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return MODEL_ERROR
    if failed:
        print(f"{failed} of {len(args.images)} files could not be classified.", file=sys.stderr)
    return SOME_FAILED if failed else OK


if __name__ == "__main__":
    sys.exit(main())
