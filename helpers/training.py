"""Training plumbing: ``fit`` with checkpoints that resume, a Stop callback, tidy histories,
and the recipe of notebook 03 packaged as ``train_recipe``.

Notebook 03 writes ``model.compile``, ``model.fit`` and its callbacks in its own cells first;
``fit(model, x, y, run_name=...)`` is the same call plus resume: after every complete epoch
it saves the model (with its optimizer state) and the number of finished epochs in
``config.artifacts_dir()/runs/<run_name>/``, and the same call run again (after a kernel
restart or a Stop) continues with ``initial_epoch`` instead of starting over. An epoch cut
short by ``StopTraining`` is not saved: a checkpoint always holds whole epochs. A run whose
loss becomes NaN or infinite stops (``keras.callbacks.TerminateOnNaN``) and says so.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from helpers import config, data, plots

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

#: The recipe of notebook 03 (``train_recipe``): AdamW at a peak learning rate of 5e-3 with
#: weight decay, a warm-up over the first 15% of the steps then cosine decay to 1/1000 of
#: the peak, label smoothing 0.1, batch 128.
RECIPE_DEFAULTS = {
    "learning_rate": 5e-3,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "batch_size": 128,
    "warmup_fraction": 0.15,
}

#: The recipe's model: ``models.build_recommended(**RECIPE_MODEL)``: two convolutions per
#: block with the pooling right after the first (``pool_early``), random flips, no shifts and
#: no dropout (notebook 03 says why, and what is still to be checked).
RECIPE_MODEL = {
    "width": 32,
    "convs_per_block": 2,
    "pool_early": True,
    "dropout": 0.0,
    "translate": 0.0,
}


class TrainingConfigError(ValueError):
    """A training option is out of range; the message says which values are accepted."""


# --- compiling -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="course")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy for integer labels with label smoothing (Keras's sparse loss has none):
    the same as ``keras.losses.CategoricalCrossentropy(label_smoothing=...)`` on one-hot
    labels, with the one-hot encoding done inside the loss."""

    def __init__(self, label_smoothing=0.0, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, classes), y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def smoothed_loss(label_smoothing: float = 0.1) -> SparseSmoothedCrossentropy:
    """Sparse categorical cross-entropy with label smoothing, saveable in ``.keras`` files."""
    return SparseSmoothedCrossentropy(label_smoothing)


def make_optimizer(name: str = "adam", learning_rate=1e-3, weight_decay: float = 0.0):
    """An optimizer by name: ``"adam"``, ``"adamw"`` (decoupled weight decay),
    ``"sgd"`` (Nesterov momentum 0.9) or ``"rmsprop"``."""
    _check_lr(learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay or 1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise TrainingConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def _check_lr(learning_rate) -> None:
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, int | float)
        or not 0 < learning_rate <= 10
    ):
        raise TrainingConfigError(
            f"learning_rate must be a number in (0, 10], typically 1e-4 to 1e-1; "
            f"got {learning_rate!r}"
        )


def compile_model(
    model,
    *,
    optimizer: str = "adam",
    learning_rate=1e-3,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
):
    """Compile ``model`` for CIFAR-10's integer labels: the named optimizer, cross-entropy
    (with ``label_smoothing`` if > 0) and accuracy. Returns the model."""
    if not 0 <= label_smoothing < 1:
        raise TrainingConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    loss = (
        smoothed_loss(label_smoothing)
        if label_smoothing > 0
        else keras.losses.SparseCategoricalCrossentropy()
    )
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate, weight_decay),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def load_model(path):
    """``keras.saving.load_model``; importing this module registers the course's loss."""
    return keras.saving.load_model(path)


# --- callbacks -------------------------------------------------------------------------------


class StopTraining(keras.callbacks.Callback):
    """Stops training after the current batch once ``.request()`` is called.

    Safe to call ``.request()`` from another thread (a Stop button): it only sets a
    ``threading.Event``; the training loop checks it after every batch.
    ``.stopped`` tells afterwards whether the run was cut short."""

    def __init__(self):
        super().__init__()
        self.flag = threading.Event()
        self.stopped = False

    def request(self) -> None:
        self.flag.set()

    def on_train_batch_end(self, batch, logs=None):
        if self.flag.is_set():
            self.stopped = True
            self.model.stop_training = True


class Divergence(keras.callbacks.TerminateOnNaN):
    """``keras.callbacks.TerminateOnNaN`` that remembers where: ``.epoch`` (1-based) is set
    when a batch's loss became NaN or infinite and training was stopped."""

    def __init__(self):
        super().__init__()
        self.epoch = None
        self._current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch + 1

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.epoch = self._current
        super().on_batch_end(batch, logs)

    @property
    def message(self) -> str | None:
        if self.epoch is None:
            return None
        return (
            f"diverged at epoch {self.epoch}: the loss became NaN or infinite; "
            "lower the learning rate"
        )


def _current_lr(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


# --- checkpoint and resume -------------------------------------------------------------------

STATE_FILE = "state.json"
LAST_MODEL = "last.keras"
BEST_MODEL = "best.keras"


def run_dir(run_name: str) -> Path:
    """Where the checkpoints of ``run_name`` live: ``artifacts/runs/<run_name>``."""
    if not run_name or any(c in run_name for c in "/\\:") or run_name.startswith("."):
        raise TrainingConfigError(
            f"run_name must be a plain folder name such as 'baseline', got {run_name!r}"
        )
    return config.artifacts_dir() / "runs" / run_name


def read_state(run_name: str) -> dict | None:
    """The saved state of ``run_name`` (``{"epoch": finished epochs, "keras": the version
    that saved it, "history": [...]}``), or ``None`` if nothing was saved yet."""
    path = run_dir(run_name) / STATE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def forget_run(run_name: str) -> None:
    """Delete the checkpoints of ``run_name`` so the next ``fit`` starts from scratch."""
    shutil.rmtree(run_dir(run_name), ignore_errors=True)


def _write_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename: a kernel killed mid-save leaves the old file intact."""
    tmp = path.with_name(f"tmp-{path.name}")
    write(tmp)
    os.replace(tmp, path)


class EpochCheckpoint(keras.callbacks.Callback):
    """After each *complete* epoch: append a row (epoch number, logs, learning rate) to
    ``history`` and, with a ``folder``, save the model with its optimizer state to
    ``folder/last.keras`` and the epoch number plus the history to ``folder/state.json``.
    An epoch cut short (Stop, time budget) is left out: history and checkpoint hold whole
    epochs. ``.epochs_seen`` counts this call's epochs, a cut-short one as a fraction."""

    def __init__(self, history: list[dict], folder: Path | None = None):
        super().__init__()
        self.history = history
        self.folder = folder
        self.batches = 0
        self.epochs_seen = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps")
        self.epochs_seen += self.batches / steps if steps else 1.0
        if steps and self.batches < steps:
            return
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["learning_rate"] = _current_lr(self.model)
        self.history.append(row)
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.folder / LAST_MODEL, self.model.save)
        state = {"epoch": epoch + 1, "keras": keras.__version__, "history": self.history}
        text = json.dumps(state, indent=1)
        _write_atomically(self.folder / STATE_FILE, lambda tmp: tmp.write_text(text))


@dataclass
class TrainingResult:
    """What ``fit`` returns: the trained model, the whole history (all epochs, resumed
    ones included) as rows, where the run resumed from, how long ``fit`` took, whether a
    callback stopped it, how many epochs this call trained (``epochs_trained``, a
    cut-short last epoch counted as a fraction), and ``diverged``: a message when the
    loss became NaN or infinite, else ``None``."""

    model: object
    history: list[dict] = field(default_factory=list)
    initial_epoch: int = 0
    seconds: float = 0.0
    stopped: bool = False
    folder: Path | None = None
    epochs_trained: float = 0.0
    diverged: str | None = None

    @property
    def epochs_done(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def frame(self):
        """The history as a tidy DataFrame (see ``history_frame``)."""
        return history_frame(self.history)


def _restore(model, folder: Path, state: dict) -> None:
    """Load weights and optimizer state saved in ``folder/last.keras`` into ``model``."""
    try:
        saved = load_model(folder / LAST_MODEL)
    except Exception as err:  # damaged, or written by a Keras this one cannot read
        saved_by = state.get("keras", "an unknown version")
        raise TrainingConfigError(
            f"cannot read the checkpoint {folder / LAST_MODEL} ({type(err).__name__}: "
            f"{str(err)[:200]}). It was saved by Keras {saved_by}; this is Keras "
            f"{keras.__version__}. To start this run over, delete it with "
            f"training.forget_run({folder.name!r}) or pass resume=False; to continue it, "
            f"use the Keras it was saved with."
        ) from err
    forget = f"use another run_name or delete it with training.forget_run({folder.name!r})"
    if len(saved.weights) != len(model.weights):
        raise TrainingConfigError(f"the checkpoint in {folder} belongs to another model; {forget}")
    model.set_weights(saved.get_weights())
    model.optimizer.build(model.trainable_variables)
    if len(saved.optimizer.variables) != len(model.optimizer.variables):
        raise TrainingConfigError(
            f"the checkpoint in {folder} was trained with another optimizer; {forget}"
        )
    for mine, theirs in zip(model.optimizer.variables, saved.optimizer.variables, strict=True):
        mine.assign(theirs)


def _check_fit_options(model, epochs, batch_size) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TrainingConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TrainingConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise TrainingConfigError("compile the model first: training.compile_model(model)")


def _resume(model, run_name, resume, monitor) -> tuple[list[dict], int, keras.callbacks.Callback]:
    """The saved history and epoch of ``run_name`` (restored into ``model``), and the
    ``ModelCheckpoint`` that keeps its best epoch in ``best.keras``."""
    folder = run_dir(run_name)
    state = read_state(run_name) if resume else None
    history, initial_epoch = [], 0
    if state is None:
        forget_run(run_name)
    else:
        _restore(model, folder, state)
        history, initial_epoch = list(state["history"]), int(state["epoch"])
    best = keras.callbacks.ModelCheckpoint(
        folder / BEST_MODEL, monitor=monitor, mode="max", save_best_only=True
    )
    scores = [row[monitor] for row in history if monitor in row]
    if scores:
        best.best = max(scores)
    return history, initial_epoch, best


def _stopping_callbacks(validation, early_stopping_patience, reduce_lr_patience) -> list:
    """The ``EarlyStopping`` and ``ReduceLROnPlateau`` of notebook 03, when asked for."""
    monitor = "val_accuracy" if validation else "accuracy"
    cbs = []
    if early_stopping_patience is not None:
        cbs.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode="max",
                patience=early_stopping_patience,
                restore_best_weights=True,
            )
        )
    if reduce_lr_patience is not None:
        cbs.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss" if validation else "loss",
                factor=0.2,
                patience=reduce_lr_patience,
                min_lr=1e-6,
            )
        )
    return cbs


def fit(
    model,
    x,
    y,
    *,
    validation_data=None,
    epochs: int = 10,
    batch_size: int = 64,
    run_name: str | None = None,
    resume: bool = True,
    early_stopping_patience: int | None = None,
    reduce_lr_patience: int | None = None,
    callbacks=(),
    verbose: int | str = "auto",
) -> TrainingResult:
    """``model.fit`` on uint8 images ``x`` and labels ``y``, plus checkpoints that resume.

    - ``run_name``: checkpoint after every complete epoch in ``artifacts/runs/<run_name>/``
      (``last.keras``, ``best.keras`` by validation accuracy, ``state.json``); with
      ``resume=True`` the same call again continues from the last saved epoch with the
      saved weights and optimizer state; when all ``epochs`` are done it only reloads.
    - ``early_stopping_patience``, ``reduce_lr_patience``: notebook 03's ``EarlyStopping``
      (validation accuracy, best weights restored) and ``ReduceLROnPlateau`` (divide by 5).
    - ``callbacks``: more Keras callbacks (``StopTraining``, ...).
    A loss that becomes NaN or infinite stops the run; ``.diverged`` then says so.
    Returns a ``TrainingResult`` (``.model``, ``.history``, ``.frame()``, ``.initial_epoch``).
    """
    _check_fit_options(model, epochs, batch_size)
    monitor = "val_accuracy" if validation_data is not None else "accuracy"
    history, initial_epoch, folder, cbs = [], 0, None, list(callbacks)
    if run_name is not None:
        folder = run_dir(run_name)
        history, initial_epoch, best = _resume(model, run_name, resume, monitor)
        cbs.append(best)
    recorder, divergence = EpochCheckpoint(history, folder), Divergence()
    cbs += [recorder, divergence]
    cbs += _stopping_callbacks(
        validation_data is not None, early_stopping_patience, reduce_lr_patience
    )
    start = time.perf_counter()
    if initial_epoch < epochs:
        model.fit(
            x,
            y,
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            batch_size=batch_size,
            callbacks=cbs,
            verbose=verbose,
        )
    if divergence.message and verbose:
        print(divergence.message)
    stopped = any(getattr(cb, "stopped", False) for cb in cbs) or divergence.epoch is not None
    seconds, message = time.perf_counter() - start, divergence.message
    return TrainingResult(
        model, history, initial_epoch, seconds, stopped, folder, recorder.epochs_seen, message
    )


#: A history as a tidy DataFrame (epoch, metric, split, value); the same as
#: ``plots.history_frame``, named here too because notebooks 03-06 call it on results.
history_frame = plots.history_frame


# --- the recipe of notebook 03, packaged -----------------------------------------------------


def recipe_schedule(
    peak: float, total_steps: int, warmup_fraction: float = 0.15
) -> keras.optimizers.schedules.CosineDecay:
    """Notebook 03's schedule: a linear warm-up from ``peak / 10`` to ``peak`` over the first
    ``warmup_fraction`` of ``total_steps``, then a cosine decay to ``peak / 1000``."""
    _check_lr(peak)
    if not 0 <= warmup_fraction < 1:
        raise TrainingConfigError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    warmup_steps = int(warmup_fraction * total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=1e-3,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def compile_recipe(model, steps_per_epoch: int, epochs: int, **recipe):
    """Compile ``model`` as notebook 03 does: AdamW on ``recipe_schedule`` over
    ``epochs × steps_per_epoch`` steps, ``CategoricalCrossentropy(label_smoothing=...)`` on
    one-hot labels, accuracy. ``recipe`` overrides ``RECIPE_DEFAULTS``. Returns the model."""
    unknown = set(recipe) - set(RECIPE_DEFAULTS)
    if unknown:
        raise TrainingConfigError(
            f"unknown recipe option(s) {sorted(unknown)}; choose from {sorted(RECIPE_DEFAULTS)}"
        )
    options = {**RECIPE_DEFAULTS, **recipe}
    schedule = recipe_schedule(
        options["learning_rate"], epochs * steps_per_epoch, options["warmup_fraction"]
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=schedule, weight_decay=options["weight_decay"]
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options["label_smoothing"]),
        metrics=["accuracy"],
    )
    return model


def one_hot(labels):
    """Integer labels as one-hot float32 rows (``keras.utils.to_categorical``)."""
    return keras.utils.to_categorical(labels, data.NUM_CLASSES).astype("float32")


def train_recipe(
    x,
    y,
    *,
    validation_data=None,
    epochs: int = 10,
    run_name: str | None = None,
    model=None,
    callbacks=(),
    verbose: int | str = "auto",
    **recipe,
) -> TrainingResult:
    """Notebook 03's recipe, packaged: ``models.build_recommended(**RECIPE_MODEL)`` (or
    ``model``), ``compile_recipe`` (AdamW, warm-up then cosine decay over ``epochs``, label
    smoothing) and ``fit`` on integer labels ``y`` turned one-hot. Override any of
    ``RECIPE_DEFAULTS`` as keywords, e.g. ``learning_rate=2e-3``."""
    from helpers import models

    options = {**RECIPE_DEFAULTS, **recipe}
    if model is None:
        model = models.build_recommended(**RECIPE_MODEL)
    steps = math.ceil(len(x) / options["batch_size"])
    compile_recipe(model, steps, epochs, **recipe)
    if validation_data is not None:
        validation_data = (validation_data[0], one_hot(validation_data[1]))
    return fit(
        model,
        x,
        one_hot(y),
        validation_data=validation_data,
        epochs=epochs,
        batch_size=options["batch_size"],
        run_name=run_name,
        callbacks=callbacks,
        verbose=verbose,
    )
