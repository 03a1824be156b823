"""Why does the capstone stop short of airbench's 94%? Airbench's ideas that notebook 07's
recipe leaves out, each tried alone on the CPU recipe for a few epochs (the stronger decay
and a higher rate also on the GPU recipe; two ideas at 14 epochs), then airbench94's recipe
as a whole at the GPU widths with its pieces put back one at a time, and the GPU recipe
without its moving average of the weights; scored on the validation split (the test set is
not touched).

    python benchmarks/capstone_ideas.py [--epochs 5] [--variants ...] [--seed 0]

On the GPU (2026-12-04; peak rate 0.2, weight decay 5e-4) the capstone reached 88.8% on
validation after 18 epochs and 89.5% after 308 epochs with 100% training accuracy, where
airbench94, with the same widths, reaches 94% in 10: more time does not close the gap,
something per epoch is missing. Variants:

- ``recipe``: ``capstone.CPU_RECIPE`` with the weight decay it had when these variants were
  first measured, 5e-4 (it is 0.0125 since);
- ``lr x2.5``: a peak learning rate of 0.25 (airbench's step per example, its 11.5 per 1,024
  examples with momentum 0.85, is about 1.25x the recipe's once momentum is counted: 2.5x was
  computed against the GPU recipe's batch of 512, so this variant steps about twice as far
  as airbench);
- ``wd / 5``, ``wd x25``, ``wd x100``: weight decay scaled. Airbench's decay (0.0153 per
  1,024 examples, added to the gradient and so amplified by momentum) shrinks the weights by
  about 1.3% per step of 1,024 images at the peak rate; 5e-4, decoupled, at a peak rate of
  0.1 shrinks them by 0.005% per step of 128 images, 0.04% per 1,024 (33x less);
- ``airbench batch norm``: batch norm with ``momentum=0.6`` and no learned scale
  (``scale=False``), as airbench's (``BatchNorm2d(momentum=0.4)`` in PyTorch's convention,
  weight frozen at 1), and ``epsilon=1e-5`` (airbench's is 1e-12);
- ``lr x1.25 wd x20``, ``lr x2.5 wd x10``: peak rates of 0.125 (about airbench's step per
  example at batch 128, momentum counted) and 0.25, with the decay scaled so that the weights
  still shrink by 1.0% per 1,024 images at the peak, as with the CPU recipe's 0.0125 at 0.1;
- ``gpu recipe``, ``gpu wd x50``: the GPU recipe (``capstone.Recipe()``: 64/256/256 channels,
  batch 512) as first measured, peak rate 0.2 and decay 5e-4, and with 50 times that decay,
  0.025, which shrinks the weights as fast per image as the CPU recipe's 0.0125 (``Recipe()``
  had it from commit 5aee1af); ``gpu lr x2 wd x25``: the GPU recipe at a peak rate of 0.4, the
  CPU recipe's 0.1 at batch 128 scaled linearly to batch 512 (0.2 is half that; airbench's
  step per example is about 1.25x the CPU recipe's), with a decay of 0.0125 that keeps the
  1.0% (``Recipe()`` since);
- ``gpu airbench bn x64``: the GPU recipe as it is now (peak rate 0.4, decay 0.0125) with
  airbench's batch norm, whose shift (the only parameter it learns) learns 64 times faster
  than the other weights and is decayed like them (``ScaledBias``): airbench's
  ``bias_scaler``, which ``airbench batch norm`` leaves out; ``gpu airbench bn x64 identity``:
  the same with identity-initialised convolutions (``PartialIdentity``, below);
- ``gpu airbench port``: airbench94's training as a whole, at the GPU widths, to tell whether
  the 2.4-3.0 points by which airbench94 led the GPU recipe after 5 epochs (2026-12-05) lie in
  what these variants can change: batch 1,024 with Nesterov momentum 0.85; its step, 11.5 /
  (1,024 x (1 + 1 / (1 - 0.85))) on the summed loss, which is 1.5 on the mean loss; its
  schedule (``TriangularSchedule``: 0.2x the peak rising to the peak over 23% of the steps,
  then down to 0.07x); its decay, 0.0153 per 1,024 images, added to the gradient as PyTorch's
  ``weight_decay`` does (``CoupledDecaySGD``: 1.33e-3 x the weight, so that the step of 1.5
  shrinks the weights by 0.2% before momentum, as airbench's), on the kernels and the
  batch-norm shifts; ``Lookahead`` in place of the moving average; its batch norm (epsilon
  1e-12, shift at 64x); identity-initialised convolutions. What it leaves out: the logits
  scaled by 1/9 (the capstone's 1/8), a bias on the whitening layer trained for 3 epochs,
  whitening from 5,000 images (the capstone's 2,000), alternating flips (each image mirrored
  every other epoch rather than at random), and PyTorch's initialisation of the convolutions
  and the head. ``gpu airbench port, EMA``, ``, cosine``, ``, decoupled``, ``, batch 512`` and
  ``, capstone batch norm`` put one of its pieces at a time back as the capstone has it
  (``airbench_port``);
- ``gpu no ema``, ``gpu lookahead``: the GPU recipe as it is now without its moving average of
  the weights, and with ``Lookahead`` in its place;
- ``cpu recipe``: ``capstone.CPU_RECIPE`` as it is now (weight decay 0.0125); ``identity init``:
  the same with airbench's initialisation of the convolutions (``PartialIdentity``: the first
  filters start as the identity); ``lookahead``: the same with airbench's Lookahead
  (``Lookahead``) in place of Keras's moving average of the weights.

Every trained model is also scored with airbench's test-time augmentation ("level 2": the image
and its mirror, plus both shifted one pixel up-left and down-right at half weight), next to the
recipe's flip TTA. Writes ``benchmarks/results/capstone-ideas-<machine>-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from unittest import mock

os.environ.setdefault("COURSE_FAST", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench import machine_info, machine_slug  # noqa: E402

from helpers import capstone, data, training  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class ScaledBias(keras.layers.Layer):
    """Adds a per-channel shift stored divided by ``scale``: under SGD it learns at ``scale**2``
    times the optimizer's rate, and weight decay shrinks it like any weight (airbench's
    ``bias_scaler``, 64, on batch norm's shift, with decay ``wd / lr_biases``)."""

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="shift")

    def call(self, x):
        return x + self.scale * keras.ops.cast(self.shift, x.dtype)


def airbench_conv_group(
    x,
    width: int,
    name: str,
    bias_scaler: float | None = None,
    kernel_initializer="glorot_uniform",
    epsilon: float = 1e-5,
):
    """``capstone.conv_group`` with airbench's batch norm: momentum 0.6, no learned scale,
    ``epsilon`` (airbench's is 1e-12); with ``bias_scaler`` its shift learns that many times
    faster (``ScaledBias``), as airbench's; the convolutions start from ``kernel_initializer``
    (Keras's default unless given)."""
    layers = keras.layers
    conv = dict(padding="same", use_bias=False, kernel_initializer=kernel_initializer)

    def norm(x, suffix):
        x = layers.BatchNormalization(
            momentum=0.6,
            epsilon=epsilon,
            center=bias_scaler is None,
            scale=False,
            name=f"{name}_{suffix}",
        )(x)
        if bias_scaler is None:
            return x
        return ScaledBias(bias_scaler**0.5, name=f"{name}_{suffix}_shift")(x)

    x = layers.Conv2D(width, 3, **conv, name=f"{name}_conv1")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = layers.Activation("gelu", name=f"{name}_gelu1")(norm(x, "bn1"))
    x = layers.Conv2D(width, 3, **conv, name=f"{name}_conv2")(x)
    return layers.Activation("gelu", name=f"{name}_gelu2")(norm(x, "bn2"))


class PartialIdentity(keras.initializers.Initializer):
    """Airbench's identity start on Keras's default initialiser (Glorot uniform; airbench's
    other filters keep PyTorch's default): the first ``min(inputs, filters)`` filters start
    as the identity (``torch.nn.init.dirac_``), so that at first each such filter passes one
    input channel through unchanged."""

    def __call__(self, shape, dtype=None):
        kernel = keras.ops.convert_to_numpy(keras.initializers.GlorotUniform()(shape, dtype))
        size, _, inputs, filters = shape
        n = min(inputs, filters)
        kernel[..., :n] = 0.0
        kernel[size // 2, size // 2, np.arange(n), np.arange(n)] = 1.0
        return keras.ops.convert_to_tensor(kernel, dtype=dtype)


class TriangularSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Airbench94's schedule: from ``start`` x ``peak`` up to ``peak`` over the first
    ``warmup`` of ``total_steps`` (as a whole number of steps), then linearly down toward
    ``end`` x ``peak``, reached at step ``total_steps``, one past the last (as airbench's)."""

    def __init__(self, peak, total_steps, warmup=0.23, start=0.2, end=0.07):
        self.peak, self.total, self.start, self.end = peak, total_steps, start, end
        self.warmup_steps = max(1, int(total_steps * warmup))

    def __call__(self, step):
        step, ops = keras.ops.cast(step, "float32"), keras.ops
        rising = self.start + (1 - self.start) * step / self.warmup_steps
        falling = 1 + (self.end - 1) * (step - self.warmup_steps) / (self.total - self.warmup_steps)
        return self.peak * ops.where(step < self.warmup_steps, rising, falling)


class CoupledDecaySGD(keras.optimizers.SGD):
    """SGD whose weight decay is added to the gradient, as PyTorch's ``weight_decay`` (which
    airbench uses), so that momentum carries it: ``coupled_decay`` x the weight, on every
    convolution and dense kernel and on every ``ScaledBias`` shift."""

    def __init__(self, coupled_decay: float, **kwargs):
        super().__init__(**kwargs)
        self.coupled_decay = coupled_decay

    def build(self, variables):
        super().build(variables)
        self._decayed = {self._var_key(v) for v in variables if v.name in ("kernel", "shift")}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._decayed:
            gradient = gradient + self.coupled_decay * keras.ops.cast(variable, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)


class Lookahead(keras.callbacks.Callback):
    """Airbench94's Lookahead, in place of Keras's weight average: every 5 steps, slow copies
    of the weights and batch-norm statistics move toward the trained ones by ``1 - decay``
    and the model is reset to them, ``decay`` rising as ``0.95**5 * (step / total)**3``; at
    the end the model keeps the slow copies. Keras calls it once per call of the train function,
    which runs ``steps_per_execution`` steps: with more than 1 (the GPU fast path's 8) it would
    skip most of its updates, so it refuses such a model."""

    def __init__(self, total_steps: int, every: int = 5):
        super().__init__()
        self.total_steps, self.every = total_steps, every

    def _floats(self):
        return [v for v in self.model.weights if "float" in str(v.dtype)]

    def on_train_begin(self, logs=None):
        if self.model.steps_per_execution != 1:
            raise ValueError(
                "Lookahead updates the weights between steps, but this model runs "
                f"{self.model.steps_per_execution} steps per call of its train function: "
                "compile it with steps_per_execution=1"
            )
        self.slow = [keras.ops.convert_to_numpy(v) for v in self._floats()]

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % self.every:
            return
        decay = 0.95**5 * min(1.0, step / self.total_steps) ** 3
        for variable, slow in zip(self._floats(), self.slow, strict=True):
            slow += (1 - decay) * (keras.ops.convert_to_numpy(variable) - slow)
            variable.assign(slow)

    def on_train_end(self, logs=None):
        for variable, slow in zip(self._floats(), self.slow, strict=True):
            variable.assign(slow)


def triangular_instead(cosine):
    """The ``TriangularSchedule`` with the peak and length of the recipe's ``CosineDecay``
    (an ``adapt_schedule`` for ``capstone.fit``)."""
    return TriangularSchedule(cosine.warmup_target, cosine.warmup_steps + cosine.decay_steps)


def coupled_optimizer(coupled_decay: float, recipe, learning_rate):
    """``capstone.make_optimizer``'s stand-in: ``CoupledDecaySGD`` with the recipe's Nesterov
    momentum and, if it has one, its moving average of the weights."""
    return CoupledDecaySGD(
        coupled_decay,
        learning_rate=learning_rate,
        momentum=recipe.momentum,
        nesterov=True,
        use_ema=recipe.ema_momentum > 0,
        ema_momentum=recipe.ema_momentum or 0.99,
    )


def airbench_port(gpu_now) -> dict:
    """``gpu airbench port`` (airbench94's training as a whole, from ``gpu_now``, the GPU
    recipe as it is now), and the same with one of its pieces at a time put back as the
    capstone has it, at an equal step and shrink per image where the piece changes them."""
    recipe = replace(
        gpu_now,
        batch_size=1024,
        momentum=0.85,
        learning_rate=1.5,
        weight_decay=0.0,
        ema_momentum=0.0,
        warmup_fraction=0.23,
    )
    group = partial(
        airbench_conv_group, bias_scaler=64.0, kernel_initializer=PartialIdentity(), epsilon=1e-12
    )
    options = {"triangular": True, "coupled_decay": 1.33e-3, "lookahead": True}

    def without(*names):
        return {k: v for k, v in options.items() if k not in names}

    name = "gpu airbench port"
    return {
        name: (recipe, group, options),
        # Keras's moving average of the weights (0.99) instead of Lookahead.
        f"{name}, EMA": (replace(recipe, ema_momentum=0.99), group, without("lookahead")),
        # The capstone's schedule: from 0 up to the peak over 25% of the steps, cosine to 0.
        f"{name}, cosine": (replace(recipe, warmup_fraction=0.25), group, without("triangular")),
        # Decoupled decay (Keras's weight_decay) that shrinks the weights as fast per step
        # once momentum has amplified the coupled one (1.33e-3 / (1 - 0.85)).
        f"{name}, decoupled": (
            replace(recipe, weight_decay=8.87e-3),
            group,
            without("coupled_decay"),
        ),
        # The capstone's batch of 512 and momentum of 0.9, with the same step per image
        # (rate / (1 - momentum) / batch) and the same coupled decay per image.
        f"{name}, batch 512": (
            replace(recipe, batch_size=512, momentum=0.9, learning_rate=0.5),
            group,
            options,
        ),
        # The capstone's conv_group: its batch norm (momentum 0.9, learned scale and shift,
        # epsilon 1e-3, the shift not decayed) and Keras's initialisation.
        f"{name}, capstone batch norm": (recipe, capstone.conv_group, options),
    }


def variants(epochs: int) -> dict:
    """Each variant's recipe, the ``conv_group`` it builds its network with and, for some,
    options: ``triangular`` (``TriangularSchedule`` instead of the recipe's),
    ``coupled_decay`` (``CoupledDecaySGD`` instead of the recipe's optimizer), ``lookahead``
    (the ``Lookahead`` callback)."""
    # The CPU recipe as these variants were first measured (before its decay was raised).
    base = replace(capstone.CPU_RECIPE, epochs=epochs, weight_decay=5e-4)
    gpu = replace(capstone.Recipe(), epochs=epochs, learning_rate=0.2, weight_decay=5e-4)
    current = replace(capstone.CPU_RECIPE, epochs=epochs)
    gpu_now = replace(capstone.Recipe(), epochs=epochs)
    return {
        "recipe": (base, capstone.conv_group),
        "lr x2.5": (replace(base, learning_rate=base.learning_rate * 2.5), capstone.conv_group),
        "wd / 5": (replace(base, weight_decay=base.weight_decay / 5), capstone.conv_group),
        "wd x25": (replace(base, weight_decay=base.weight_decay * 25), capstone.conv_group),
        "wd x100": (replace(base, weight_decay=base.weight_decay * 100), capstone.conv_group),
        "airbench batch norm": (base, airbench_conv_group),
        # Higher peak rates with the decay that keeps the CPU recipe's shrink of 1.0% per
        # 1,024 images at the peak (decoupled decay shrinks by rate x decay per step).
        "lr x1.25 wd x20": (
            replace(base, learning_rate=0.125, weight_decay=0.01),
            capstone.conv_group,
        ),
        "lr x2.5 wd x10": (
            replace(base, learning_rate=0.25, weight_decay=0.005),
            capstone.conv_group,
        ),
        # The GPU recipe (widths 64/256/256, batch 512) as first measured (peak rate 0.2, decay
        # 5e-4), and with the decay that shrinks weights as fast per image as the CPU recipe's.
        "gpu recipe": (gpu, capstone.conv_group),
        "gpu wd x50": (replace(gpu, weight_decay=gpu.weight_decay * 50), capstone.conv_group),
        # The GPU recipe at the CPU recipe's rate per image (0.1 at batch 128, scaled linearly
        # to batch 512), its decay lowered to keep the 1.0% shrink per 1,024 images.
        "gpu lr x2 wd x25": (
            replace(gpu, learning_rate=0.4, weight_decay=0.0125),
            capstone.conv_group,
        ),
        # The GPU recipe as it is now (peak 0.4, decay 0.0125) with airbench's batch norm,
        # its shift learning 64 times faster and decayed.
        "gpu airbench bn x64": (
            gpu_now,
            partial(airbench_conv_group, bias_scaler=64.0),
        ),
        # ... and with identity-initialised convolutions too: two of airbench's ideas at once.
        "gpu airbench bn x64 identity": (
            gpu_now,
            partial(airbench_conv_group, bias_scaler=64.0, kernel_initializer=PartialIdentity()),
        ),
        **airbench_port(gpu_now),
        # The GPU recipe as it is now without its moving average of the weights, and with
        # Lookahead in its place.
        "gpu no ema": (replace(gpu_now, ema_momentum=0.0), capstone.conv_group),
        "gpu lookahead": (
            replace(gpu_now, ema_momentum=0.0),
            capstone.conv_group,
            {"lookahead": True},
        ),
        # The CPU recipe as it is now (decay 0.0125), alone and with two more of airbench's ideas.
        "cpu recipe": (current, capstone.conv_group),
        "identity init": (
            current,
            partial(capstone.conv_group, kernel_initializer=PartialIdentity()),
        ),
        "lookahead": (
            replace(current, ema_momentum=0.0),
            capstone.conv_group,
            {"lookahead": True},
        ),
    }


def shifted(images: np.ndarray, down: int, right: int) -> np.ndarray:
    """``images`` shifted by one pixel (``down``/``right`` in -1, 0, 1), borders reflected."""
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    return padded[:, 1 - down : 33 - down, 1 - right : 33 - right]


def tta_scores(model, x_val, y_val) -> dict:
    """Validation accuracy without TTA, with flip TTA and with airbench's level-2 TTA (here
    averaging probabilities; airbench averages logits)."""

    def views(images):
        return capstone.predict(model, images, tta=True)  # the image and its mirror, averaged

    plain = capstone.predict(model, x_val, tta=False)
    flip = views(x_val)
    level2 = 0.5 * flip + 0.25 * (views(shifted(x_val, -1, -1)) + views(shifted(x_val, 1, 1)))

    def score(p):
        return round(float(np.mean(np.argmax(p, -1) == y_val.reshape(-1))), 4)

    return {"no TTA": score(plain), "flip TTA": score(flip), "level-2 TTA": score(level2)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=None, choices=list(variants(1)))
    parser.add_argument("--seed", type=int, default=0, help="the recipes' seed (default 0)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer, got {args.epochs}")
    chosen = variants(args.epochs)
    names = args.variants or list(chosen)
    cifar = data.load_cifar10()
    x, y, x_val, y_val = data.train_val_split(cifar.x_train, cifar.y_train)
    info = machine_info()
    out = RESULTS / f"capstone-ideas-{machine_slug(info)}-{dt.date.today()}.json"
    # Runs of the same day add up: a variant measured again with the same seed and epochs
    # replaces its row.
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for name in names:
        recipe, group, *extra = chosen[name]
        options = extra[0] if extra else {}
        recipe = replace(recipe, seed=args.seed)
        start = time.perf_counter()
        steps = math.ceil(len(x) / recipe.batch_size) * recipe.epochs
        callbacks = [Lookahead(steps)] if options.get("lookahead") else []
        schedule = triangular_instead if options.get("triangular") else None
        # build_capstone and compile_capstone look conv_group and make_optimizer up at call
        # time; patched for this variant only.
        with contextlib.ExitStack() as patches:
            patches.enter_context(mock.patch.object(capstone, "conv_group", group))
            if "coupled_decay" in options:
                optimizer = partial(coupled_optimizer, options["coupled_decay"])
                patches.enter_context(mock.patch.object(capstone, "make_optimizer", optimizer))
            fitted = capstone.fit(x, y, recipe, callbacks=callbacks, adapt_schedule=schedule)
        row = {
            "variant": name,
            "seed": args.seed,
            "epochs": recipe.epochs,
            "widths": list(recipe.widths),
            "batch_size": recipe.batch_size,
            "learning_rate": recipe.learning_rate,
            "weight_decay": recipe.weight_decay,
            **({"options": options} if options else {}),
            "train_seconds": round(fitted.seconds, 1),
            "final training accuracy": round(fitted.history["accuracy"][-1], 4),
            **tta_scores(fitted.model, x_val, y_val),
            "wall_seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps(row), flush=True)
        key = (name, args.seed, recipe.epochs)
        rows = [r for r in rows if (r["variant"], r.get("seed", 0), r["epochs"]) != key]
        rows.append(row)
        keras.backend.clear_session()
        training.forget_traced_steps()
        out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
