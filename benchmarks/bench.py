"""Train the course's recipes on this machine, one after the other, with the same
wall-clock budget, and record validation accuracy, test accuracy and speed.

    python benchmarks/bench.py --recipes baseline recommended --budget-seconds 600

The training set is split first (stratified, 10% held out, as in the notebooks): recipes
train on the rest, and their **validation** accuracy is what to choose a recipe or a
setting by; the **test** accuracy is measured once per run, for the record. A recipe with a
schedule probes its speed (``probe``, ``plan_epochs``); where the backend lets the compiled
step read a variable (``CLOCK_BACKENDS``) its warm-up and decay then follow the wall clock
(``ClockSchedule``, ``WallClock``) and end on time, else the schedule is set over the
epochs planned to fit the budget. A ``TimeBudget`` callback (with the clock, the
``WallClock`` at 97% of the budget) stops every recipe on time.
The table printed at the end compares every recipe with the first one; the rows are
written (merged by recipe name) to ``benchmarks/results/<machine>-<date>-<budget>s.json``.
Add a recipe with ``register(...)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402 - after the log level is set
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

VAL_FRACTION = 0.1
PROBE_IMAGES = 5000
#: Share of the budget a planned schedule aims at (the first epoch also compiles the model).
PLAN_MARGIN = 0.9
#: Share of the budget the wall clock gives the schedule (``WallClock``); the rest is for
#: building the model before ``fit`` starts and for writing the averaged weights after it.
CLOCK_SHARE = 0.97
#: With the clock driving the schedule, ``fit`` may run this many times the planned epochs:
#: the machine can speed up as well as slow down; the clock stops training on time.
CLOCK_HEADROOM = 2
#: Backends on which a schedule reads the clock's progress live inside the training step
#: (TensorFlow's graph reads the variable; PyTorch runs eagerly). JAX's compiled step would
#: see it as a constant, so there the schedule follows the planned steps.
CLOCK_BACKENDS = ("tensorflow", "torch")


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the first batch that ends past ``seconds`` of wall time
    (counted from the start of ``fit``). ``.elapsed`` holds the training time."""

    def __init__(self, seconds: float):
        super().__init__()
        if not seconds > 0:
            raise ValueError(f"the time budget must be positive seconds, got {seconds!r}")
        self.seconds = float(seconds)
        self.start = None
        self.elapsed = 0.0
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.elapsed = time.perf_counter() - self.start
        if self.elapsed >= self.seconds:
            self.stopped = True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.elapsed = time.perf_counter() - self.start


class StepClock(keras.callbacks.Callback):
    """Records, for each epoch, its wall time and the time at the end of each training step
    (``(step index, seconds since the epoch began)``; with ``steps_per_execution`` above 1,
    one entry per execution, indexed by its last step, which Keras does not cap at the
    epoch's end: ``steps_per_epoch`` is the true count)."""

    def __init__(self):
        super().__init__()
        self.epochs: list[float] = []
        self.steps: list[list[tuple[int, float]]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self.steps.append([])
        self.steps_per_epoch = self.params.get("steps")

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1].append((batch, time.perf_counter() - self._start))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self._start)


@dataclass(frozen=True)
class Speed:
    """A probe's measure of a training run: ``per_image`` seconds in steady state, a fixed
    ``per_epoch`` cost (the stall before an epoch's first step and the work after its last),
    and the one-off ``overhead`` of the first epoch (compiling the model)."""

    per_image: float
    per_epoch: float = 0.0
    overhead: float = 0.0

    def epoch_seconds(self, images: int) -> float:
        """Predicted wall time of one epoch on ``images`` images."""
        return self.per_epoch + self.per_image * images


def plan_epochs(speed: Speed, images: int, budget_seconds: float) -> int:
    """How many epochs of ``images`` fit in ``PLAN_MARGIN`` of the budget once the one-off
    overhead is paid; at least 1."""
    left = PLAN_MARGIN * budget_seconds - speed.overhead
    return max(1, math.floor(left / speed.epoch_seconds(images)))


def steady_speed(
    first_epoch: float, second_epoch: float, steps, images: int, step_count: int | None = None
) -> Speed:
    """``Speed`` from a two-epoch probe on ``images`` images: ``steps`` are the second
    epoch's ``(step index, seconds)`` marks, ``step_count`` its number of steps (by default
    the last mark's index + 1; marks past it are those of a short last execution).

    The median step is the steady state; what the epoch took beyond its steps at that pace
    is the per-epoch cost, which a 45,000-image epoch pays once like a 5,000-image one (in
    a diagnostic run on the course's 2-core VM, 2026-12-03, the first step of each epoch
    stalled for 2-8 s); what the first epoch took more is the overhead."""
    overhead = max(0.0, first_epoch - second_epoch)
    step_count = step_count or steps[-1][0] + 1
    steps = [(min(index, step_count - 1), seconds) for index, seconds in steps]
    paces = [(t - s) / (b - a) for (a, s), (b, t) in itertools.pairwise(steps)]
    if not paces:  # one execution per epoch: no steady state to tell apart
        return Speed(second_epoch / images, overhead=overhead)
    step_seconds = float(np.median(paces))
    per_epoch = max(0.0, second_epoch - step_seconds * step_count)
    return Speed(step_seconds * step_count / images, per_epoch, overhead)


def probe(train_two_epochs: Callable[[list], object], images: int) -> Speed:
    """Run ``train_two_epochs(callbacks)`` on ``images`` images with a ``StepClock`` and
    return the ``Speed`` it measured (``steady_speed``)."""
    clock = StepClock()
    train_two_epochs([clock])
    first, second = clock.epochs[:2]
    return steady_speed(first, second, clock.steps[1], images, clock.steps_per_epoch)


class ClockSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A ``CosineDecay`` (with its warm-up) driven by the share of the time budget spent
    instead of the step count: at ``progress`` p it gives the rate that ``schedule`` gives
    at step p x its total steps. ``WallClock`` moves ``progress`` before every batch, so the
    warm-up and the decay end on time whatever the machine's speed does meanwhile."""

    def __init__(self, schedule: keras.optimizers.schedules.CosineDecay):
        self.schedule = schedule
        warmup = schedule.warmup_steps if schedule.warmup_target is not None else 0
        self.total_steps = warmup + schedule.decay_steps
        self.progress = keras.Variable(0.0, dtype="float32", trainable=False, name="progress")

    def __call__(self, step):
        return self.schedule(self.progress * self.total_steps)

    def get_config(self):
        """The wrapped schedule's settings, so that a model compiled with it can be saved
        (loading it back needs ``custom_objects``; the bench saves nothing)."""
        return self.schedule.get_config()


class WallClock(TimeBudget):
    """A ``TimeBudget`` that also drives the ``ClockSchedule``s it made (``drive``): before
    each batch their progress is the share of ``seconds`` spent since ``fit`` began."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.schedules: list[ClockSchedule] = []

    def drive(self, schedule) -> ClockSchedule:
        """Wrap ``schedule`` (the ``adapt_schedule`` of ``train_recipe`` and ``capstone.fit``)."""
        self.schedules.append(ClockSchedule(schedule))
        return self.schedules[-1]

    def on_train_batch_begin(self, batch, logs=None):
        progress = min(1.0, (time.perf_counter() - self.start) / self.seconds)
        for schedule in self.schedules:
            schedule.progress.assign(progress)


def schedule_plan(speed: Speed, images: int, budget_seconds: float):
    """``(epochs for fit, callback that ends training, adapt_schedule, settings)``: where a
    schedule can follow the clock (``CLOCK_BACKENDS``), ``CLOCK_HEADROOM`` times the planned
    epochs and a ``WallClock`` over ``CLOCK_SHARE`` of the budget; elsewhere the planned
    epochs and a ``TimeBudget`` as a safety net."""
    planned = plan_epochs(speed, images, budget_seconds)
    settings = {
        "planned_epochs": planned,
        "predicted_epoch_seconds": round(speed.epoch_seconds(images), 1),
    }
    if keras.backend.backend() not in CLOCK_BACKENDS:
        return planned, TimeBudget(budget_seconds), None, {**settings, "schedule": "steps"}
    clock = WallClock(CLOCK_SHARE * budget_seconds)
    settings["schedule"] = f"wall clock, {clock.seconds:.0f} s"
    return CLOCK_HEADROOM * planned, clock, clock.drive, settings


def build_tutorial(name: str = "tutorial"):
    """The TensorFlow "Convolutional Neural Network" tutorial model: Conv2D 32 → MaxPool →
    Conv2D 64 → MaxPool → Conv2D 64 → Flatten → Dense 64 → Dense 10 (122,570 parameters).

    The tutorial ends with logits; here the last layer has a softmax like the course's
    models, so all of them train with the same loss. Input: uint8 images."""
    layers = keras.layers
    inputs = keras.Input(shape=(32, 32, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    outputs = layers.Dense(10, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


@dataclass
class Trained:
    """What a recipe's ``train`` returns: the model to score, the epochs it trained, the
    seconds spent probing the speed before training, and the settings it chose."""

    model: object
    epochs: float
    probe_seconds: float = 0.0
    settings: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A named way to train: ``train(x, y, budget_seconds, callbacks)`` returns a
    ``Trained``; its model is then scored on the validation and the test split."""

    name: str
    description: str
    train: Callable


RECIPES: dict[str, Recipe] = {}


def register(name: str, description: str):
    """Decorator that adds a recipe to ``RECIPES`` (e.g. ``@register("capstone", "...")``)."""

    def add(train):
        RECIPES[name] = Recipe(name, description, train)
        return train

    return add


def _classic(build, x, y, budget_seconds, callbacks, epochs=10):
    """Adam 1e-3 at a constant rate, batch 64, no augmentation: how the tutorials train."""
    from helpers import training

    model = training.compile_model(build(), optimizer="adam", learning_rate=1e-3)
    result = training.fit(
        model, x, y, epochs=epochs, batch_size=64,
        callbacks=[*callbacks, TimeBudget(budget_seconds)], verbose=2,
    )  # fmt: skip
    return Trained(result.model, result.epochs_trained)


@register("tutorial", "TensorFlow CNN tutorial model (Conv 32-64-64, Dense 64), Adam, batch 64")
def _tutorial(x, y, budget_seconds, callbacks):
    return _classic(build_tutorial, x, y, budget_seconds, callbacks)


@register("baseline", "classic CNN (Conv 32-64-128, Dense 128), Adam 1e-3, batch 64, 10 epochs")
def _baseline(x, y, budget_seconds, callbacks):
    from helpers import models

    return _classic(models.build_baseline, x, y, budget_seconds, callbacks)


@register(
    "recommended",
    "course recipe (notebook 03): 6-conv BN CNN pooling early + flips in the model, AdamW, "
    "warm-up + cosine decay over the budget (by the wall clock where the backend allows), "
    "label smoothing 0.1",
)
def _recommended(x, y, budget_seconds, callbacks):
    from helpers import training

    n = min(len(x), PROBE_IMAGES)
    start = time.perf_counter()
    speed = probe(
        lambda cbs: training.train_recipe(x[:n], y[:n], epochs=2, callbacks=cbs, verbose=0), n
    )
    probe_seconds = time.perf_counter() - start
    epochs, stop, adapt, settings = schedule_plan(speed, len(x), budget_seconds)
    print(f"probe of {probe_seconds:.0f} s ({speed}): {settings}", flush=True)
    result = training.train_recipe(
        x, y, epochs=epochs, callbacks=[*callbacks, stop], verbose=2, adapt_schedule=adapt
    )
    return Trained(result.model, result.epochs_trained, probe_seconds, settings)


#: The capstone trains the widest recipe that fits this many epochs in the budget: about
#: what airbench's recipe needs for 94% on a GPU. At 600 s on a 2-core CPU the GPU widths
#: fit only a few epochs, so the CPU widths train instead.
MIN_CAPSTONE_EPOCHS = 10


#: CPU flags of matrix units that multiply bfloat16 (Intel AMX). On the 2-core Xeon with AMX
#: the GPU widths trained 1.7x faster in ``mixed_bfloat16`` than in float32
#: (``precision_speed.py``, 2026-12-03; benchmarks/README.md).
BFLOAT16_CPU_FLAGS = ("amx_bf16",)


def read_cpuinfo() -> str:
    """The text of ``/proc/cpuinfo``; empty where that file cannot be read."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The processor's feature flags, from ``/proc/cpuinfo`` (or the text ``cpuinfo``);
    empty where that file does not exist."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return flags


def cpu_multiplies_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the processor has bfloat16 matrix units (``BFLOAT16_CPU_FLAGS`` among the
    flags of ``/proc/cpuinfo``, or of ``cpuinfo``); False where that file does not exist."""
    return any(flag in cpu_flags(cpuinfo) for flag in BFLOAT16_CPU_FLAGS)


#: The widest vector or matrix unit a CPU's flags show, widest first. Two virtual machines
#: both named "AMD EPYC", one with AVX-512 and one with AVX2 only, differed 1.8-2.2x in the
#: capstone's probes (benchmarks/README.md, "The same name, half the speed").
VECTOR_UNITS = (("amx_tile", "amx"), ("avx512f", "avx512"), ("avx2", "avx2"))


def vector_unit(flags: set[str]) -> str | None:
    """``"amx"``, ``"avx512"`` or ``"avx2"``: the widest of ``VECTOR_UNITS`` in ``flags``."""
    return next((unit for flag, unit in VECTOR_UNITS if flag in flags), None)


@dataclass(frozen=True)
class Candidate:
    """A capstone recipe to try, and the dtype policy to train it in (None: the device's,
    ``accelerate.fast_path_settings``)."""

    recipe: object
    precision: str | None = None

    def fast_path(self):
        """``capstone.fit``'s fast path: the device's, with ``precision`` if set."""
        from helpers import accelerate

        recipe = self.recipe
        settings = accelerate.fast_path_settings(
            batch_size=recipe.batch_size,
            learning_rate=recipe.learning_rate,
            reference_batch_size=recipe.batch_size,
        )
        if self.precision is None:
            return settings
        return dataclasses.replace(settings, precision=self.precision)


def capstone_candidates(bfloat16_cpu: bool | None = None, without: tuple[str, ...] = ()):
    """The capstone candidates to try, widest and fastest first: on a CPU with bfloat16
    matrix units (``cpu_multiplies_bfloat16``, or ``bfloat16_cpu``) the GPU recipe in
    ``mixed_bfloat16``, then the GPU recipe at the device's precision, then the recipe for
    this device when it is narrower (``capstone.default_recipe``; alone with
    ``COURSE_FAST=1``). Each recipe has the ideas in ``without`` switched off
    (``capstone.Recipe.without``)."""
    from helpers import capstone, config

    default, wide = capstone.default_recipe(), capstone.Recipe()
    for idea in without:
        default, wide = default.without(idea), wide.without(idea)
    if config.is_fast() or default == wide:
        return [Candidate(default)]
    if bfloat16_cpu is None:
        bfloat16_cpu = cpu_multiplies_bfloat16()
    candidates = [Candidate(wide)]
    if bfloat16_cpu and keras.backend.backend() == "tensorflow":
        candidates.insert(0, Candidate(wide, "mixed_bfloat16"))
    return [*candidates, Candidate(default)]


def widest_that_fits(candidates, speed, images: int, budget_seconds: float):
    """``(candidate, its Speed)``: the first of ``candidates`` (widest first) whose planned
    epochs reach ``MIN_CAPSTONE_EPOCHS``, else the last one. ``speed(candidate)`` returns
    ``probe``'s ``Speed``; candidates after the chosen one are not probed."""
    for candidate in candidates:
        measured = speed(candidate)
        epochs = plan_epochs(measured, images, budget_seconds)
        print(
            f"widths {candidate.recipe.widths} ({candidate.precision or 'device precision'}): "
            f"{epochs} epoch(s) of {measured.epoch_seconds(images):.0f} s fit the budget "
            f"({measured})",
            flush=True,
        )
        if epochs >= MIN_CAPSTONE_EPOCHS:
            break
    return candidate, measured


@register(
    "capstone",
    "capstone (notebook 07): whitened plain convolutional net, SGD-Nesterov with warm-up and decay "
    "over the budget (by the wall clock where the backend allows), label smoothing 0.2, EMA, "
    "flip TTA; the widest recipe that fits "
    f"{MIN_CAPSTONE_EPOCHS} epochs in the budget",
)
def _capstone(x, y, budget_seconds, callbacks, without: tuple[str, ...] = ()):
    from helpers import capstone

    def speed(candidate):
        recipe = candidate.recipe
        n = min(len(x), max(PROBE_IMAGES, 4 * recipe.batch_size))
        two = dataclasses.replace(recipe, epochs=2)
        fast_path = candidate.fast_path()
        return probe(
            lambda cbs: capstone.fit(x[:n], y[:n], two, fast_path=fast_path, callbacks=cbs), n
        )

    start = time.perf_counter()
    candidates = capstone_candidates(without=without)
    candidate, measured = widest_that_fits(candidates, speed, len(x), budget_seconds)
    probe_seconds = time.perf_counter() - start
    recipe, fast_path = candidate.recipe, candidate.fast_path()
    epochs, stop, adapt, settings = schedule_plan(measured, len(x), budget_seconds)
    print(f"probes of {probe_seconds:.0f} s: {settings}", flush=True)
    fitted = capstone.fit(
        x, y, dataclasses.replace(recipe, epochs=epochs), fast_path=fast_path,
        callbacks=[*callbacks, stop], verbose=2, adapt_schedule=adapt,
    )  # fmt: skip
    model = capstone.flip_tta_model(fitted.model) if recipe.tta else fitted.model
    settings.update(
        widths=list(recipe.widths),
        batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        ema_momentum=recipe.ema_momentum,
        precision=fast_path.precision,
    )
    return Trained(model, fitted.epochs_trained, probe_seconds, settings)


@register(
    "capstone-no-ema",
    "the capstone without its moving average of the weights (notebook 07's ablation row "
    "'without ema'), to decide the average at this budget on the validation split",
)
def _capstone_no_ema(x, y, budget_seconds, callbacks):
    return _capstone(x, y, budget_seconds, callbacks, without=("ema",))


# --- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    """Training images, the validation split held out of them, and the test set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split(dataset, val_fraction: float = VAL_FRACTION) -> Splits:
    """Hold out a stratified ``val_fraction`` of the training set for validation."""
    from helpers import data

    x_train, y_train, x_val, y_val = data.train_val_split(
        dataset.x_train, dataset.y_train, val_fraction
    )
    return Splits(x_train, y_train, x_val, y_val, dataset.x_test, dataset.y_test)


def accuracy(model, x, y) -> float:
    """Share of ``x`` whose most probable class is ``y`` (works whatever the model's loss)."""
    probabilities = model.predict(x, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(y).reshape(-1)))


def run_recipe(recipe: Recipe, splits: Splits, budget_seconds: float) -> dict:
    """Train one recipe within the budget and return its result row: validation accuracy
    (to choose by) and test accuracy (for the record), time, epochs, throughput."""
    from helpers import config

    config.set_seed(config.DEFAULT_SEED)
    start = time.perf_counter()
    trained = recipe.train(splits.x_train, splits.y_train, budget_seconds, [])
    seconds = time.perf_counter() - start - trained.probe_seconds
    return {
        "recipe": recipe.name,
        "budget_seconds": budget_seconds,
        "val_accuracy": round(accuracy(trained.model, splits.x_val, splits.y_val), 4),
        "test_accuracy": round(accuracy(trained.model, splits.x_test, splits.y_test), 4),
        "train_seconds": round(seconds, 1),
        "probe_seconds": round(trained.probe_seconds, 1),
        "epochs": round(trained.epochs, 2),
        "images_per_second": round(trained.epochs * len(splits.x_train) / seconds, 1),
        **trained.settings,
    }


def machine_info() -> dict:
    """CPU model, cores, accelerator, Keras backend and library versions."""
    from helpers import config

    cpu = platform.processor() or platform.machine()
    cpuinfo = read_cpuinfo()
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.M)
    cpu = names[0].strip() if names else cpu
    kind, count = config.detect_accelerator()
    gpu = None
    if kind != "CPU":
        gpu = f"{kind} x{count}"
        try:
            import subprocess

            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
            gpu = out.splitlines()[0] + (f" x{count}" if count > 1 else "") if out else gpu
        except (OSError, subprocess.SubprocessError):
            pass
    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__}
    versions["numpy"] = np.__version__
    module = sys.modules.get(backend)
    if module is not None and hasattr(module, "__version__"):
        versions[backend] = module.__version__
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vector_unit": vector_unit(cpu_flags(cpuinfo)),
        "gpu": gpu,
        "backend": backend,
        "versions": versions,
    }


def machine_slug(info: dict) -> str:
    """A short file-name-safe name such as ``cpu2-amd-epyc-avx2``, ``cpu2-amd-epyc-7b13-avx2`` or
    ``nvidia-h100-80gb-hbm3``: the GPU, or the CPU's cores, the first three words of its
    model name and its widest vector unit, so that runs on two processors (which can differ
    twice in speed under one name) never share a results file. Files written before the
    vector unit was recorded (2026-12-05) lack it."""
    if info["gpu"]:
        name = info["gpu"]
    else:
        words = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b|@", " ", info["cpu"].lower()).split()
        unit = [info["vector_unit"]] if info.get("vector_unit") else []
        name = " ".join([f"cpu{info['cores']}", *words[:3], *unit])
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


SPLITS_NOTE = (
    "val_accuracy: a stratified 10% of the CIFAR-10 training set held out of training, the "
    "split to choose recipes and settings by; test_accuracy: the CIFAR-10 test set (sizes "
    "under images), measured once per run, for the record"
)


def write_results(path: Path, info: dict, date: str, rows: list[dict], sizes=None) -> dict:
    """Write ``rows`` to ``path``, replacing earlier rows of the same recipes."""
    old = json.loads(path.read_text()).get("results", []) if path.is_file() else []
    names = {row["recipe"] for row in rows}
    merged = [row for row in old if row["recipe"] not in names] + rows
    payload = {"machine": info, "date": date, "splits": SPLITS_NOTE, "results": merged}
    if sizes:
        payload["images"] = sizes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return payload


def table(rows: list[dict]) -> str:
    """The comparison table: each recipe against the first one. Choose by the validation
    column; the test column is the record."""
    first = rows[0]
    head = (
        f"{'recipe':<12} {'val acc':>8} {'test acc':>8} {'val err/1st':>11} {'seconds':>8} "
        f"{'time/1st':>8} {'epochs':>7} {'img/s':>8}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        error = 1 - row["val_accuracy"]
        lines.append(
            f"{row['recipe']:<12} {row['val_accuracy']:>8.2%} {row['test_accuracy']:>8.2%} "
            f"{error / max(1e-9, 1 - first['val_accuracy']):>11.2f} "
            f"{row['train_seconds']:>8.1f} "
            f"{row['train_seconds'] / max(1e-9, first['train_seconds']):>8.2f} "
            f"{row['epochs']:>7.2f} {row['images_per_second']:>8.0f}"
        )
    lines.append(
        "val acc: the validation split held out of the training set (choose by it); "
        "test acc: the test set, for the record."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=["baseline", "recommended"])
    parser.add_argument("--budget-seconds", type=float, default=600.0)
    parser.add_argument("--train-size", type=int, default=None, help="stratified slice")
    parser.add_argument("--test-size", type=int, default=None, help="stratified slice")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (or CIFAR10_DIR)")
    parser.add_argument("--machine", default=None, help="name in the result file name")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: results/)")
    args = parser.parse_args(argv)
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
    if args.budget_seconds <= 0:
        parser.error("--budget-seconds must be positive")

    from helpers import data

    dataset = data.load_cifar10(args.data_dir, train_size=args.train_size, test_size=args.test_size)
    splits = split(dataset)
    info = machine_info()
    print(json.dumps(info), flush=True)
    sizes = {"train": len(splits.x_train), "validation": len(splits.x_val)}
    sizes["test"] = len(splits.x_test)
    print(", ".join(f"{n} {name} images" for name, n in sizes.items()), flush=True)
    date = dt.date.today().isoformat()
    budget = f"{args.budget_seconds:g}s"
    out = args.out or RESULTS / f"{args.machine or machine_slug(info)}-{date}-{budget}.json"
    rows = []
    for name in args.recipes:
        print(f"== {name}: {RECIPES[name].description}", flush=True)
        row = run_recipe(RECIPES[name], splits, args.budget_seconds)
        print(json.dumps(row), flush=True)
        rows.append(row)
        # Written after each recipe, so a run that is stopped keeps what it measured.
        write_results(out, info, date, rows, sizes)
    print(table(rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
