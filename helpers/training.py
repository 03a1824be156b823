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
import socket
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
    _check_fraction("weight_decay", weight_decay)
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


def _check_fraction(name: str, value, high: float = 1.0) -> None:
    """``value`` must be a number in [0, ``high``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < high:
        raise TrainingConfigError(f"{name} must be a number in [0, {high:g}), got {value!r}")


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
    _check_fraction("label_smoothing", label_smoothing)
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
#: Held while ``fit`` trains a run: the PID and host of the process using the folder.
LOCK_FILE = "lock"
_NAME_CHARS_REFUSED = '/\\:*?"<>|'
_HELD: set[Path] = set()  # run folders whose lock this process holds


def run_dir(run_name: str) -> Path:
    """Where the checkpoints of ``run_name`` live: ``artifacts/runs/<run_name>``."""
    if (
        not isinstance(run_name, str)
        or not run_name
        or len(run_name) > 100
        or run_name.startswith(".")
        or run_name != run_name.strip()
        or any(c in _NAME_CHARS_REFUSED or not c.isprintable() for c in run_name)
    ):
        raise TrainingConfigError(
            "run_name must be a plain folder name such as 'baseline' (up to 100 characters, "
            f"no leading '.', no spaces at the ends, none of {_NAME_CHARS_REFUSED}), "
            f"got {run_name!r}"
        )
    return config.artifacts_dir() / "runs" / run_name


def _start_over(run_name: str) -> str:
    return (
        f"To start this run over, delete it with training.forget_run({run_name!r}); "
        "to keep it, pass another run_name."
    )


def _state_problem(state) -> str | None:
    """What is wrong with the content of a ``state.json``, or ``None``."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dict"
    epoch, history = state.get("epoch"), state.get("history")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return f"'epoch' must be a whole number >= 0, it is {epoch!r}"
    if not isinstance(history, list):
        return f"'history' must be a list of rows, it is {history!r:.80}"
    for row in history:
        if (
            not isinstance(row, dict)
            or isinstance(row.get("epoch"), bool)
            or not isinstance(row.get("epoch"), int)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row.values())
        ):
            return f"the history row {row!r:.80} is not an epoch number with numeric metrics"
    if not isinstance(state.get("keras", ""), str):
        return f"'keras' must be a version string, it is {state['keras']!r}"
    return None


def read_state(run_name: str) -> dict | None:
    """The saved state of ``run_name`` (``{"epoch": finished epochs, "keras": the version
    that saved it, "history": [...]}``), or ``None`` if nothing was saved yet.
    A damaged ``state.json`` raises ``TrainingConfigError`` saying what to do."""
    path = run_dir(run_name) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError included
        raise TrainingConfigError(
            f"cannot read {path} ({type(err).__name__}: {err}); it is damaged, so this run "
            f"cannot be resumed and is left as it is. {_start_over(run_name)}"
        ) from None
    problem = _state_problem(state)
    if problem is not None:
        raise TrainingConfigError(
            f"{path} is damaged: {problem}. This run cannot be resumed and is left as it is. "
            f"{_start_over(run_name)}"
        )
    return state


def forget_run(run_name: str) -> None:
    """Delete the checkpoints of ``run_name`` so the next ``fit`` starts from scratch
    (refused while another process or thread trains it)."""
    folder = run_dir(run_name)
    holder = _lock_holder(folder)
    if holder is not None:
        raise TrainingConfigError(_in_use(folder, holder))
    shutil.rmtree(folder, ignore_errors=True)


def _clear(folder: Path) -> None:
    """Delete everything in ``folder`` but its lock: a run that starts over."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# --- one process per run: the lock file ----------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process on Windows: assume it runs
        return True
    try:
        os.kill(pid, 0)  # signal 0: checks the process exists, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except (OSError, OverflowError):
        return False
    return True


def _lock_holder(folder: Path) -> str | None:
    """Who holds the lock of ``folder`` (a description), or ``None`` when nobody does:
    no lock file, or a stale one left by a process that no longer runs."""
    lock = folder / LOCK_FILE
    try:
        text = lock.read_text(encoding="utf-8", errors="replace")
        age = time.time() - lock.stat().st_mtime
    except OSError:  # no lock (or it vanished meanwhile)
        return None
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit() or int(parts[0]) <= 0:
        return "a process that is just starting" if age < 10 else None
    pid, host = int(parts[0]), parts[1]
    if host != socket.gethostname():
        return f"process {pid} on the computer {host!r}"
    if pid == os.getpid():
        return f"this process (PID {pid}), in another thread" if folder in _HELD else None
    return f"process {pid}" if _pid_alive(pid) else None


def _in_use(folder: Path, holder: str) -> str:
    return (
        f"run {folder.name!r} is in use by another process: {holder} is training it "
        f"({folder / LOCK_FILE}). Wait until it has finished, or pass another run_name. If "
        f"nothing is training it any more, delete the file {folder / LOCK_FILE}."
    )


def _take_over(lock: Path) -> None:
    """Move a stale lock out of the way (only one process can rename it) and say so."""
    grabbed = lock.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
    try:
        text = lock.read_text(encoding="utf-8", errors="replace")
        os.replace(lock, grabbed)
    except OSError:  # another process took it over first
        return
    grabbed.unlink(missing_ok=True)
    print(
        f"note: {lock} was left by a process that no longer runs ({text.strip() or 'empty'}); "
        "taking the run over."
    )


def _take_lock(folder: Path) -> None:
    """Create ``folder/lock`` holding this PID, atomically (``O_CREAT | O_EXCL``); refuse
    with ``TrainingConfigError`` while a live process holds it; take a stale one over."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(folder)
            if holder is not None:
                raise TrainingConfigError(_in_use(folder, holder)) from None
            _take_over(lock)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {socket.gethostname()}\n")
        _HELD.add(folder)
        return
    raise TrainingConfigError(_in_use(folder, "another process"))


def _release_lock(folder: Path) -> None:
    """Delete ``folder/lock`` if this process holds it."""
    if folder not in _HELD:
        return
    _HELD.discard(folder)
    lock = folder / LOCK_FILE
    try:
        if lock.read_text(encoding="utf-8").split()[:1] == [str(os.getpid())]:
            lock.unlink()
    except OSError:
        pass


# --- writing checkpoints -------------------------------------------------------------------


def _tmp_path(path: Path) -> Path:
    """A temporary file of this process next to ``path`` (same folder, same suffix)."""
    return path.with_name(f"tmp-{os.getpid()}-{path.name}")


def _write_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename: a kernel killed mid-save leaves the old file intact."""
    tmp = _tmp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint(folder / "best.keras", monitor, mode="max", save_best_only=True)``
    that, like ``EpochCheckpoint``, leaves out an epoch cut short and writes through a
    temporary file in the same folder, so ``best.keras`` is never half written."""

    def __init__(self, folder: Path, monitor: str):
        self.target = folder / BEST_MODEL
        super().__init__(_tmp_path(self.target), monitor=monitor, mode="max", save_best_only=True)
        self.batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps")
        if steps and self.batches < steps:
            return
        tmp = Path(self.filepath)
        try:
            super().on_epoch_end(epoch, logs)
            if tmp.exists():
                os.replace(tmp, self.target)
        finally:
            tmp.unlink(missing_ok=True)


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


def _shape_mismatch(what: str, mine, theirs) -> str | None:
    """How two lists of variables differ in count or shapes, or ``None``."""
    if len(mine) != len(theirs):
        return f"{len(theirs)} {what} in the checkpoint, {len(mine)} in this model"
    for here, there in zip(mine, theirs, strict=True):
        if tuple(here.shape) != tuple(there.shape):
            name = getattr(here, "path", None) or here.name
            return f"{name} is {tuple(here.shape)} here but {tuple(there.shape)} in the checkpoint"
    return None


def _load_checkpoint(folder: Path, state: dict):
    """The model saved in ``folder/last.keras``, or ``TrainingConfigError`` saying what to do."""
    path, run_name = folder / LAST_MODEL, folder.name
    if not path.is_file():
        raise TrainingConfigError(
            f"{folder / STATE_FILE} says {state['epoch']} epoch(s) were saved, but {path} is "
            f"missing, so this run cannot be resumed. {_start_over(run_name)}"
        )
    try:
        return load_model(path)
    except Exception as err:  # damaged, or written by a Keras this one cannot read
        saved_by = state.get("keras", "an unknown version")
        raise TrainingConfigError(
            f"cannot read the checkpoint {path} ({type(err).__name__}: "
            f"{str(err)[:200]}). It was saved by Keras {saved_by}; this is Keras "
            f"{keras.__version__}. To start this run over, delete it with "
            f"training.forget_run({run_name!r}) or pass resume=False; to keep it, pass "
            f"another run_name; to continue it, use the Keras it was saved with."
        ) from err


def _restore(model, folder: Path, state: dict) -> None:
    """Load weights and optimizer state saved in ``folder/last.keras`` into ``model``;
    a checkpoint of another model or optimizer is refused (and kept) before anything is
    changed."""
    saved = _load_checkpoint(folder, state)
    path, run_name = folder / LAST_MODEL, folder.name
    problem = _shape_mismatch("weight arrays", model.weights, saved.weights)
    if problem is not None:
        raise TrainingConfigError(
            f"the checkpoint {path} belongs to another model ({problem}), so this model "
            f"cannot continue it; the file is kept. {_start_over(run_name)}"
        )
    model.optimizer.build(model.trainable_variables)
    if getattr(saved, "optimizer", None) is None:
        problem = "it holds no optimizer state"
    else:
        problem = _shape_mismatch(
            "optimizer variables", model.optimizer.variables, saved.optimizer.variables
        )
    if problem is not None:
        raise TrainingConfigError(
            f"the checkpoint {path} was trained with another optimizer ({problem}); the file "
            f"is kept. {_start_over(run_name)}"
        )
    try:
        model.set_weights(saved.get_weights())
        for mine, theirs in zip(model.optimizer.variables, saved.optimizer.variables, strict=True):
            mine.assign(theirs)
    except (ValueError, TypeError) as err:
        raise TrainingConfigError(
            f"the checkpoint {path} does not fit this model ({type(err).__name__}: "
            f"{str(err)[:200]}); the file is kept. {_start_over(run_name)}"
        ) from err


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TrainingConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_fit_options(model, epochs, batch_size, patience=()) -> None:
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size)
    for name, value in patience:
        bad = isinstance(value, bool) or not isinstance(value, int) or value < 0
        if value is not None and bad:
            raise TrainingConfigError(f"{name} must be None or an integer >= 0, got {value!r}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise TrainingConfigError("compile the model first: training.compile_model(model)")


def _check_data(x, y, validation_data) -> None:
    """One label per image, in the training data and in ``validation_data``."""
    pairs = [("x and y", x, y)]
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise TrainingConfigError(
                "validation_data must be a pair (x_val, y_val), got "
                f"{type(validation_data).__name__}"
            )
        pairs.append(("validation_data", *validation_data))
    for what, images, labels in pairs:
        if hasattr(images, "__len__") and hasattr(labels, "__len__") and len(images) != len(labels):
            raise TrainingConfigError(
                f"{what} do not match: {len(images)} images but {len(labels)} labels; "
                "pass one label per image"
            )


def _check_callbacks(callbacks) -> list:
    """``callbacks`` as a list (one callback alone is accepted), each a Keras callback."""
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    try:
        cbs = list(callbacks or ())
    except TypeError:
        cbs = [callbacks]
    for cb in cbs:
        if not isinstance(cb, keras.callbacks.Callback):
            raise TrainingConfigError(
                "callbacks must be a list of Keras callbacks such as "
                f"[training.StopTraining()], got {cb!r:.80}"
            )
    return cbs


def _resume(model, run_name, resume, monitor) -> tuple[list[dict], int, keras.callbacks.Callback]:
    """The saved history and epoch of ``run_name`` (restored into ``model``), and the
    ``ModelCheckpoint`` that keeps its best epoch in ``best.keras``. Checkpoints without a
    readable ``state.json`` are refused, never overwritten (unless ``resume=False``)."""
    folder = run_dir(run_name)
    state = read_state(run_name) if resume else None
    history, initial_epoch = [], 0
    if state is None:
        orphans = [name for name in (LAST_MODEL, BEST_MODEL) if (folder / name).exists()]
        if resume and orphans:
            raise TrainingConfigError(
                f"{folder} holds {' and '.join(orphans)} but no {STATE_FILE} saying how many "
                "epochs they hold, so this run cannot be resumed, and it is not overwritten. "
                f"{_start_over(run_name)}"
            )
        _clear(folder)
    else:
        _restore(model, folder, state)
        history, initial_epoch = list(state["history"]), state["epoch"]
    best = _BestCheckpoint(folder, monitor)
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
      While it trains, the run is locked (``lock``): a second process is refused.
    - ``early_stopping_patience``, ``reduce_lr_patience``: notebook 03's ``EarlyStopping``
      (validation accuracy, best weights restored) and ``ReduceLROnPlateau`` (divide by 5).
    - ``callbacks``: more Keras callbacks (``StopTraining``, ...).
    A loss that becomes NaN or infinite stops the run; ``.diverged`` then says so.
    Returns a ``TrainingResult`` (``.model``, ``.history``, ``.frame()``, ``.initial_epoch``).
    """
    patience = [
        ("early_stopping_patience", early_stopping_patience),
        ("reduce_lr_patience", reduce_lr_patience),
    ]
    _check_fit_options(model, epochs, batch_size, patience)
    _check_data(x, y, validation_data)
    cbs = _check_callbacks(callbacks)
    folder = None if run_name is None else run_dir(run_name)
    if folder is not None:
        _take_lock(folder)
    try:
        options = dict(validation_data=validation_data, epochs=epochs, batch_size=batch_size)
        options.update(early=early_stopping_patience, reduce=reduce_lr_patience)
        return _train(model, x, y, run_name, resume, cbs, verbose, **options)
    finally:
        if folder is not None:
            _release_lock(folder)


def _train(
    model, x, y, run_name, resume, cbs, verbose, *, validation_data, epochs, batch_size, early,
    reduce,
) -> TrainingResult:  # fmt: skip
    """The body of ``fit`` once the options are checked and the run is locked."""
    monitor = "val_accuracy" if validation_data is not None else "accuracy"
    history, initial_epoch, folder = [], 0, None
    if run_name is not None:
        folder = run_dir(run_name)
        history, initial_epoch, best = _resume(model, run_name, resume, monitor)
        cbs.append(best)
    recorder, divergence = EpochCheckpoint(history, folder), Divergence()
    cbs += [recorder, divergence]
    cbs += _stopping_callbacks(validation_data is not None, early, reduce)
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
    _check_fraction("warmup_fraction", warmup_fraction)
    _positive_int("total_steps", total_steps)
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
    _positive_int("steps_per_epoch", steps_per_epoch)
    _positive_int("epochs", epochs)
    _check_fraction("weight_decay", options["weight_decay"])
    _check_fraction("label_smoothing", options["label_smoothing"])
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
    _positive_int("epochs", epochs)
    _positive_int("batch_size", options["batch_size"])
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
