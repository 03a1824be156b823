"""Transfer learning with VGG16, packaged after notebook 04 has shown it in its cells.

Notebook 04 writes the lesson's Keras code itself (``keras.applications.VGG16(...)``,
``base.trainable = False``, the new head, unfreezing block 5 and recompiling). This module
keeps the plumbing around it and the same steps packaged for the benchmarks:

- ``resolve_weights()`` finds the ImageNet weights of VGG16 without its classifier
  (``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``): the file named by
  ``VGG16_WEIGHTS`` (offline machines, mirrors; its layout is checked, and a file that is
  not the published one gets a loud warning), otherwise the normal Keras download,
  checked against Keras' own MD5. With neither, it raises ``WeightsError`` saying which
  file to get, except in fast mode, where it prints a loud warning and the notebook goes
  on from random weights.
- ``preprocess_layer()``: VGG16's ``preprocess_input`` as a layer inside the model.
- ``build_backbone()``, ``build_head()``, ``add_head()``, ``unfreeze_top_blocks()``: the
  notebook's frozen base, heads and fine-tuning step, packaged.
- ``cached_features()`` runs the frozen base once per image and keeps the result in
  ``config.artifacts_dir()``, keyed by input size, weights and images, so the head
  trains on features in seconds instead of running VGG16 every epoch.
- ``time_head_training()``, ``conv_flops()`` / ``flops_table()``: what each costs.

Everything inside the models is backend-agnostic Keras 3 (``keras.layers``,
``keras.ops``), so the same code runs with TensorFlow, JAX or PyTorch.
"""

from __future__ import annotations

import hashlib
import os
import re
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
#: Keras' own checksum of that file (``keras.applications.vgg16``).
WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"
#: Seconds without a byte from the server before the download is given up.
DOWNLOAD_TIMEOUT_S = 60

#: Input sizes the course offers (pixels per side); VGG16 needs at least 32.
INPUT_SIZES = (32, 64, 128, 224)
#: The two heads compared in notebook 04.
HEADS = ("flatten", "gap")
#: VGG16's five convolution blocks, bottom to top.
BLOCKS = ("block1", "block2", "block3", "block4", "block5")
#: Phase 1 (head only) and phase 2 (fine-tuning) learning rates of Adam.
HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-5

_HOW_TO_GET = (
    f"Download {WEIGHTS_ORIGIN} (about 59 MB) on a machine that is online, copy it to "
    f"this machine, and set {WEIGHTS_ENV}=/path/to/{WEIGHTS_FILE} before starting Jupyter "
    f"(or in the notebook: os.environ['{WEIGHTS_ENV}'] = '/path/to/{WEIGHTS_FILE}')."
)


class WeightsError(ValueError):
    """The VGG16 weights could not be found or read; the message says what to do."""


class TransferConfigError(ValueError):
    """An option of a transfer-learning helper is out of range; the message lists valid values."""


# --- where the weights come from -------------------------------------------------------------


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


RANDOM = WeightsSource(None, "random weights")


def _download() -> Path:
    """Fetch the weights into the Keras cache once (MD5-checked), or raise ``WeightsError``."""
    # Read KERAS_HOME now: Keras itself reads it only once, when it is imported.
    cache_dir = os.environ.get("KERAS_HOME") or None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a silent firewall must not hang the notebook
    try:
        path = keras.utils.get_file(
            WEIGHTS_FILE,
            WEIGHTS_ORIGIN,
            cache_subdir="models",
            file_hash=WEIGHTS_MD5,
            cache_dir=cache_dir,
        )
    except Exception as err:  # URL, SSL, timeout and checksum errors all land here
        raise WeightsError(
            f"The VGG16 ImageNet weights are not in the Keras cache and the download from "
            f"{WEIGHTS_ORIGIN} failed ({type(err).__name__}: {err}). {_HOW_TO_GET}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
    return Path(path)


RANDOM_WEIGHTS_WARNING = (
    "VGG16 RUNS WITH RANDOM WEIGHTS, NOT IMAGENET WEIGHTS: EVERY ACCURACY BELOW IS MEANINGLESS."
)


def warn_random_weights(reason: str) -> None:
    """Print the loud fast-mode warning that the network runs with random weights."""
    bar = "!" * 88
    print(
        f"\n{bar}\n!! WARNING: {RANDOM_WEIGHTS_WARNING}\n"
        f"!! Fast mode ({config.FAST_ENV}=1) goes on without them only so that the notebook "
        f"runs end to end;\n!! the numbers it prints test the code, not transfer learning.\n"
        f"!! Why: {reason}\n{bar}\n",
        file=sys.stderr,
        flush=True,
    )


UNPUBLISHED_WEIGHTS_WARNING = (
    f"{WEIGHTS_ENV} IS NOT THE PUBLISHED IMAGENET FILE: THE RESULTS ARE THOSE OF THESE WEIGHTS."
)


def file_md5(path: str | os.PathLike) -> str:
    """MD5 of a file, read in chunks (the checksum Keras uses for the weights file)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def warn_unpublished_weights(path: Path, digest: str) -> None:
    """Print a loud warning: ``path`` has VGG16's layout but is not the published file."""
    bar = "!" * 88
    print(
        f"\n{bar}\n!! WARNING: {UNPUBLISHED_WEIGHTS_WARNING}\n"
        f"!! Checked: {path} loads into VGG16 without its top (13 convolutions, every shape "
        f"right),\n!! but its MD5 is {digest}, not {WEIGHTS_MD5}, the checksum Keras uses for "
        f"the published\n!! {WEIGHTS_FILE} (keras/src/applications/vgg16.py).\n"
        f"!! It may be a re-saved copy of the ImageNet weights, or other weights of the same "
        f"shape (trained\n!! elsewhere, or not at all): the accuracies below are those of these "
        f"weights, and need not be\n!! what transfer learning from ImageNet gives.\n{bar}\n",
        file=sys.stderr,
        flush=True,
    )


def check_weights_file(path: str | os.PathLike, origin: str = "weights file") -> None:
    """Load ``path`` once into a 32 px VGG16 without its top: raises ``WeightsError`` (with
    what to do) unless the file holds exactly those weights."""
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    load_vgg16_weights(base, path, origin)


def resolve_weights(allow_random: bool | None = None) -> WeightsSource:
    """Find the VGG16 ImageNet weights (without the top) and say where they come from.

    1. ``VGG16_WEIGHTS=/path/to/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``: that
       file; a wrong path or a file without VGG16's layout is an error even in fast mode,
       and a file whose MD5 is not the published file's gets a loud warning.
    2. Otherwise ``weights="imagenet"``: the Keras download into ``~/.keras/models``
       (``$KERAS_HOME/models``), checked against Keras' MD5, done once.

    With neither, raises ``WeightsError`` naming the file and ``VGG16_WEIGHTS``, unless
    ``allow_random`` (default: the fast mode) is true: then it prints a loud warning
    and returns ``RANDOM``, so CI can run the notebook on a machine without them.
    """
    allow_random = config.is_fast() if allow_random is None else allow_random
    raw = os.environ.get(WEIGHTS_ENV, "").strip()
    if raw:
        path = Path(raw).expanduser()
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise WeightsError(
                f"{WEIGHTS_ENV} points at {path}, which {what}. Point {WEIGHTS_ENV} at the "
                f"weights file itself, or unset it to download them. {_HOW_TO_GET}"
            )
        check_weights_file(path, WEIGHTS_ENV)
        digest = file_md5(path)
        if digest != WEIGHTS_MD5:
            warn_unpublished_weights(path, digest)
        return WeightsSource(path, WEIGHTS_ENV)
    try:
        return WeightsSource(_download(), "ImageNet (Keras download)")
    except WeightsError as err:
        if not allow_random:
            raise
        warn_random_weights(str(err))
        return WeightsSource(None, "random weights (fast mode: no ImageNet weights reachable)")


def load_vgg16_weights(base, path: str | os.PathLike, origin: str = "weights file") -> None:
    """Load an .h5 file of VGG16 weights without the top into ``base``, or raise a clear
    ``WeightsError`` for a missing, corrupt or wrong (other network) file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path} ({origin}) does not exist. {_HOW_TO_GET}")
    if path.suffix not in (".h5", ".hdf5"):
        raise WeightsError(
            f"{path} ({origin}) is not an .h5 file; VGG16 weights come as {WEIGHTS_FILE}. "
            f"{_HOW_TO_GET}"
        )
    if not h5py.is_hdf5(path):
        raise WeightsError(
            f"{path} ({origin}) is corrupt: it is not an HDF5 (.h5) file at all. Delete it "
            f"and get it again. {_HOW_TO_GET}"
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
            f"{path} ({origin}) does not hold the weights of VGG16 without its top ({said}). "
            f"It may belong to another network, or be the file with the classifier "
            f"(vgg16_weights_tf_dim_ordering_tf_kernels.h5). {_HOW_TO_GET}"
        ) from err
    except (OSError, KeyError, RuntimeError, TypeError) as err:
        raise WeightsError(
            f"{path} ({origin}) is truncated or corrupt ({type(err).__name__}: {err}). "
            f"Delete it and get it again. {_HOW_TO_GET}"
        ) from err


# --- the model -------------------------------------------------------------------------------


def preprocess_layer(name: str = "vgg16_preprocess"):
    """``keras.applications.vgg16.preprocess_input`` as a layer inside the model.

    VGG16's preprocessing ("caffe" mode) is affine per pixel: swap red and blue
    (RGB -> BGR) and subtract the ImageNet mean of each channel, with no scaling. So it
    is exactly a frozen ``Dense(3)`` on the channel axis, whose kernel (a permutation)
    and bias (minus the mean) are read off ``preprocess_input`` itself. A built-in
    layer, not custom code: a saved model loads anywhere without extra registration.
    """
    preprocess = keras.applications.vgg16.preprocess_input
    bias = preprocess(np.zeros((1, 3), dtype="float32"))[0]
    kernel = preprocess(np.eye(3, dtype="float32")) - bias  # row i: where channel i goes
    return keras.layers.Dense(
        3,
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(bias),
        trainable=False,
        name=name,
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
    """The frozen part: VGG16's convolutions and the model that turns images into features.

    ``model`` is VGG16 without its top; ``extractor`` maps uint8 images
    ``(32, 32, 3)`` to VGG16's last feature map (resizing and ``preprocess_input``
    included). ``weights`` says where the weights came from.
    """

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
        return weights_fingerprint(self.model)


def build_backbone(
    input_size: int | None = None,
    weights: WeightsSource | str | os.PathLike | None = "auto",
    image_shape: tuple[int, int, int] = data.IMAGE_SHAPE,
) -> Backbone:
    """uint8 images -> Resizing(input_size) -> vgg16.preprocess_input -> frozen VGG16 convs.

    ``input_size`` defaults to ``config.transfer_input_size()`` (32 px on CPU, 128 px on
    GPU). ``weights``: ``"auto"`` (``resolve_weights()``), a path to an .h5 file, a
    ``WeightsSource``, or ``None`` for random weights.
    """
    size = check_input_size(config.transfer_input_size() if input_size is None else input_size)
    if isinstance(weights, str) and weights == "auto":
        source = resolve_weights()
    elif weights is None:
        source = RANDOM
    elif isinstance(weights, WeightsSource):
        source = weights
    else:
        source = WeightsSource(Path(weights), "weights file")
    base = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(size, size, 3), name="vgg16"
    )
    if source.path is not None:
        load_vgg16_weights(base, source.path, source.origin)
    base.trainable = False
    images = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = keras.layers.Resizing(size, size, name=f"resize_{size}")(images)
    x = preprocess_layer()(x)
    features = base(x)
    extractor = keras.Model(images, features, name=f"vgg16_features_{size}px")
    return Backbone(base, extractor, size, source)


def build_head(feature_shape: tuple[int, ...], kind: str = "flatten", units: int = 256):
    """A new classifier for VGG16's features.

    ``"flatten"`` (the classic head): Flatten -> Dense(256, relu) -> Dropout(0.5) ->
    Dense(10, softmax); its first Dense layer grows with the feature map.
    ``"gap"``: GlobalAveragePooling2D instead of Flatten, one average per channel,
    so it has the same size (512 inputs) at every input size.
    """
    if kind not in HEADS:
        raise TransferConfigError(f"head kind must be one of {HEADS}, got {kind!r}")
    inputs = keras.Input(shape=tuple(feature_shape), name="features")
    if kind == "flatten":
        x = keras.layers.Flatten(name="flatten")(inputs)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(inputs)
    x = keras.layers.Dense(units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(
        data.NUM_CLASSES, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=f"head_{kind}")


@dataclass
class TransferModel:
    """A head on a backbone: ``model`` (uint8 images -> class probabilities) and its parts.

    ``head`` is the same object inside ``model`` and alone (features -> probabilities),
    so training it on cached features trains the head of ``model`` too.
    """

    model: object
    head: object
    backbone: Backbone
    kind: str


def add_head(
    backbone: Backbone, kind: str = "flatten", learning_rate: float = HEAD_LEARNING_RATE
) -> TransferModel:
    """Put a new ``build_head(kind)`` on ``backbone``; compile the head and the whole model."""
    head = build_head(backbone.feature_shape, kind)
    extractor = backbone.extractor
    model = keras.Model(extractor.input, head(extractor.output), name=f"vgg16_{kind}")
    training.compile_model(head, learning_rate=learning_rate)
    training.compile_model(model, learning_rate=learning_rate)
    return TransferModel(model, head, backbone, kind)


def _block(layer_name: str) -> int | None:
    match = re.match(r"block(\d)_", layer_name)
    return int(match.group(1)) if match else None


def unfreeze_top_blocks(
    transfer: TransferModel, n: int, learning_rate: float = FINE_TUNE_LEARNING_RATE
) -> list[str]:
    """Make exactly the top ``n`` of VGG16's five blocks trainable (0 freezes them all) and
    recompile ``transfer.model`` with a low learning rate; return the trainable layers.

    The low rate (default 1e-5, a hundred times the head's) nudges the pretrained
    filters instead of wrecking them with the large gradients of a fresh head.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(BLOCKS):
        raise TransferConfigError(f"n must be an integer from 0 to {len(BLOCKS)}, got {n!r}")
    base = transfer.backbone.model
    first = len(BLOCKS) - n + 1
    base.trainable = n > 0
    trainable = []
    for layer in base.layers:
        block = _block(layer.name)
        layer.trainable = block is not None and block >= first
        if layer.trainable and layer.weights:
            trainable.append(layer.name)
    training.compile_model(transfer.model, learning_rate=learning_rate)
    return trainable


# --- fingerprints and the feature cache ------------------------------------------------------


def weights_fingerprint(model) -> str:
    """SHA-256 of a model's weights (shapes and values), e.g. to key a cache."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def data_fingerprint(images: np.ndarray) -> str:
    """SHA-256 of an image array (shape, dtype and pixels)."""
    digest = hashlib.sha256(f"{images.shape}{images.dtype}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Features:
    """Features of a set of images, and whether they came from the cache."""

    values: np.ndarray
    path: Path
    reused: bool
    seconds: float


def features_dir() -> Path:
    """Folder of the feature cache: ``<artifacts>/features``."""
    path = config.artifacts_dir() / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_path(backbone: Backbone, images: np.ndarray) -> Path:
    """Where the features of ``images`` through ``backbone`` are cached: the file name holds
    the input size and fingerprints of the weights and of the images."""
    weights = backbone.fingerprint()[:16]
    data = data_fingerprint(images)[:16]
    return features_dir() / f"vgg16-{backbone.input_size}px-w{weights}-d{data}.npy"


def cached_features(backbone: Backbone, images: np.ndarray, batch_size: int = 64) -> Features:
    """VGG16 features of uint8 ``images``, computed once and then read from the cache.

    The cache is keyed by the input size, the weights and the images, so changing
    any of them (another size, other or fine-tuned weights, other images) computes
    the features again instead of reusing stale ones.
    """
    start = time.perf_counter()
    path = cache_path(backbone, images)
    expected = (len(images), *backbone.feature_shape)
    if path.is_file():
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            values = None  # a damaged cache file is simply computed again
        if values is not None and values.shape == expected:
            return Features(values, path, True, time.perf_counter() - start)
    values = np.asarray(backbone.extractor.predict(images, batch_size=batch_size, verbose=0))
    partial = path.with_name(path.stem + ".partial.npy")
    np.save(partial, values)
    os.replace(partial, path)  # never leave a half-written file under the final name
    return Features(values, path, False, time.perf_counter() - start)


# --- speed -----------------------------------------------------------------------------------


def time_head_training(
    backbone: Backbone,
    images: np.ndarray,
    labels: np.ndarray,
    features: np.ndarray,
    kind: str = "flatten",
    batch_size: int = 64,
) -> dict:
    """Seconds for one epoch of head training through the frozen base (on the images) and
    on cached ``features``, each with a fresh head after a one-batch warm-up; with the
    speed-up. The course's models are left untouched."""
    results = {"images": len(images), "input_size": backbone.input_size}
    for name, x in (("through_base_s", images), ("cached_s", features)):
        if name == "through_base_s":
            model = add_head(backbone, kind).model
        else:
            model = build_head(backbone.feature_shape, kind)
            training.compile_model(model, learning_rate=HEAD_LEARNING_RATE)
        model.fit(x[:batch_size], labels[:batch_size], batch_size=batch_size, verbose=0)
        start = time.perf_counter()
        model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0)
        results[name] = time.perf_counter() - start
    results["speedup"] = results["through_base_s"] / results["cached_s"]
    return results


# --- cost ------------------------------------------------------------------------------------


def conv_flops(model) -> int:
    """Floating-point operations of one image through the Conv2D and Dense layers of
    ``model``, from the layer shapes: a multiply-add counts 2, so a convolution costs
    ``2 * H_out * W_out * k_h * k_w * C_in * C_out``. Biases and ReLUs are left out."""
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


def flops_table(sizes=INPUT_SIZES, train_images: int = 50_000):
    """One row per input size: VGG16's feature map, GFLOPs per image (convolutions),
    the cost relative to the first size, and the size of cached float32 features for
    ``train_images`` images. Builds VGG16 with random weights at each size."""
    import pandas as pd

    rows = []
    for size in sizes:
        base = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=(check_input_size(size),) * 2 + (3,)
        )
        shape = tuple(base.output.shape[1:])
        rows.append(
            {
                "input (px)": size,
                "feature map": "×".join(map(str, shape)),
                "GFLOPs / image": conv_flops(base) / 1e9,
                "features / image": int(np.prod(shape)),
                f"feature cache, {train_images:,} images (MB)": train_images
                * int(np.prod(shape))
                * 4
                / 1e6,
            }
        )
        del base
    table = pd.DataFrame(rows)
    table.insert(3, "cost vs first", table["GFLOPs / image"] / table["GFLOPs / image"].iloc[0])
    return table
