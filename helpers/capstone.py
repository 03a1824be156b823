"""Notebook 07's capstone recipe, packaged: a small, fast CIFAR-10 network and how to train,
score and ablate it (used by notebook 07, its exercises and ``benchmarks/bench.py``).

The notebook writes each piece in its own cells first and explains where each idea comes
from (``IDEAS`` names the sources: David Page's "How to train your ResNet", tysam-code's
hlb-CIFAR10, Keller Jordan's airbench, arXiv:2404.00498). The code is our own Keras code.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, replace

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
#: The recipe field and value that switch each idea off.
_OFF = {
    "whitening": ("whitening", False),
    "label_smoothing": ("label_smoothing", 0.0),
    "ema": ("ema_momentum", 0.0),
    "tta": ("tta", False),
    "schedule": ("schedule", False),
}

#: Per-channel mean and standard deviation of the CIFAR-10 training images (0-255 scale).
CIFAR_MEAN = (125.31, 122.95, 113.87)
CIFAR_STD = (62.99, 62.09, 66.70)
#: Pixels of the random shift used as augmentation.
SHIFT_PIXELS = 2
#: Side of the whitening patches, and the whitening layer's filters: the 2·2·3 = 12
#: eigenvectors of the patch covariance, each with its negative.
PATCH = 2
WHITEN_FILTERS = 2 * PATCH * PATCH * data.IMAGE_SHAPE[-1]


class CapstoneError(ValueError):
    """A recipe option or input is out of range; the message says what is accepted."""


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a capstone run. ``learning_rate`` is the peak rate quoted for
    ``batch_size``; the fast path scales it when the batch grows (several devices)."""

    widths: tuple[int, int, int] = (64, 256, 256)
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 0.0125  # see CPU_RECIPE: 1.0% shrink per 1,024 images at the peak
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
        """The same recipe with one of ``IDEAS`` switched off (without the schedule the rate
        is constant at half the peak, about the schedule's average)."""
        if idea not in _OFF:
            raise CapstoneError(f"unknown idea {idea!r}; choose one of {sorted(IDEAS)}")
        option, value = _OFF[idea]
        return replace(self, **{option: value})


#: The full recipe scaled for a CPU: narrower, smaller batches (same ideas). Both recipes take
#: the same step per image at the peak (0.1 at batch 128, 0.4 at batch 512: the linear scaling
#: rule) with the same decay, 0.0125, which shrinks the weights by 1.0% per 1,024 images at
#: the peak (0.0125 x 0.1 x 1024 / 128), 25 times the 5e-4 both had before. Chosen on the
#: validation split, 5 epochs, on a 2-core AMD EPYC (``benchmarks/capstone_ideas.py``): the
#: decay was the best of four for the CPU recipe with flip TTA (+1.3 points over 5e-4,
#: 2026-12-04); the GPU recipe's peak of 0.4 scored 0.7 and 0.9 points above its earlier 0.2
#: with flip TTA, at the same shrink (two seeds, 2026-12-04 and 05).
CPU_RECIPE = Recipe(widths=(32, 64, 128), batch_size=128, learning_rate=0.1, weight_decay=0.0125)


def default_recipe(kind: str | None = None) -> Recipe:
    """The recipe for the current mode and device (``kind``, detected when None): ``Recipe()``
    on a GPU or TPU, ``CPU_RECIPE`` on a CPU, and with ``COURSE_FAST=1`` a narrow one for a
    few epochs of small batches."""
    if config.is_fast():
        return Recipe(
            widths=(16, 32, 64),
            epochs=3,
            batch_size=64,
            learning_rate=0.05,
            weight_decay=5e-4,
            ema_momentum=0.9,
        )
    if kind is None:
        kind, _ = config.detect_accelerator()
    return CPU_RECIPE if kind.upper() == "CPU" else Recipe()


# --- the model ---------------------------------------------------------------------------------


def whitening_kernel(images: np.ndarray):
    """A ``(2, 2, 3, 24)`` convolution kernel that whitens the 2×2 patches of ``images``.

    The eigenvectors ``V`` of the covariance of the (normalised) patches, each divided by
    ``sqrt(λ + 5e-4)``, and each with its negative, so the GELU after it keeps both signs.
    ``images``: uint8 ``(N, 32, 32, 3)``; the first 2,000 are used, 250 at a time, so the
    patches never take more than ~50 MB at once (all at once: 400 MB of Binder's 2 GB).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) < 1:
        raise CapstoneError(f"images must be (N, H, W, 3) RGB images, got shape {images.shape}")
    images, size = images[:2000], PATCH * PATCH * 3
    mean, std = np.asarray(CIFAR_MEAN, np.float32), np.asarray(CIFAR_STD, np.float32)
    covariance, count = np.zeros((size, size)), 0
    for start in range(0, len(images), 250):
        x = (images[start : start + 250].astype(np.float32) - mean) / std
        windows = np.lib.stride_tricks.sliding_window_view(x, (PATCH, PATCH), axis=(1, 2))
        # (N, H', W', C, ph, pw) -> rows of (ph, pw, C), the layout of a Keras kernel
        rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, size).astype(np.float64)
        covariance += rows.T @ rows
        count += len(rows)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance / count)
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + 5e-4)
    kernel = filters.reshape(PATCH, PATCH, 3, -1)
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


@keras.saving.register_keras_serializable(package="course_capstone")
class RandomShift(keras.layers.Layer):
    """Shifts each training image by up to ``pixels`` in each direction, independently per
    image, filling the border by reflection; returns images unchanged at inference.

    ``keras.layers.RandomTranslation`` does the same but marks itself ``supports_jit=False``,
    and one such layer makes Keras turn XLA off for the whole model (on JAX the training
    step then runs op by op). This layer is static slices and ``where``: it compiles.
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
        # Each image picks one of the 2p + 1 windows per axis with `where` (not
        # `ops.take_along_axis`: on TensorFlow it makes int64 indices, and oneDNN then warns
        # on CPUs without AVX-512 int64 support).
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


def whitening_layer(x_train=None):
    """The first convolution: ``WHITEN_FILTERS`` 2×2 filters without bias, set from
    ``whitening_kernel(x_train)`` and frozen; with ``x_train=None`` an ordinary trainable
    convolution of the same shape (the recipe without whitening)."""
    whiten = keras.layers.Conv2D(
        WHITEN_FILTERS, PATCH, use_bias=False, trainable=x_train is None, name="whiten"
    )
    if x_train is not None:
        whiten.build((None, *data.IMAGE_SHAPE))
        whiten.set_weights([whitening_kernel(x_train)])
    return whiten


def conv_group(x, width: int, name: str, kernel_initializer="glorot_uniform"):
    """conv → max-pool → batch norm → GELU → conv → batch norm → GELU: airbench's
    simplification of the ResNet-9 of Page's series, without skip connections. The
    convolutions start from ``kernel_initializer`` (Keras's default unless given)."""
    layers = keras.layers
    conv = dict(padding="same", use_bias=False, kernel_initializer=kernel_initializer)
    x = layers.Conv2D(width, 3, **conv, name=f"{name}_conv1")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn1")(x)
    x = layers.Activation("gelu", name=f"{name}_gelu1")(x)
    x = layers.Conv2D(width, 3, **conv, name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn2")(x)
    return layers.Activation("gelu", name=f"{name}_gelu2")(x)


def build_capstone(recipe: Recipe | None = None, x_train: np.ndarray | None = None):
    """The network notebook 07 writes in its cells, for uint8 ``(32, 32, 3)`` images, with
    named layers; softmax probabilities out, output layers in ``float32`` for mixed precision.
    With ``recipe.whitening`` the first convolution is set from ``x_train`` and frozen."""
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
    return keras.Model(inputs, outputs, name="capstone")


# --- training ----------------------------------------------------------------------------------


def lr_schedule(peak: float, total_steps: int, warmup_fraction: float = 0.25):
    """Notebook 07's ``CosineDecay``: from 0 up to ``peak`` over the first ``warmup_fraction``
    of ``total_steps``, then along a cosine to 0. A schedule, not a callback: evaluated inside
    every step, it stays exact with ``steps_per_execution > 1``."""
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
    """Notebook 07's optimizer: SGD with Nesterov momentum, decoupled weight decay (not on
    batch norm's ``gamma``/``beta``) and, when ``recipe.ema_momentum > 0``, a moving average
    of the weights that Keras writes into the model at the end of ``fit``.
    ``learning_rate``: a number or a schedule (``lr_schedule``)."""
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


def _accuracy_metric():
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def compile_capstone(
    model, recipe: Recipe, steps_per_epoch: int, fast_path=None, adapt_schedule=None
):
    """Compile with ``make_optimizer``, the schedule (``lr_schedule`` over ``recipe.epochs``,
    or a constant half of the peak without ``recipe.schedule``) and the smoothed loss;
    ``fast_path`` (``accelerate.FastPath``) adds XLA, ``steps_per_execution`` and its
    (scaled) peak learning rate. ``adapt_schedule(schedule)``, if given, returns the
    schedule to use instead (the benchmark's makes it follow the wall clock)."""
    peak = fast_path.learning_rate if fast_path is not None else recipe.learning_rate
    total = max(1, steps_per_epoch * recipe.epochs)
    rate = lr_schedule(peak, total, recipe.warmup_fraction) if recipe.schedule else peak / 2
    if adapt_schedule is not None and recipe.schedule:
        rate = adapt_schedule(rate)
    model.compile(
        optimizer=make_optimizer(recipe, rate),
        loss=training.smoothed_loss(recipe.label_smoothing),
        metrics=[_accuracy_metric()],
        **(fast_path.compile_kwargs() if fast_path is not None else {}),
    )
    return model


def flip_tta_model(model):
    """A model that averages ``model``'s predictions for each image and its mirror image
    (flip test-time augmentation), compiled for ``evaluate``."""
    inputs = keras.Input(shape=model.input.shape[1:], dtype=model.input.dtype, name="image")
    mirrored = keras.ops.flip(inputs, axis=2)  # (batch, height, width, channels)
    outputs = keras.layers.Average(dtype="float32", name="flip_tta")(
        [model(inputs), model(mirrored)]
    )
    tta = keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")
    tta.compile(loss="sparse_categorical_crossentropy", metrics=[_accuracy_metric()])
    return tta


def predict(model, images: np.ndarray, *, tta: bool = True):
    """Class probabilities for uint8 ``images``; with ``tta`` averaged with the mirror
    images' (what ``flip_tta_model`` computes). Uses ``evaluation.predict_proba``, which
    builds no new TensorFlow graph per model, so an ablation prints no retracing warnings."""
    # Batches of 250: on a CPU one of 1,000 held 600 MB of activations, which the kernel kept.
    plain = evaluation.predict_proba(model, images, 250)
    if not tta:
        return plain
    return (plain + evaluation.predict_proba(model, images[:, :, ::-1], 250)) / 2


def _scope(plan):
    return plan.scope() if plan is not None else contextlib.nullcontext()


@dataclass
class Fitted:
    """A trained capstone model and how its training went (see ``fit``)."""

    model: object
    seconds: float
    epochs_trained: float
    images_per_second: float
    fast_path: object
    history: dict


def fit(
    x,
    y,
    recipe: Recipe | None = None,
    *,
    fast_path=None,
    plan=None,
    callbacks=(),
    verbose=0,
    adapt_schedule=None,
) -> Fitted:
    """Build the capstone for uint8 images ``x`` and labels ``y`` and train it.

    ``fast_path`` (``accelerate.fast_path_settings(...)``) defaults to the device's, with the
    recipe's batch and learning rate, both multiplied by ``plan.replicas`` (the linear
    scaling rule); ``plan`` (``helpers.distribute``) trains on several devices;
    ``adapt_schedule`` goes to ``compile_capstone``. The time covers building the whitening
    layer, compiling and training.
    """
    recipe = recipe or default_recipe()
    if fast_path is None:
        replicas = plan.replicas if plan is not None else 1
        fast_path = accelerate.fast_path_settings(
            count=replicas if replicas > 1 else None,
            batch_size=recipe.batch_size,
            learning_rate=recipe.learning_rate,
            reference_batch_size=recipe.batch_size,
        )
    keras.utils.set_random_seed(recipe.seed)
    steps_per_epoch = math.ceil(len(x) / fast_path.batch_size)
    with accelerate.use_precision(fast_path.precision), _scope(plan):
        start = time.perf_counter()
        model = trainer = build_capstone(recipe, x)
        inputs = x
        if fast_path.resident_data:
            trainer = accelerate.resident_data_model(model, x)
            inputs = accelerate.resident_indices(x)
        compile_capstone(trainer, recipe, steps_per_epoch, fast_path, adapt_schedule)
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
            model.compile(loss=trainer.loss, metrics=[_accuracy_metric()])
    steps = int(keras.ops.convert_to_numpy(trainer.optimizer.iterations))
    images = min(steps * fast_path.batch_size, len(x) * recipe.epochs)
    history = {k: [float(v) for v in values] for k, values in history.history.items()}
    epochs = round(steps / steps_per_epoch, 2)
    return Fitted(model, seconds, epochs, images / seconds, fast_path, history)


@dataclass
class Result:
    """What one capstone run measured: ``accuracy`` (with flip TTA when the recipe has it)
    and ``accuracy_no_tta`` on the ``split`` it was scored on."""

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
        return {k: v for k, v in vars(self).items() if k not in ("history", "model")}


def train(train, evaluation, recipe: Recipe | None = None, *, split="validation", **options):
    """``fit`` the capstone on ``train`` (``(x, y)``: uint8 images, labels) and score it on
    ``evaluation`` (``(x, y)``, named ``split``: keep the test set for the end), with and
    without flip TTA. ``options`` go to ``fit``. Returns a ``Result``."""
    recipe = recipe or default_recipe()
    (x, y), (x_eval, y_eval) = train, evaluation
    fitted = fit(x, y, recipe, **options)
    plan = options.get("plan")
    with _scope(plan):
        plain = predict(fitted.model, x_eval, tta=False)
        mirrored = predict(fitted.model, x_eval[:, :, ::-1], tta=False)
    scored = (plain + mirrored) / 2 if recipe.tta else plain
    return Result(
        recipe=asdict(recipe),
        split=split,
        accuracy=_accuracy(y_eval, scored),
        accuracy_no_tta=_accuracy(y_eval, plain),
        train_seconds=fitted.seconds,
        epochs_run=fitted.epochs_trained,
        images_per_second=fitted.images_per_second,
        fast_path=fitted.fast_path.as_dict(),
        distribution=plan.strategy if plan is not None else "single",
        history=fitted.history,
        model=fitted.model,
    )


def _accuracy(labels, probabilities) -> float:
    return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(labels).reshape(-1)))


def ablation(
    train_split, evaluation, recipe: Recipe | None = None, ideas=tuple(IDEAS), *, full=None
) -> list[dict]:
    """Train the full recipe, then the recipe without each idea in ``ideas``, each on
    ``train_split`` and scored on ``evaluation``; one row per variant: ``{"variant", "idea",
    "<split> accuracy", "gain", "train_seconds"}``, ``gain`` being what the idea was worth in
    this run. ``full``: a ``Result`` of ``train`` on the same splits, to reuse. Flip TTA
    needs no retraining: its row scores the full run without it."""
    recipe = recipe or default_recipe()
    unknown = set(ideas) - set(IDEAS)
    if unknown:
        raise CapstoneError(f"unknown ideas {sorted(unknown)}; choose from {sorted(IDEAS)}")
    full = full or train(train_split, evaluation, recipe)

    def row(idea: str, accuracy: float, seconds: float) -> dict:
        return {
            "variant": f"without {idea}" if idea else "full recipe",
            "idea": IDEAS.get(idea, "all ideas on"),
            f"{full.split} accuracy": round(accuracy, 4),
            "gain": round(full.accuracy - accuracy, 4),
            "train_seconds": round(seconds, 1),
        }

    rows = [row("", full.accuracy, full.train_seconds)]
    for idea in ideas:
        if idea == "tta":
            rows.append(row(idea, full.accuracy_no_tta, full.train_seconds))
            continue
        variant = train(train_split, evaluation, recipe.without(idea))
        rows.append(row(idea, variant.accuracy, variant.train_seconds))
        # Free the variant (its model, and the graphs and kernel caches Keras keeps) before
        # the next one trains: two alive at once matter on Binder's 2 GB.
        variant.model = None
        keras.backend.clear_session()
        training.forget_traced_steps()
    return rows
