"""Compiling and training the course's models: a ``fit`` wrapper with checkpoints that
resume, callbacks to stop a run cleanly, and histories as tidy DataFrames.

The wrapper ``fit(model, x, y, run_name=...)`` saves the model and the number of
finished epochs after every complete epoch in ``config.artifacts_dir()/runs/<run_name>/``.
Run the same call again (after a kernel restart or a Stop) and it loads that state
and continues with ``initial_epoch`` instead of starting over. An epoch cut short
by ``StopTraining`` or ``TimeBudget`` is not saved: a checkpoint always holds whole
epochs.

``train_recipe(...)`` trains the course's recommended recipe (``models.build_recommended``
with AdamW, a one-cycle learning rate, label smoothing), optionally within a
wall-clock budget.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import config

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

#: What ``train_recipe`` uses unless told otherwise (chosen by benchmarks/bench.py runs).
RECIPE_DEFAULTS = {
    "optimizer": "adamw",
    "learning_rate": 5e-3,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "batch_size": 128,
}


#: The recipe's model: ``models.build_recommended(**RECIPE_MODEL)``. Two convolutions per
#: block with the pooling right after the first (``pool_early``): six convolutions deep for
#: about the compute of four. Flips without shifts: in 4-epoch runs of the earlier
#: three-convolution model on CIFAR-10 (2-core CPU) flips alone reached 71.3% test accuracy,
#: flips and 4-pixel shifts 67.3%; a budget of about ten epochs underfits more than it
#: overfits, so dropout is off too.
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


def _sparse_smoothed_crossentropy_class():
    import keras

    @keras.saving.register_keras_serializable(package="course")
    class SparseSmoothedCrossentropy(keras.losses.Loss):
        """Cross-entropy for integer labels with label smoothing (Keras's sparse loss has none).

        The true class gets ``1 - smoothing + smoothing / 10`` and every other class
        ``smoothing / 10``, which keeps the model from becoming over-confident."""

        def __init__(self, label_smoothing=0.0, name="smoothed_crossentropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            ops = keras.ops
            classes = ops.shape(y_pred)[-1]
            y_true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes)
            return keras.losses.categorical_crossentropy(
                y_true, y_pred, label_smoothing=self.label_smoothing
            )

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    return SparseSmoothedCrossentropy


_LOSS_CLASS = None


def smoothed_loss(label_smoothing: float = 0.1):
    """Sparse categorical cross-entropy with label smoothing, saveable in ``.keras`` files."""
    global _LOSS_CLASS
    if _LOSS_CLASS is None:
        _LOSS_CLASS = _sparse_smoothed_crossentropy_class()
    return _LOSS_CLASS(label_smoothing)


def register_custom_objects() -> None:
    """Make the course's custom loss known to Keras, so ``keras.saving.load_model`` can
    read files saved with it (``load_model`` in this module calls it for you)."""
    smoothed_loss(0.0)


def make_optimizer(name: str = "adam", learning_rate: float = 1e-3, weight_decay: float = 0.0):
    """An optimizer by name: ``"adam"``, ``"adamw"`` (decoupled weight decay),
    ``"sgd"`` (Nesterov momentum 0.9) or ``"rmsprop"``."""
    import keras

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
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
):
    """Compile ``model`` for CIFAR-10's integer labels: the named optimizer, cross-entropy
    (with ``label_smoothing`` if > 0) and accuracy. Returns the model."""
    import keras

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
    """``keras.saving.load_model`` that also knows the course's custom loss."""
    import keras

    register_custom_objects()
    return keras.saving.load_model(path)


# --- callbacks -------------------------------------------------------------------------------


def _callback_base():
    import keras

    return keras.callbacks.Callback


def StopTraining():  # noqa: N802 - a factory that reads like the class it returns
    """A callback that stops training after the current batch once ``.request()`` is called.

    Safe to call ``.request()`` from another thread (a Stop button): it only sets a
    ``threading.Event``; the training loop checks it after every batch.
    ``.stopped`` tells afterwards whether the run was cut short."""

    class _StopTraining(_callback_base()):
        def __init__(self):
            super().__init__()
            self.flag = threading.Event()
            self.stopped = False

        def request(self):
            self.flag.set()

        def reset(self):
            self.flag.clear()
            self.stopped = False

        def on_train_batch_end(self, batch, logs=None):
            if self.flag.is_set():
                self.stopped = True
                self.model.stop_training = True

    return _StopTraining()


def TimeBudget(seconds: float):  # noqa: N802
    """A callback that stops training after the first batch that ends past ``seconds``
    of wall time (counted from the start of ``fit``). ``.elapsed`` holds the training time."""
    if not seconds > 0:
        raise TrainingConfigError(f"the time budget must be positive seconds, got {seconds!r}")

    class _TimeBudget(_callback_base()):
        def __init__(self):
            super().__init__()
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

    return _TimeBudget()


def OneCycle(  # noqa: N802
    peak_lr: float,
    *,
    total_steps: int | None = None,
    budget_seconds: float | None = None,
    warmup: float = 0.15,
    start_div: float = 10.0,
    end_div: float = 1000.0,
):
    """A one-cycle learning rate, set before every batch: a linear warm-up from
    ``peak_lr / start_div`` to ``peak_lr`` over the first ``warmup`` of training, then a
    cosine decay to ``peak_lr / end_div``.

    Progress is counted in steps (``total_steps``, default: epochs × steps per epoch of
    the ``fit`` call) or, with ``budget_seconds``, in wall time, so the schedule ends
    exactly when the time budget does, however fast the machine is. ``.history``
    records the rate of each step."""
    _check_lr(peak_lr)
    if not 0 <= warmup < 1:
        raise TrainingConfigError(f"warmup must be a fraction in [0, 1), got {warmup}")

    class _OneCycle(_callback_base()):
        def __init__(self):
            super().__init__()
            self.total_steps = total_steps
            self.step = 0
            self.start = None
            self.history = []

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            if self.total_steps is None and budget_seconds is None:
                self.total_steps = self.params["epochs"] * self.params["steps"]
            self.step = self.params.get("initial_epoch", 0) * (self.params.get("steps") or 0)

        def progress(self) -> float:
            if budget_seconds is not None:
                return min(1.0, (time.perf_counter() - self.start) / budget_seconds)
            return min(1.0, self.step / max(1, self.total_steps))

        def on_train_batch_begin(self, batch, logs=None):
            lr = one_cycle_lr(self.progress(), peak_lr, warmup, start_div, end_div)
            self.model.optimizer.learning_rate = lr
            self.history.append(lr)
            self.step += 1

    return _OneCycle()


def _current_lr(model) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def one_cycle_lr(progress, peak_lr, warmup=0.15, start_div=10.0, end_div=1000.0) -> float:
    """The one-cycle learning rate at ``progress`` (0 = start, 1 = end) of training."""
    low, end = peak_lr / start_div, peak_lr / end_div
    if progress < warmup:
        return float(low + (peak_lr - low) * progress / warmup)
    frac = (progress - warmup) / (1 - warmup)
    return float(end + (peak_lr - end) * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0))))


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


def EpochCheckpoint(history: list[dict], folder: Path | None = None):  # noqa: N802
    """A callback that, after each *complete* epoch, appends a row (epoch number, logs,
    learning rate) to ``history`` and, with a ``folder``, saves the model (with its
    optimizer state) to ``folder/last.keras`` and the epoch number plus the history so
    far to ``folder/state.json``. Files are written under a temporary name and renamed,
    so a kernel killed mid-save leaves the previous checkpoint intact. An epoch cut
    short (Stop, time budget) is left out: history and checkpoint hold whole epochs."""

    import keras

    keras_version = keras.__version__

    class _EpochCheckpoint(_callback_base()):
        def __init__(self):
            super().__init__()
            self.batches = 0
            self.epochs_seen = 0.0  # this fit call's epochs, a cut-short one as a fraction

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
            history.append(row)
            if folder is None:
                return
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"tmp-{LAST_MODEL}"
            self.model.save(tmp)
            os.replace(tmp, folder / LAST_MODEL)
            tmp_state = folder / f"tmp-{STATE_FILE}"
            state = {"epoch": epoch + 1, "keras": keras_version, "history": history}
            tmp_state.write_text(json.dumps(state, indent=1))
            os.replace(tmp_state, folder / STATE_FILE)

    return _EpochCheckpoint()


@dataclass
class TrainingResult:
    """What ``fit`` returns: the trained model, the whole history (all epochs, resumed
    ones included) as rows, where the run resumed from, how long ``fit`` took, whether a
    callback stopped it, and how many epochs this call trained (``epochs_trained``, a
    cut-short last epoch counted as a fraction)."""

    model: object
    history: list[dict] = field(default_factory=list)
    initial_epoch: int = 0
    seconds: float = 0.0
    stopped: bool = False
    folder: Path | None = None
    epochs_trained: float = 0.0

    @property
    def epochs_done(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def frame(self):
        """The history as a tidy DataFrame (see ``history_frame``)."""
        return history_frame(self.history)


def _restore(model, folder: Path, state: dict) -> None:
    """Load weights and optimizer state saved in ``folder/last.keras`` into ``model``."""
    import keras

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
    if len(saved.weights) != len(model.weights):
        raise TrainingConfigError(
            f"the checkpoint in {folder} belongs to a different model; use another run_name "
            f"or delete it with training.forget_run({folder.name!r})"
        )
    model.set_weights(saved.get_weights())
    model.optimizer.build(model.trainable_variables)
    if len(saved.optimizer.variables) != len(model.optimizer.variables):
        raise TrainingConfigError(
            f"the checkpoint in {folder} was trained with another optimizer; use another "
            f"run_name or delete it with training.forget_run({folder.name!r})"
        )
    for mine, theirs in zip(model.optimizer.variables, saved.optimizer.variables, strict=True):
        mine.assign(theirs)


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
    """Train a compiled ``model`` on uint8 images ``x`` and integer labels ``y``.

    - ``validation_data=(x_val, y_val)``: evaluated after every epoch.
    - ``run_name``: checkpoint after every complete epoch in
      ``artifacts/runs/<run_name>/`` (``last.keras``, ``best.keras`` by validation
      accuracy, ``state.json``); with ``resume=True`` a second call with the same name
      continues from the last saved epoch (``initial_epoch``) with the saved weights and
      optimizer state; when all ``epochs`` are done it only reloads.
    - ``early_stopping_patience``: stop when validation accuracy has not improved for
      that many epochs and go back to the best weights.
    - ``reduce_lr_patience``: divide the learning rate by 5 when validation loss stalls.
    - ``callbacks``: more Keras callbacks (``StopTraining``, ``OneCycle``, ...).

    Returns a ``TrainingResult`` (``.model``, ``.history``, ``.frame()``, ``.initial_epoch``).
    """
    import keras

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TrainingConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TrainingConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise TrainingConfigError("compile the model first: training.compile_model(model)")
    monitor = "val_accuracy" if validation_data is not None else "accuracy"
    history: list[dict] = []
    initial_epoch = 0
    folder = None
    cbs = list(callbacks)
    if run_name is not None:
        folder = run_dir(run_name)
        state = read_state(run_name) if resume else None
        if state is None:
            forget_run(run_name)
        else:
            _restore(model, folder, state)
            history = list(state["history"])
            initial_epoch = int(state["epoch"])
        best = keras.callbacks.ModelCheckpoint(
            folder / BEST_MODEL, monitor=monitor, mode="max", save_best_only=True
        )
        scores = [row[monitor] for row in history if monitor in row]
        if scores:
            best.best = max(scores)
        cbs.append(best)
    recorder = EpochCheckpoint(history, folder)
    cbs.append(recorder)
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
                monitor="val_loss" if validation_data is not None else "loss",
                factor=0.2,
                patience=reduce_lr_patience,
                min_lr=1e-6,
            )
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
    stopped = any(getattr(cb, "stopped", False) for cb in cbs)
    return TrainingResult(
        model,
        history,
        initial_epoch,
        time.perf_counter() - start,
        stopped,
        folder,
        recorder.epochs_seen,
    )


def history_frame(history) -> "pd.DataFrame":  # noqa: F821, UP037
    """A history (``TrainingResult.history``, a Keras ``History`` or its ``.history`` dict)
    as a tidy DataFrame with columns ``epoch``, ``metric`` (loss, accuracy), ``split``
    (train, validation) and ``value`` - one row per number, ready for seaborn."""
    import pandas as pd

    if hasattr(history, "history"):  # keras.callbacks.History
        history = history.history
    if isinstance(history, dict):
        n = len(next(iter(history.values()), []))
        history = [{"epoch": i + 1, **{k: v[i] for k, v in history.items()}} for i in range(n)]
    rows = []
    for entry in history:
        for key, value in entry.items():
            if key in ("epoch", "learning_rate"):
                continue
            split = "validation" if key.startswith("val_") else "train"
            rows.append(
                {
                    "epoch": int(entry["epoch"]),
                    "metric": key.removeprefix("val_"),
                    "split": split,
                    "value": float(value),
                }
            )
    return pd.DataFrame(rows, columns=["epoch", "metric", "split", "value"])


# --- the recommended recipe ------------------------------------------------------------------


def train_recipe(
    x,
    y,
    *,
    validation_data=None,
    epochs: int = 20,
    budget_seconds: float | None = None,
    run_name: str | None = None,
    model=None,
    callbacks=(),
    verbose: int | str = "auto",
    **recipe,
) -> TrainingResult:
    """Train the course's recommended recipe: ``models.build_recommended(**RECIPE_MODEL)``
    (six convolutions with batch norm, pooling early, random flips inside the model, global
    average pooling), AdamW with weight decay, a one-cycle learning rate and label smoothing
    (see ``RECIPE_DEFAULTS``; override any of them as keywords, e.g. ``learning_rate=2e-3``).

    With ``budget_seconds`` the one-cycle schedule runs on wall time and training stops
    when the budget is spent, so the whole schedule fits the budget on any machine
    (``epochs`` is then an upper bound). Pass ``model`` to train another architecture
    with the same recipe.
    """
    from helpers import models

    unknown = set(recipe) - set(RECIPE_DEFAULTS)
    if unknown:
        raise TrainingConfigError(
            f"unknown recipe option(s) {sorted(unknown)}; choose from {sorted(RECIPE_DEFAULTS)}"
        )
    options = {**RECIPE_DEFAULTS, **recipe}
    if model is None:
        model = models.build_recommended(**RECIPE_MODEL)
    compile_model(
        model,
        optimizer=options["optimizer"],
        learning_rate=options["learning_rate"],
        weight_decay=options["weight_decay"],
        label_smoothing=options["label_smoothing"],
    )
    cbs = [OneCycle(options["learning_rate"], budget_seconds=budget_seconds), *callbacks]
    if budget_seconds is not None:
        cbs.append(TimeBudget(budget_seconds))
    return fit(
        model,
        x,
        y,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=options["batch_size"],
        run_name=run_name,
        callbacks=cbs,
        verbose=verbose,
    )
