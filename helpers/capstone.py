"""The capstone recipe: a small, fast CIFAR-10 network and how to train it.

Notebook 07 writes each piece in its own cells first (the frozen whitening
convolution, the network, the warm-up + cosine schedule, the SGD optimizer with
weight averaging); this module packages the same code so the notebook can train,
ablate and scale it in one line. The recipe is our own Keras code, assembled from ideas
that public fast-CIFAR-10 work showed to matter. No code was copied; each idea is
credited where it is used:

- **Patch-whitening first layer** (``whitening``): the first convolution is a
  frozen 2×2 filter bank built from the eigenvectors of the covariance of 2×2
  image patches, so the network starts from decorrelated inputs. Introduced in
  David Page's "How to train your ResNet 8: Bag of tricks" (Myrtle.ai, 2019);
  the 2×2 size and the ± pairs of filters follow tysam-code's hlb-CIFAR10 and
  Keller Jordan's airbench ("94% on CIFAR-10 in 3.29 Seconds on a Single GPU",
  arXiv:2404.00498, 2024).
- **Architecture**: three groups of conv → max-pool → batch norm → GELU → conv
  → batch norm → GELU, a global max-pool and a linear layer whose logits are
  scaled down, after airbench's "ConvGroup" simplification of the ResNet-9 of
  Page's series. It has no skip connections.
- **Label smoothing** (``label_smoothing``, Szegedy et al., "Rethinking the
  Inception Architecture", 2016; 0.2 as in Page part 8 and airbench).
- **Weight averaging** (``ema_momentum``): an exponential moving average of the
  weights is what gets evaluated (Polyak averaging; Page part 8 and hlb-CIFAR10
  use an EMA, airbench uses Lookahead, a close cousin). Keras does it in the
  optimizer (``use_ema=True``) and writes the average into the model at the end.
- **Flip test-time augmentation** (``tta``): predict each image and its mirror
  image and average (Page part 8, airbench).
- **Warm-up, then cosine decay** (``schedule``): the learning rate rises linearly
  from 0 to its peak over the first quarter of the steps, then follows a cosine down to
  0 (``keras.optimizers.schedules.CosineDecay`` with ``warmup_target``, the schedule
  notebook 03 teaches too; warm-up after Goyal et al. 2017, cosine after Loshchilov &
  Hutter, "SGDR", 2017), with SGD, Nesterov momentum, decoupled weight decay and a
  learning rate scaled with the batch (``helpers.accelerate``).
- **Augmentation inside the model**: random horizontal flips and 2-pixel
  shifts, as in all of the above; images stay ``uint8`` until the model. The
  shift is a layer of our own (``RandomShift``, windows of the reflection-padded
  batch) because ``keras.layers.RandomTranslation`` makes Keras
  turn XLA off for the whole model.

``train(train, evaluation, recipe)`` builds, trains and scores on the evaluation split
(the validation split in the notebook); ``ablation`` switches each idea off in turn and
measures, on the same split, what it was worth.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace

import keras
import numpy as np

from helpers import accelerate, config, data, evaluation, training

#: The ideas an ablation can switch off, each with the work that inspired it.
IDEAS = {
    "whitening": "patch-whitening first conv (Page 2019 part 8; hlb-CIFAR10; airbench 2024)",
    "label_smoothing": "label smoothing 0.2 (Szegedy et al. 2016; Page part 8; airbench)",
    "ema": "weight averaging, EMA of the weights (Polyak; Page part 8; hlb-CIFAR10)",
    "tta": "flip test-time augmentation (Page part 8; airbench)",
    "schedule": "warm-up then cosine decay of the learning rate (Goyal 2017; Loshchilov 2017)",
}

#: Per-channel mean and standard deviation of the CIFAR-10 training images (0-255 scale).
CIFAR_MEAN = (125.31, 122.95, 113.87)
CIFAR_STD = (62.99, 62.09, 66.70)

#: Pixels of the random shift used as augmentation.
SHIFT_PIXELS = 2

#: Side of the whitening patches, and the whitening layer's filters: 2·2·3 = 12
#: eigenvectors of the patch covariance, each with its negative.
PATCH = 2
WHITEN_FILTERS = 2 * PATCH * PATCH * data.IMAGE_SHAPE[-1]


class CapstoneError(ValueError):
    """A recipe option or input is out of range; the message says what is accepted."""


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a capstone run. ``learning_rate`` is the peak rate quoted for
    ``batch_size``; the fast path scales it when the batch grows (several GPUs)."""

    widths: tuple[int, int, int] = (64, 256, 256)
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    ema_momentum: float = 0.99
    warmup_fraction: float = 0.25
    whitening: bool = True
    tta: bool = True
    schedule: bool = True
    seed: int = 0

    def __post_init__(self):
        if len(self.widths) != 3 or not all(isinstance(w, int) and w >= 4 for w in self.widths):
            raise CapstoneError(f"widths must be three integers >= 4, got {self.widths!r}")
        for option in ("epochs", "batch_size"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CapstoneError(f"{option} must be a positive integer, got {value!r}")
        for option, upper in (
            ("label_smoothing", 0.5),
            ("ema_momentum", 0.9999),
            ("warmup_fraction", 0.9),
            ("momentum", 0.99),
        ):
            value = getattr(self, option)
            if not 0 <= value <= upper:
                raise CapstoneError(f"{option} must be between 0 and {upper}, got {value}")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise CapstoneError(
                "learning_rate must be positive and weight_decay >= 0, got "
                f"{self.learning_rate} and {self.weight_decay}"
            )

    def without(self, idea: str) -> Recipe:
        """The same recipe with one of ``IDEAS`` switched off (without the schedule the
        rate is constant at half the peak, about the schedule's average)."""
        changes = {
            "whitening": {"whitening": False},
            "label_smoothing": {"label_smoothing": 0.0},
            "ema": {"ema_momentum": 0.0},
            "tta": {"tta": False},
            "schedule": {"schedule": False},
        }
        if idea not in changes:
            raise CapstoneError(f"unknown idea {idea!r}; choose one of {sorted(IDEAS)}")
        return replace(self, **changes[idea])


#: The full recipe scaled for a CPU: narrower, smaller batches (same ideas).
CPU_RECIPE = Recipe(widths=(32, 64, 128), batch_size=128, learning_rate=0.1)


def default_recipe(kind: str | None = None) -> Recipe:
    """The recipe for the current mode and device (``kind``, detected when None): the full
    network (``Recipe()``) on a GPU or TPU, ``CPU_RECIPE`` on a CPU, and with
    ``COURSE_FAST=1`` a narrow one for a few epochs of small batches."""
    if config.is_fast():
        return Recipe(
            widths=(16, 32, 64), epochs=3, batch_size=64, learning_rate=0.05, ema_momentum=0.9
        )
    if kind is None:
        kind, _ = config.detect_accelerator()
    return CPU_RECIPE if kind.upper() == "CPU" else Recipe()


# --- the model ---------------------------------------------------------------------------------


def whitening_kernel(
    images: np.ndarray, patch: int = PATCH, eps: float = 5e-4, max_images: int = 2000
):
    """A ``(patch, patch, 3, 2·3·patch²)`` convolution kernel that whitens image patches.

    The patches of the (normalised) ``images`` are decorrelated by the eigenvectors
    ``V`` of their covariance, each divided by the square root of its eigenvalue:
    ``V / sqrt(λ + eps)``. Each filter comes with its negative, so that the GELU after
    it keeps both signs. ``images``: uint8 ``(N, 32, 32, 3)``; the first ``max_images``
    are used, 250 at a time, so the patches never take more than ~50 MB at once (all
    2,000 at once would hold 400 MB, which counts against Binder's 2 GB).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) < 1:
        raise CapstoneError(f"images must be (N, H, W, 3) RGB images, got shape {images.shape}")
    images, size = images[:max_images], patch * patch * 3
    mean, std = np.asarray(CIFAR_MEAN, np.float32), np.asarray(CIFAR_STD, np.float32)
    covariance, count = np.zeros((size, size)), 0
    for start in range(0, len(images), 250):
        x = (images[start : start + 250].astype(np.float32) - mean) / std
        windows = np.lib.stride_tricks.sliding_window_view(x, (patch, patch), axis=(1, 2))
        # (N, H', W', C, ph, pw) -> rows of (ph, pw, C), the layout of a Keras kernel
        rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, size).astype(np.float64)
        covariance += rows.T @ rows
        count += len(rows)
    covariance /= count
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)
    kernel = filters.reshape(patch, patch, 3, -1)
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


@keras.saving.register_keras_serializable(package="course_capstone")
class RandomShift(keras.layers.Layer):
    """Shifts each training image by up to ``pixels`` in each direction, independently per
    image, filling the border by reflection; returns images unchanged at inference.

    ``keras.layers.RandomTranslation`` does the same, but marks itself
    ``supports_jit=False``, and one such layer makes Keras turn XLA off for the whole
    model (on JAX the training step then runs uncompiled, op by op). This layer is static
    slices and ``where``, so it compiles with XLA on every backend.
    """

    def __init__(self, pixels=SHIFT_PIXELS, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pixels, self.seed = int(pixels), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or self.pixels == 0:
            return images
        p, ops = self.pixels, keras.ops
        height, width = images.shape[1], images.shape[2]
        padded = ops.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        offsets = keras.random.randint((ops.shape(images)[0], 2), 0, 2 * p + 1, seed=self.generator)
        down, right = offsets[:, 0, None, None, None], offsets[:, 1, None, None, None]
        # Each image picks one of the 2p + 1 windows per axis: static slices and a `where`
        # (``ops.take_along_axis`` would do it too, but on TensorFlow it makes int64
        # indices, and oneDNN then prints a warning on CPUs without AVX-512 int64 support).
        rows = padded[:, :height]
        for k in range(1, 2 * p + 1):
            rows = ops.where(down == k, padded[:, k : k + height], rows)
        shifted = rows[:, :, :width]
        for k in range(1, 2 * p + 1):
            shifted = ops.where(right == k, rows[:, :, k : k + width], shifted)
        return shifted

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pixels": self.pixels, "seed": self.seed}


def whitening_layer(x_train=None, name="whiten"):
    """The first convolution: ``WHITEN_FILTERS`` 2×2 filters without bias, set from
    ``whitening_kernel(x_train)`` and frozen; with ``x_train=None`` an ordinary trainable
    convolution of the same shape (the recipe without whitening)."""
    whiten = keras.layers.Conv2D(
        WHITEN_FILTERS, PATCH, use_bias=False, trainable=x_train is None, name=name
    )
    if x_train is not None:
        whiten.build((None, *data.IMAGE_SHAPE))
        whiten.set_weights([whitening_kernel(x_train)])
    return whiten


def conv_group(x, width: int, name: str):
    """conv → max-pool → batch norm → GELU → conv → batch norm → GELU (notebook 07)."""
    layers = keras.layers
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn1")(x)
    x = layers.Activation("gelu", name=f"{name}_gelu1")(x)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn2")(x)
    return layers.Activation("gelu", name=f"{name}_gelu2")(x)


def build_capstone(
    recipe: Recipe | None = None, x_train: np.ndarray | None = None, name="capstone"
):
    """The capstone network for uint8 ``(32, 32, 3)`` images; softmax probabilities out.

    The network notebook 07 writes in its cells, packaged. With ``recipe.whitening`` the
    first 2×2 convolution is set from ``x_train`` (``whitening_layer``) and frozen; without
    it, it is an ordinary trainable convolution. Backend-agnostic (``keras.layers``
    only); the output layers compute in ``float32`` under mixed precision.
    """
    layers = keras.layers
    recipe = recipe or default_recipe()
    if recipe.whitening and x_train is None:
        raise CapstoneError("recipe.whitening needs the training images: pass x_train=")
    inputs = keras.Input(shape=data.IMAGE_SHAPE, dtype="uint8", name="image")
    x = keras.ops.cast(inputs, "float32")
    x = layers.RandomFlip("horizontal", seed=recipe.seed, name="flip")(x)
    x = RandomShift(SHIFT_PIXELS, seed=recipe.seed, name="shift")(x)
    variance = [s * s for s in CIFAR_STD]
    x = layers.Normalization(mean=CIFAR_MEAN, variance=variance, name="normalize")(x)
    whiten = whitening_layer(x_train if recipe.whitening else None)
    x = layers.Activation("gelu", name="whiten_gelu")(whiten(x))
    for group, width in enumerate(recipe.widths, start=1):
        x = conv_group(x, width, name=f"g{group}")
    x = layers.GlobalMaxPooling2D(name="gmp")(x)
    x = layers.Dense(data.NUM_CLASSES, use_bias=False, dtype="float32", name="logits")(x)
    x = layers.Rescaling(0.125, dtype="float32", name="logit_scale")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


# --- training ----------------------------------------------------------------------------------


def lr_schedule(peak: float, total_steps: int, warmup_fraction: float = 0.25):
    """Notebook 07's schedule, packaged: ``keras.optimizers.schedules.CosineDecay`` rising
    linearly from 0 to ``peak`` over the first ``warmup_fraction`` of ``total_steps``, then
    falling along a cosine to 0 at ``total_steps``. A schedule, not a callback: it is
    evaluated inside every step, so it stays exact with ``steps_per_execution > 1``."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise CapstoneError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not peak > 0 or not 0 <= warmup_fraction < 1:
        raise CapstoneError(
            f"peak must be positive and warmup_fraction in [0, 1), got {peak}, {warmup_fraction}"
        )
    warmup_steps = round(warmup_fraction * total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=float(peak),
        warmup_steps=warmup_steps,
    )


def make_optimizer(recipe: Recipe, learning_rate):
    """Notebook 07's optimizer, packaged: SGD with Nesterov momentum, decoupled weight decay
    (not on batch norm's ``gamma``/``beta``) and, when ``recipe.ema_momentum > 0``, an
    exponential moving average of the weights that Keras writes into the model at the end
    of ``fit``. ``learning_rate``: a number or a schedule (``lr_schedule``)."""
    optimizer = keras.optimizers.SGD(
        learning_rate=learning_rate,
        momentum=recipe.momentum,
        nesterov=True,
        weight_decay=recipe.weight_decay or None,
        use_ema=recipe.ema_momentum > 0,
        ema_momentum=recipe.ema_momentum or 0.99,
    )
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
    return optimizer


def compile_capstone(model, recipe: Recipe, steps_per_epoch: int, fast_path=None):
    """Compile with the recipe's optimizer (``make_optimizer``), schedule (``lr_schedule``
    over ``recipe.epochs``, or a constant half of the peak without ``recipe.schedule``)
    and loss; ``fast_path`` (``helpers.accelerate.FastPath``) adds XLA and
    ``steps_per_execution`` and sets the (scaled) peak learning rate."""
    peak = fast_path.learning_rate if fast_path is not None else recipe.learning_rate
    total = max(1, steps_per_epoch * recipe.epochs)
    rate = lr_schedule(peak, total, recipe.warmup_fraction) if recipe.schedule else peak / 2
    extra = fast_path.compile_kwargs() if fast_path is not None else {}
    model.compile(
        optimizer=make_optimizer(recipe, rate),
        loss=training.smoothed_loss(recipe.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        **extra,
    )
    return model


def flip_tta_model(model):
    """A model that returns the average of ``model``'s predictions for each image and its
    mirror image (flip test-time augmentation), compiled for ``evaluate``."""
    inputs = keras.Input(shape=model.input.shape[1:], dtype=model.input.dtype, name="image")
    mirrored = keras.ops.flip(inputs, axis=2)  # (batch, height, width, channels)
    outputs = keras.layers.Average(dtype="float32", name="flip_tta")(
        [model(inputs), model(mirrored)]
    )
    tta = keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")
    tta.compile(
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return tta


def predict(model, images: np.ndarray, *, tta: bool = True, batch_size: int = 250):
    """Class probabilities for uint8 ``images``; with ``tta`` the average of the predictions
    for each image and its mirror image (what ``flip_tta_model`` computes). Batch by batch
    with ``evaluation.predict_proba`` (no new TensorFlow graph per model, so an ablation's
    many models print no retracing warnings); ``batch_size`` 250: on a CPU a batch of
    1,000 held 600 MB of activations, which the kernel then kept."""
    plain = evaluation.predict_proba(model, images, batch_size)
    if not tta:
        return plain
    return (plain + evaluation.predict_proba(model, images[:, :, ::-1], batch_size)) / 2


@dataclass
class Fitted:
    """A trained capstone model and how its training went (see ``fit``)."""

    model: object
    seconds: float
    epochs_trained: float
    images_per_second: float
    fast_path: object
    history: dict


def _fast_path_for(recipe: Recipe, replicas: int):
    """The device's fast path with the recipe's batch and learning rate, both multiplied by
    ``replicas`` (the linear scaling rule)."""
    fast_path = accelerate.fast_path_settings(
        batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        reference_batch_size=recipe.batch_size,
    )
    if replicas > 1:
        fast_path = replace(
            fast_path,
            count=replicas,
            batch_size=recipe.batch_size * replicas,
            learning_rate=recipe.learning_rate * replicas,
        )
    return fast_path


def fit(
    x, y, recipe: Recipe | None = None, *, fast_path=None, plan=None, callbacks=(), verbose=0
) -> Fitted:
    """Build the capstone for uint8 images ``x`` and labels ``y`` and train it.

    ``fast_path`` (``helpers.accelerate.fast_path_settings(...)``) switches on mixed
    precision, XLA, ``steps_per_execution``, the scaled batch and learning rate and
    the training set kept on the device (``resident_data``);
    by default it is chosen from the device, with the recipe's batch and learning rate.
    ``plan`` (``helpers.distribute``) trains on several devices. ``callbacks`` go to
    Keras's ``fit``. The time covers building the whitening layer, compiling and
    training (first-step compilation included).
    """
    recipe = recipe or default_recipe()
    if fast_path is None:
        fast_path = _fast_path_for(recipe, plan.replicas if plan is not None else 1)
    keras.utils.set_random_seed(recipe.seed)
    steps_per_epoch = math.ceil(len(x) / fast_path.batch_size)
    scope = plan.scope() if plan is not None else contextlib.nullcontext()
    with accelerate.use_precision(fast_path.precision), scope:
        start = time.perf_counter()
        model = build_capstone(recipe, x)
        trainer, inputs = model, x
        if fast_path.resident_data:
            trainer = accelerate.resident_data_model(model, x)
            inputs = accelerate.resident_indices(x)
        compile_capstone(trainer, recipe, steps_per_epoch, fast_path)
        history = trainer.fit(
            inputs,
            y,
            epochs=recipe.epochs,
            callbacks=list(callbacks),
            verbose=verbose,
            **fast_path.fit_kwargs(),
        )
        seconds = time.perf_counter() - start
        if trainer is not model:  # the trained network, compiled for evaluate
            model.compile(
                loss=trainer.loss,
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            )
    steps = int(keras.ops.convert_to_numpy(trainer.optimizer.iterations))
    images = min(steps * fast_path.batch_size, len(x) * recipe.epochs)
    return Fitted(
        model=model,
        seconds=seconds,
        epochs_trained=round(steps / steps_per_epoch, 2),
        images_per_second=images / seconds,
        fast_path=fast_path,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
    )


@dataclass
class Result:
    """What one capstone run measured: ``accuracy`` (with flip TTA when the recipe has it)
    and ``accuracy_no_tta`` on the ``split`` it was scored on. ``train_seconds`` covers
    building the whitening layer, compiling and fitting (first-step compilation included)."""

    recipe: dict
    split: str
    accuracy: float
    accuracy_no_tta: float
    train_seconds: float
    epochs_run: float
    images_per_second: float
    fast_path: dict = field(default_factory=dict)
    distribution: str = "single"
    history: dict = field(default_factory=dict)
    model: object = field(default=None, repr=False, compare=False)

    def as_row(self) -> dict:
        """A flat dict for tables and JSON files (without the history and the model)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_IN_ROW}


_NOT_IN_ROW = ("history", "model")


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(labels).reshape(-1)))


def train(train, evaluation, recipe: Recipe | None = None, *, split="validation", **options):
    """``fit`` the capstone on ``train`` (``(x, y)``, uint8 images and labels) and score it
    on ``evaluation`` (``(x, y)``, named ``split``: keep the test set for the end), with and
    without flip TTA. ``options`` go to ``fit`` (``fast_path``, ``plan``, ``callbacks``,
    ``verbose``). Returns a ``Result``."""
    recipe = recipe or default_recipe()
    (x, y), (x_eval, y_eval) = train, evaluation
    fitted = fit(x, y, recipe, **options)
    plan = options.get("plan")
    with plan.scope() if plan is not None else contextlib.nullcontext():
        plain = predict(fitted.model, x_eval, tta=False)
        mirrored = predict(fitted.model, x_eval[:, :, ::-1], tta=False)
    return Result(
        recipe=asdict(recipe),
        split=split,
        accuracy=_accuracy((plain + mirrored) / 2 if recipe.tta else plain, y_eval),
        accuracy_no_tta=_accuracy(plain, y_eval),
        train_seconds=fitted.seconds,
        epochs_run=fitted.epochs_trained,
        images_per_second=fitted.images_per_second,
        fast_path=fitted.fast_path.as_dict(),
        distribution=plan.strategy if plan is not None else "single",
        history=fitted.history,
        model=fitted.model,
    )


def ablation(
    train_split,
    evaluation,
    recipe: Recipe | None = None,
    ideas=tuple(IDEAS),
    *,
    full: Result | None = None,
    split="validation",
    **options,
) -> list[dict]:
    """Train the full recipe, then the recipe without each idea in ``ideas``, each on
    ``train_split`` and scored on ``evaluation`` (named ``split``); return rows
    ``{"variant", "idea", "<split> accuracy", "gain", "train_seconds"}`` where ``gain`` is
    the full recipe's accuracy minus the variant's (what the idea was worth in this run).

    Pass ``full`` (a ``Result`` of ``train`` on the same splits) to reuse a run already
    done. Flip TTA needs no retraining: its row uses the full run's predictions without it.
    ``options`` go to ``train``.
    """
    recipe = recipe or default_recipe()
    unknown = set(ideas) - set(IDEAS)
    if unknown:
        raise CapstoneError(f"unknown ideas {sorted(unknown)}; choose from {sorted(IDEAS)}")
    if full is None:
        full = train(train_split, evaluation, recipe, split=split, **options)
    rows = [_row("full recipe", "", full.accuracy, full, full)]
    for idea in ideas:
        if idea == "tta":
            rows.append(_row("without tta", idea, full.accuracy_no_tta, full, full))
            continue
        variant = train(train_split, evaluation, recipe.without(idea), split=split, **options)
        rows.append(_row(f"without {idea}", idea, variant.accuracy, variant, full))
        _forget(variant)
    return rows


def _forget(result: Result) -> None:
    """Free a finished variant before the next one trains: its model, and what Keras and
    TensorFlow keep of it (graphs, kernel caches). Otherwise two variants are alive at once,
    which on Binder's 2 GB matters."""
    result.model = None
    keras.backend.clear_session()


def _row(variant: str, idea: str, accuracy: float, result: Result, full: Result) -> dict:
    return {
        "variant": variant,
        "idea": IDEAS.get(idea, "all ideas on"),
        f"{full.split} accuracy": round(accuracy, 4),
        "gain": round(full.accuracy - accuracy, 4),
        "train_seconds": round(result.train_seconds, 1),
    }
