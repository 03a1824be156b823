"""Transfer learning with VGG16: the plumbing around notebook 04's cells, which write the
lesson's Keras code themselves (used by notebooks 04 and 10, the benchmarks and the tests).

Finding the weights (``VGG16_WEIGHTS`` or the Keras download, with errors that say what to
do), VGG16's preprocessing as a layer, the notebook's frozen base and heads packaged
(fine-tuning stays in the notebook's cells), the feature cache, and what each input size
costs. Backend-agnostic Keras 3.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from helpers import config, data, training

#: Environment variable naming a local copy of the weights file.
WEIGHTS_ENV = "VGG16_WEIGHTS"
#: The file Keras downloads for ``VGG16(include_top=False, weights="imagenet")``.
WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_ORIGIN = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{WEIGHTS_FILE}"
)
#: Keras' own checksum of that file (``keras/src/applications/vgg16.py``).
WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"
#: Input sizes the course offers (pixels per side); VGG16 needs at least 32.
INPUT_SIZES = (32, 64, 128, 224)
HEADS = ("flatten", "gap")

_HOW_TO_GET = (
    f"Download {WEIGHTS_ORIGIN} (about 59 MB) on a machine that is online, copy it to "
    f"this machine, and set {WEIGHTS_ENV}=/path/to/{WEIGHTS_FILE} before starting Jupyter "
    f"(or in the notebook: os.environ['{WEIGHTS_ENV}'] = '/path/to/{WEIGHTS_FILE}')."
)
RANDOM_WEIGHTS_WARNING = (
    "VGG16 RUNS WITH RANDOM WEIGHTS, NOT IMAGENET WEIGHTS: EVERY ACCURACY BELOW IS MEANINGLESS."
)
UNPUBLISHED_WEIGHTS_WARNING = (
    f"{WEIGHTS_ENV} IS NOT THE PUBLISHED IMAGENET FILE: THE RESULTS ARE THOSE OF THESE WEIGHTS."
)


class WeightsError(ValueError):
    """The VGG16 weights could not be found or read; the message says what to do."""


class TransferConfigError(ValueError):
    """An option of a transfer-learning helper is out of range; the message lists valid values."""


@dataclass(frozen=True)
class WeightsSource:
    """Where VGG16's weights come from: a ``path`` to an .h5 file, or ``None`` for random."""

    path: Path | None
    origin: str

    @property
    def pretrained(self) -> bool:
        """True when the weights come from a file (ImageNet), False for random weights."""
        return self.path is not None

    def __str__(self) -> str:
        return f"{self.origin}: {self.path}" if self.path else self.origin


def _shout(*lines: str) -> None:
    """Print ``lines`` to stderr between bars of ``!``: a warning nobody scrolls past."""
    bar = "!" * 88
    body = "\n".join(f"!! {line}" for line in lines)
    print(f"\n{bar}\n{body}\n{bar}\n", file=sys.stderr, flush=True)


def file_md5(path: str | os.PathLike) -> str:
    """MD5 of a file, read in chunks (the checksum Keras uses for the weights file)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _download() -> Path:
    """Fetch the weights into the Keras cache once (MD5-checked), or raise ``WeightsError``."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # a silent firewall must not hang the notebook
    try:
        path = keras.utils.get_file(
            WEIGHTS_FILE,
            WEIGHTS_ORIGIN,
            cache_subdir="models",
            file_hash=WEIGHTS_MD5,
            # Read KERAS_HOME now: Keras itself reads it only once, when it is imported.
            cache_dir=os.environ.get("KERAS_HOME") or None,
        )
    except Exception as err:  # URL, SSL, timeout and checksum errors all land here
        raise WeightsError(
            f"The VGG16 ImageNet weights are not in the Keras cache and the download from "
            f"{WEIGHTS_ORIGIN} failed ({type(err).__name__}: {err}). {_HOW_TO_GET}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
    return Path(path)


def resolve_weights(allow_random: bool | None = None) -> WeightsSource:
    """Find VGG16's ImageNet weights (without the top) and say where they come from.

    1. The file ``VGG16_WEIGHTS`` names: a wrong path or a file without VGG16's layout is an
       error even in fast mode; a file whose MD5 is not the published one's gets a loud warning.
    2. Otherwise the Keras download into ``$KERAS_HOME/models``, MD5-checked, done once.

    With neither, raises ``WeightsError`` naming the file and ``VGG16_WEIGHTS``, unless
    ``allow_random`` (default: fast mode): then it prints a loud warning and returns random
    weights, so CI can run the notebook on a machine without them.
    """
    raw = os.environ.get(WEIGHTS_ENV, "").strip()
    if raw:
        path = Path(raw).expanduser()
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise WeightsError(
                f"{WEIGHTS_ENV} points at {path}, which {what}. Point {WEIGHTS_ENV} at the "
                f"weights file itself, or unset it to download them. {_HOW_TO_GET}"
            )
        # Load it once into a 32 px VGG16: a file without exactly its weights is refused.
        probe = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
        load_vgg16_weights(probe, path, WEIGHTS_ENV)
        digest = file_md5(path)
        if digest != WEIGHTS_MD5:
            _shout(
                f"WARNING: {UNPUBLISHED_WEIGHTS_WARNING}",
                f"{path} loads into VGG16 without its top (13 convolutions, every shape right),",
                f"but its MD5 is {digest}, not {WEIGHTS_MD5} (the published {WEIGHTS_FILE}):",
                "the accuracies below are those of these weights, not necessarily ImageNet's.",
            )
        return WeightsSource(path, WEIGHTS_ENV)
    try:
        return WeightsSource(_download(), "ImageNet (Keras download)")
    except WeightsError as err:
        if not (config.is_fast() if allow_random is None else allow_random):
            raise
        _shout(
            f"WARNING: {RANDOM_WEIGHTS_WARNING}",
            f"Fast mode ({config.FAST_ENV}=1) goes on only so that the notebook runs end to end:",
            "the numbers it prints test the code, not transfer learning.",
            f"Why: {err}",
        )
        return WeightsSource(None, "random weights (fast mode: no ImageNet weights reachable)")


def load_vgg16_weights(base, path: str | os.PathLike, origin: str = "weights file") -> None:
    """Load an .h5 file of VGG16 weights without the top into ``base``, or raise a clear
    ``WeightsError`` for a missing, corrupt or wrong (other network) file."""
    import h5py

    path = Path(path)
    where = f"{path} ({origin})"
    if not path.is_file():
        raise WeightsError(f"{where} does not exist. {_HOW_TO_GET}")
    if path.suffix not in (".h5", ".hdf5"):
        raise WeightsError(
            f"{where} is not an .h5 file; VGG16's weights come as {WEIGHTS_FILE}. {_HOW_TO_GET}"
        )
    if not h5py.is_hdf5(path):
        raise WeightsError(
            f"{where} is corrupt: it is not an HDF5 (.h5) file at all. Delete it and get it "
            f"again. {_HOW_TO_GET}"
        )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            base.load_weights(str(path))
        skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
        if skipped:  # Keras loaded part of the file and left the rest random: refuse that
            raise ValueError(skipped[0])
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except ValueError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        said = " ".join(lines[:2])[:300] or type(err).__name__
        raise WeightsError(
            f"{where} does not hold the weights of VGG16 without its top ({said}). It may "
            f"belong to another network, or be the file with the classifier "
            f"(vgg16_weights_tf_dim_ordering_tf_kernels.h5). {_HOW_TO_GET}"
        ) from err
    except (OSError, KeyError, RuntimeError, TypeError) as err:
        raise WeightsError(
            f"{where} is truncated or corrupt ({type(err).__name__}: {err}). Delete it and get "
            f"it again. {_HOW_TO_GET}"
        ) from err


# --- the model -------------------------------------------------------------------------------


def preprocess_layer():
    """``keras.applications.vgg16.preprocess_input`` as a layer inside the model.

    That preprocessing ("caffe" mode: RGB -> BGR, minus the ImageNet mean of each channel)
    is affine per pixel, so it is exactly a frozen ``Dense(3)`` on the channel axis whose
    kernel and bias are read off ``preprocess_input`` itself: a built-in layer, so a saved
    model loads anywhere without custom objects.
    """
    preprocess = keras.applications.vgg16.preprocess_input
    bias = preprocess(np.zeros((1, 3), dtype="float32"))[0]
    kernel = preprocess(np.eye(3, dtype="float32")) - bias  # row i: where channel i goes
    return keras.layers.Dense(
        3,
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(bias),
        trainable=False,
        name="vgg16_preprocess",
    )


def check_input_size(size) -> int:
    """Return ``size`` as an int, or raise ``TransferConfigError`` (VGG16 needs >= 32 px)."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 32:
        raise TransferConfigError(
            f"input_size must be an integer of at least 32 pixels (VGG16 halves it five "
            f"times), for example one of {INPUT_SIZES}; got {size!r}"
        )
    return int(size)


@dataclass
class Backbone:
    """The frozen part: ``model`` is VGG16 without its top; ``extractor`` maps uint8 images to
    its last feature map (resizing and preprocessing included); ``weights`` their source."""

    model: object
    extractor: object
    input_size: int
    weights: WeightsSource

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of the features of one image, e.g. ``(1, 1, 512)`` at 32 px."""
        return tuple(self.extractor.output.shape[1:])

    def fingerprint(self) -> str:
        """SHA-256 of the current weights of VGG16 (changes when they are fine-tuned)."""
        return _sha256(self.model.get_weights())


def build_backbone(
    input_size: int | None = None, weights: WeightsSource | str | os.PathLike | None = "auto"
) -> Backbone:
    """uint8 images -> Resizing(input_size) -> ``preprocess_layer()`` -> frozen VGG16 convs.

    ``input_size`` defaults to ``config.transfer_input_size()``. ``weights``: ``"auto"``
    (``resolve_weights()``), a path to an .h5 file, a ``WeightsSource``, or ``None`` (random).
    """
    size = check_input_size(config.transfer_input_size() if input_size is None else input_size)
    if isinstance(weights, WeightsSource):
        source = weights
    elif weights is None:
        source = WeightsSource(None, "random weights")
    elif isinstance(weights, str) and weights == "auto":
        source = resolve_weights()
    else:
        source = WeightsSource(Path(weights), "weights file")
    base = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(size, size, 3), name="vgg16"
    )
    if source.pretrained:
        load_vgg16_weights(base, source.path, source.origin)
    base.trainable = False
    images = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8", name="image")
    x = keras.layers.Resizing(size, size, name=f"resize_{size}")(images)
    extractor = keras.Model(images, base(preprocess_layer()(x)), name=f"vgg16_features_{size}px")
    return Backbone(base, extractor, size, source)


def build_head(feature_shape: tuple[int, ...], kind: str = "flatten"):
    """Notebook 04's new classifier for VGG16's features: Flatten (``"flatten"``) or
    GlobalAveragePooling2D (``"gap"``), Dense(256, relu), Dropout(0.5), Dense(10, softmax)."""
    if kind not in HEADS:
        raise TransferConfigError(f"head kind must be one of {HEADS}, got {kind!r}")
    inputs = keras.Input(shape=tuple(feature_shape), name="features")
    if kind == "flatten":
        pool = keras.layers.Flatten(name="flatten")
    else:
        pool = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")
    x = keras.layers.Dense(256, activation="relu", name="dense")(pool(inputs))
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(
        data.NUM_CLASSES, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=f"head_{kind}")


@dataclass
class TransferModel:
    """A head on a backbone: ``model`` (uint8 images -> class probabilities) and its parts.
    ``head`` is the same object inside ``model``, so training it on cached features trains
    the head of ``model`` too."""

    model: object
    head: object
    backbone: Backbone
    kind: str


def add_head(backbone: Backbone, kind: str = "flatten") -> TransferModel:
    """Put a new ``build_head(kind)`` on ``backbone``; compile the head and the whole model
    (Adam, learning rate 1e-3)."""
    head = build_head(backbone.feature_shape, kind)
    extractor = backbone.extractor
    model = keras.Model(extractor.input, head(extractor.output), name=f"vgg16_{kind}")
    training.compile_model(head, learning_rate=1e-3)
    training.compile_model(model, learning_rate=1e-3)
    return TransferModel(model, head, backbone, kind)


# --- the feature cache -----------------------------------------------------------------------


def _sha256(arrays, header: str = "") -> str:
    """SHA-256 of ``header`` and each array's shape and bytes: a cache key."""
    digest = hashlib.sha256(header.encode())
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Features:
    """Features of a set of images, and whether they came from the cache."""

    values: np.ndarray
    path: Path
    reused: bool
    seconds: float


def cached_features(backbone: Backbone, images: np.ndarray) -> Features:
    """VGG16 features of uint8 ``images``, computed once, then read from
    ``<artifacts>/features``. The file name holds the input size and fingerprints of the
    weights and of the images, so changing any of them computes the features again."""
    start = time.perf_counter()
    folder = config.artifacts_dir() / "features"
    folder.mkdir(parents=True, exist_ok=True)
    weights, pixels = backbone.fingerprint(), _sha256([images], str(images.dtype))
    path = folder / f"vgg16-{backbone.input_size}px-w{weights[:16]}-d{pixels[:16]}.npy"
    try:
        values = np.load(path, allow_pickle=False)
        if values.shape == (len(images), *backbone.feature_shape):
            return Features(values, path, True, time.perf_counter() - start)
    except (OSError, ValueError):
        pass  # no cache yet, or a damaged file: computed again
    values = np.asarray(backbone.extractor.predict(images, batch_size=64, verbose=0))
    partial = path.with_name(path.stem + ".partial.npy")
    np.save(partial, values)
    os.replace(partial, path)  # never leave a half-written file under the final name
    return Features(values, path, False, time.perf_counter() - start)


# --- speed and cost --------------------------------------------------------------------------


def time_head_training(backbone: Backbone, images, labels, features, batch_size: int = 64) -> dict:
    """Seconds for one epoch of a fresh Flatten head trained through the frozen base (on
    ``images``) and on cached ``features``, each after a one-batch warm-up (so compiling the
    step is not counted), and the speed-up."""
    results = {"images": len(images), "input_size": backbone.input_size}
    for name, x in (("through_base_s", images), ("cached_s", features)):
        fresh = add_head(backbone)
        model = fresh.model if name == "through_base_s" else fresh.head
        model.fit(x[:batch_size], labels[:batch_size], batch_size=batch_size, verbose=0)
        start = time.perf_counter()
        model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0)
        results[name] = time.perf_counter() - start
    results["speedup"] = results["through_base_s"] / results["cached_s"]
    return results


def conv_flops(model) -> int:
    """Floating-point operations of one image through the Conv2D and Dense layers of
    ``model`` (nested models included), from the layer shapes: a multiply-add counts 2, so a
    convolution costs ``2 * H_out * W_out * k_h * k_w * C_in * C_out``. Biases and
    activations are left out."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2 * h * w * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            n_in, n_out = layer.kernel.shape
            total += 2 * n_in * n_out
        elif isinstance(layer, keras.Model):
            total += conv_flops(layer)
    return int(total)


def flops_table(sizes=INPUT_SIZES):
    """One row per input size: VGG16's feature map, GFLOPs per image, the cost relative to the
    first size, and the size of the cached float32 features of 50,000 images. Builds VGG16
    with random weights at each size."""
    import pandas as pd

    rows = []
    for size in map(check_input_size, sizes):
        base = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=(size, size, 3)
        )
        shape = tuple(base.output.shape[1:])
        rows.append(
            {
                "input (px)": size,
                "feature map": "×".join(map(str, shape)),
                "GFLOPs / image": conv_flops(base) / 1e9,
                "features / image": int(np.prod(shape)),
                "feature cache, 50,000 images (MB)": 50_000 * int(np.prod(shape)) * 4 / 1e6,
            }
        )
    table = pd.DataFrame(rows)
    table.insert(3, "cost vs first", table["GFLOPs / image"] / table["GFLOPs / image"].iloc[0])
    return table
