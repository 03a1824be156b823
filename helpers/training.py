"""Training plumbing: ``fit`` is ``model.fit`` plus checkpoints that resume, ``StopTraining`` is
the panel's Stop button, and ``train_recipe`` packages notebook 03's recipe.

A run saves after every complete epoch in ``config.artifacts_dir()/runs/<run_name>/``:
``last.keras`` (model and optimizer state), ``best.keras`` and ``state.json`` (epochs done and
the history); an epoch cut short is never saved, so a checkpoint always holds whole epochs.
"""

from __future__ import annotations

import contextlib
import gc
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

from helpers import config, data, models, plots

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

#: The recipe of notebook 03 (``train_recipe``): AdamW at a peak learning rate of 5e-3 with
#: weight decay, a warm-up over the first 15% of the steps then cosine decay to 1/1000 of
#: the peak, label smoothing 0.1, batch 128.
RECIPE_DEFAULTS = dict(
    learning_rate=5e-3, weight_decay=5e-4, label_smoothing=0.1, batch_size=128, warmup_fraction=0.15
)
#: The recipe's model, ``models.build_recommended(**RECIPE_MODEL)``: two convolutions per block
#: with the pooling right after the first, flips, no shifts, no dropout (notebook 03 says why).
RECIPE_MODEL = dict(width=32, convs_per_block=2, pool_early=True, dropout=0.0, translate=0.0)


class TrainingConfigError(ValueError):
    """A training option is out of range; the message says which values are accepted."""


def _is(value, types=int | float) -> bool:
    """``isinstance(value, types)``, with ``True`` and ``False`` not counted as numbers."""
    return isinstance(value, types) and not isinstance(value, bool)


def _check(name: str, value, ok, accepted: str, types=int | float) -> None:
    if not _is(value, types) or not ok(value):
        raise TrainingConfigError(f"{name} must be {accepted}, got {value!r}")


def _fraction(name: str, value) -> None:
    _check(name, value, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _positive_int(name: str, value) -> None:
    _check(name, value, lambda v: v >= 1, "a positive integer", int)


def _check_lr(learning_rate) -> None:
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        accepted = "a number in (0, 10], typically 1e-4 to 1e-1"
        _check("learning_rate", learning_rate, lambda v: 0 < v <= 10, accepted)


# --- compiling -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="course")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy for integer labels with label smoothing, which Keras's sparse loss lacks:
    ``CategoricalCrossentropy(label_smoothing=...)`` with the one-hot encoding done inside."""

    def __init__(self, label_smoothing=0.0, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1]),
            y_pred,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def smoothed_loss(label_smoothing: float = 0.1) -> SparseSmoothedCrossentropy:
    """Sparse categorical cross-entropy with label smoothing, saveable in ``.keras`` files."""
    return SparseSmoothedCrossentropy(label_smoothing)


def compile_model(
    model,
    *,
    optimizer: str = "adam",
    learning_rate=1e-3,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
):
    """Compile ``model`` for integer labels: the optimizer by name (``"adam"``, ``"adamw"``
    with weight decay 1e-4 unless given, ``"sgd"`` with Nesterov momentum 0.9, ``"rmsprop"``),
    cross-entropy (smoothed if ``label_smoothing`` > 0) and accuracy. Returns the model."""
    _check_lr(learning_rate)
    _fraction("weight_decay", weight_decay)
    _fraction("label_smoothing", label_smoothing)
    optimizers = {
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay or 1e-4),
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }
    if optimizer not in optimizers:
        choices = ", ".join(OPTIMIZERS)
        raise TrainingConfigError(f"unknown optimizer {optimizer!r}; choose one of {choices}")
    loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(
        optimizer=optimizers[optimizer](),
        loss=smoothed_loss(label_smoothing) if label_smoothing > 0 else loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def load_model(path):
    """``keras.saving.load_model``; importing this module registers the course's loss."""
    return keras.saving.load_model(path)


def forget_traced_steps() -> None:
    """On TensorFlow, free the training steps of the models already let go of; call it right
    after ``keras.backend.clear_session()`` when several models are trained in a loop.

    TensorFlow registers a gradient function for each traced training step in a global
    registry and never removes it (tensorflow/tensorflow#97697; tf-keras pull request 898
    proposes the same cleanup inside ``clear_session``), so each model trained in one kernel
    keeps its whole compiled step alive: with it, notebook 08's cell of eight architectures
    grew the kernel by 701 MiB in full mode, against 904 MiB without. Dropping the entries is
    safe: a step looks its gradient function up only while it is traced, so a model still in
    use keeps working. Other backends: nothing to do.
    """
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import ops  # the registry has no public API

        registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
        for name in [name for name in registry if name.startswith("CustomGradient-")]:
            del registry[name]
    gc.collect()


# --- callbacks -------------------------------------------------------------------------------


class StopTraining(keras.callbacks.Callback):
    """Stops training after the current batch once ``.request()`` is called (safe from another
    thread, e.g. a Stop button: it only sets an event). ``.stopped`` tells whether it did."""

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
    """``TerminateOnNaN`` that remembers where: ``.epoch`` (1-based) is set when a batch's
    loss became NaN or infinite, and ``.message`` then says what to do."""

    epoch = None
    _current = 0

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


def _write_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename: a kernel killed mid-save leaves the old file intact."""
    tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class EpochCheckpoint(keras.callbacks.Callback):
    """After each *complete* epoch: append a row (epoch, logs, learning rate) to ``history``
    and, with a ``folder``, save ``last.keras`` (with the optimizer state), ``best.keras``
    when ``monitor`` beats ``.best``, and ``state.json``. An epoch cut short (Stop, a time
    budget) is left out; ``.epochs_seen`` counts it as a fraction."""

    def __init__(self, history: list[dict], folder: Path | None = None, monitor="val_accuracy"):
        super().__init__()
        self.history, self.folder, self.monitor = history, folder, monitor
        self.best = None
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
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history.append(row)
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        last = self.folder / LAST_MODEL
        _write_atomically(last, self.model.save)
        score = row.get(self.monitor)
        if score is not None and (self.best is None or score > self.best):
            self.best = score
            _write_atomically(self.folder / BEST_MODEL, lambda tmp: shutil.copyfile(last, tmp))
        state = {"epoch": epoch + 1, "keras": keras.__version__, "history": self.history}
        text = json.dumps(state, indent=1)
        _write_atomically(self.folder / STATE_FILE, lambda tmp: tmp.write_text(text))


# --- run folders: state, lock, resume ---------------------------------------------------------

STATE_FILE = "state.json"
LAST_MODEL = "last.keras"
BEST_MODEL = "best.keras"
LOCK_FILE = "lock"  # "<pid> <host>" of the process training the run
_NAME_CHARS_REFUSED = '/\\:*?"<>|'
_HELD: set[Path] = set()  # run folders whose lock this process holds


def run_dir(run_name: str) -> Path:
    """Where the checkpoints of ``run_name`` live: ``artifacts/runs/<run_name>``."""
    if (
        not isinstance(run_name, str)
        or not 0 < len(run_name) <= 100
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
    if not _is(epoch, int) or epoch < 0:
        return f"'epoch' must be a whole number >= 0, it is {epoch!r}"
    if not isinstance(history, list):
        return f"'history' must be a list of rows, it is {history!r:.80}"
    for row in history:
        if not (isinstance(row, dict) and _is(row.get("epoch"), int)) or not all(
            _is(value) for value in row.values()
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
        problem = _state_problem(state)
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError included
        problem = f"cannot read it ({type(err).__name__}: {err})"
    if problem is None:
        return state
    raise TrainingConfigError(
        f"{path} is damaged: {problem}. This run cannot be resumed and is left as it is. "
        f"{_start_over(run_name)}"
    )


def forget_run(run_name: str) -> None:
    """Delete the checkpoints of ``run_name`` so the next ``fit`` starts from scratch
    (refused while another process or thread trains it)."""
    folder = run_dir(run_name)
    holder = _lock_holder(folder)
    if holder is not None:
        raise TrainingConfigError(_in_use(folder, holder))
    shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process on Windows: assume it runs
        return True
    try:
        os.kill(pid, 0)  # signal 0: checks the process exists, sends nothing
    except PermissionError:  # it exists, owned by another user
        return True
    except (OSError, OverflowError):  # ProcessLookupError included
        return False
    return True


def _lock_holder(folder: Path) -> str | None:
    """Who holds the lock of ``folder`` (a description), or ``None`` when nobody does:
    no lock file, or a stale one left by a process that no longer runs."""
    lock = folder / LOCK_FILE
    for _ in range(20):  # a starting process writes its PID right after creating the file
        try:
            parts = lock.read_text(encoding="utf-8", errors="replace").split()
            age = time.time() - lock.stat().st_mtime
        except OSError:  # no lock (or it vanished meanwhile)
            return None
        if len(parts) >= 2 and parts[0].isdigit() and int(parts[0]) > 0:
            break
        if age >= 10:  # garbage left long ago
            return None
        time.sleep(0.05)
    else:
        return "a process that is just starting"
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
            # Stale: rename it away (only one process can) rather than delete another's.
            grabbed = lock.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
            with contextlib.suppress(OSError):  # another process took it over first
                text = lock.read_text(encoding="utf-8", errors="replace").strip() or "empty"
                os.replace(lock, grabbed)
                grabbed.unlink()
                print(f"note: {lock} was left by a process that no longer runs ({text}); "
                      "taking the run over.")  # fmt: skip
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {socket.gethostname()}\n")
        _HELD.add(folder)
        return
    raise TrainingConfigError(_in_use(folder, "another process"))


def _release_lock(folder: Path) -> None:
    _HELD.discard(folder)
    lock = folder / LOCK_FILE
    with contextlib.suppress(OSError):
        if lock.read_text(encoding="utf-8").split()[:1] == [str(os.getpid())]:
            lock.unlink()


def _mismatch(what: str, mine, theirs) -> str | None:
    """How two lists of variables differ in count or shapes, or ``None``."""
    if len(mine) != len(theirs):
        return f"{len(theirs)} {what} in the checkpoint, {len(mine)} in this model"
    for here, there in zip(mine, theirs, strict=True):
        if tuple(here.shape) != tuple(there.shape):
            name = getattr(here, "path", None) or here.name
            return f"{name} is {tuple(here.shape)} here but {tuple(there.shape)} in the checkpoint"
    return None


def _restore(model, folder: Path, state: dict) -> None:
    """Load the weights and optimizer state of ``folder/last.keras`` into ``model``; a missing
    or unreadable checkpoint, or one of another model or optimizer, raises
    ``TrainingConfigError`` before anything changes, and is kept."""
    path, run_name, again = folder / LAST_MODEL, folder.name, _start_over(folder.name)
    if not path.is_file():
        raise TrainingConfigError(
            f"{folder / STATE_FILE} says {state['epoch']} epoch(s) were saved, but {path} is "
            f"missing, so this run cannot be resumed. {again}"
        )
    try:
        saved = load_model(path)
    except Exception as err:  # damaged, or written by a Keras this one cannot read
        raise TrainingConfigError(
            f"cannot read the checkpoint {path} ({type(err).__name__}: {str(err)[:200]}). "
            f"It was saved by Keras {state.get('keras', 'an unknown version')}; this is Keras "
            f"{keras.__version__}. To start this run over, delete it with "
            f"training.forget_run({run_name!r}) or pass resume=False; to keep it, pass "
            f"another run_name; to continue it, use the Keras it was saved with."
        ) from err
    problem = _mismatch("weight arrays", model.weights, saved.weights)
    if problem is not None:
        raise TrainingConfigError(
            f"the checkpoint {path} belongs to another model ({problem}), so this model "
            f"cannot continue it; the file is kept. {again}"
        )
    model.optimizer.build(model.trainable_variables)
    theirs = None if getattr(saved, "optimizer", None) is None else saved.optimizer.variables
    problem = (
        "it holds no optimizer state"
        if theirs is None
        else _mismatch("optimizer variables", model.optimizer.variables, theirs)
    )
    if problem is not None:
        raise TrainingConfigError(
            f"the checkpoint {path} was trained with another optimizer ({problem}); the file "
            f"is kept. {again}"
        )
    model.set_weights(saved.get_weights())  # every shape was checked above
    for mine, value in zip(model.optimizer.variables, theirs, strict=True):
        mine.assign(value)


def _resume(model, folder: Path, resume: bool, recorder: EpochCheckpoint) -> int:
    """Restore the saved run in ``folder`` into ``model`` and ``recorder`` (history, best
    score); the epoch to start from. Checkpoints without a readable ``state.json`` are
    refused, never overwritten (unless ``resume=False``, which starts over)."""
    state = read_state(folder.name) if resume else None
    if state is None:
        orphans = [name for name in (LAST_MODEL, BEST_MODEL) if (folder / name).exists()]
        if resume and orphans:
            raise TrainingConfigError(
                f"{folder} holds {' and '.join(orphans)} but no {STATE_FILE} saying how many "
                "epochs they hold, so this run cannot be resumed, and it is not overwritten. "
                f"{_start_over(folder.name)}"
            )
        for path in folder.iterdir():  # start over: everything but the lock goes
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.name != LOCK_FILE:
                path.unlink(missing_ok=True)
        return 0
    _restore(model, folder, state)
    recorder.history.extend(state["history"])
    recorder.best = max(
        (row[recorder.monitor] for row in state["history"] if recorder.monitor in row), default=None
    )
    return state["epoch"]


# --- fit ---------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What ``fit`` returns: the model, the whole history (resumed epochs included), the
    epoch it resumed from, the seconds ``fit`` took, whether a callback stopped it, the run
    folder, the epochs this call trained (a cut-short one as a fraction), and ``diverged``:
    a message when the loss became NaN or infinite, else ``None``."""

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


#: A history as a tidy DataFrame (epoch, metric, split, value): ``plots.history_frame``,
#: named here too because notebooks 03-06 call it on results.
history_frame = plots.history_frame


def _check_inputs(model, x, y, validation_data, callbacks) -> list:
    """Refuse an uncompiled model and unmatched data; ``callbacks`` as a new list."""
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise TrainingConfigError("compile the model first: training.compile_model(model)")
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
    if isinstance(callbacks, keras.callbacks.Callback) or not hasattr(callbacks or (), "__iter__"):
        callbacks = [callbacks]
    cbs = list(callbacks or ())
    for cb in cbs:
        if not isinstance(cb, keras.callbacks.Callback):
            raise TrainingConfigError(
                "callbacks must be a list of Keras callbacks such as "
                f"[training.StopTraining()], got {cb!r:.80}"
            )
    return cbs


def _stopping_callbacks(monitor: str, early_stopping_patience, reduce_lr_patience) -> list:
    """Notebook 03's ``EarlyStopping`` and ``ReduceLROnPlateau``, for the patiences given."""
    for name, value in [
        ("early_stopping_patience", early_stopping_patience),
        ("reduce_lr_patience", reduce_lr_patience),
    ]:
        if value is not None:
            _check(name, value, lambda v: v >= 0, "None or an integer >= 0", int)
    cbs = []
    if early_stopping_patience is not None:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=early_stopping_patience,
            restore_best_weights=True,
        ))  # fmt: skip
    if reduce_lr_patience is not None:
        cbs.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor.replace("accuracy", "loss"), factor=0.2, patience=reduce_lr_patience,
            min_lr=1e-6,
        ))  # fmt: skip
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

    - ``run_name``: save every complete epoch in ``artifacts/runs/<run_name>/``; with
      ``resume=True`` the same call again continues from the last saved epoch (weights and
      optimizer state); when all ``epochs`` are done it only reloads. While it trains, the
      run is locked: a second process is refused with ``TrainingConfigError``.
    - ``early_stopping_patience``, ``reduce_lr_patience``: notebook 03's ``EarlyStopping``
      (validation accuracy, best weights restored) and ``ReduceLROnPlateau`` (divide by 5).
    - ``callbacks``: more Keras callbacks (``StopTraining``, ...).
    A loss that becomes NaN or infinite stops the run and ``.diverged`` says so.
    """
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size)
    cbs = _check_inputs(model, x, y, validation_data, callbacks)
    folder = None if run_name is None else run_dir(run_name)
    monitor = "accuracy" if validation_data is None else "val_accuracy"
    recorder, divergence = EpochCheckpoint([], folder, monitor), Divergence()
    cbs += [recorder, divergence]
    cbs += _stopping_callbacks(monitor, early_stopping_patience, reduce_lr_patience)
    if folder is not None:
        _take_lock(folder)
    try:
        initial_epoch = 0 if folder is None else _resume(model, folder, resume, recorder)
        start = time.perf_counter()
        if initial_epoch < epochs:
            model.fit(
                x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size,
                initial_epoch=initial_epoch, callbacks=cbs, verbose=verbose,
            )  # fmt: skip
    finally:
        if folder is not None:
            _release_lock(folder)
    if divergence.message and verbose:
        print(divergence.message)
    stopped = any(getattr(cb, "stopped", False) for cb in cbs) or divergence.epoch is not None
    seconds = time.perf_counter() - start
    return TrainingResult(
        model, recorder.history, initial_epoch, seconds, stopped, folder, recorder.epochs_seen,
        divergence.message,
    )  # fmt: skip


# --- the recipe of notebook 03, packaged -----------------------------------------------------


def recipe_schedule(
    peak: float, total_steps: int, warmup_fraction: float = 0.15
) -> keras.optimizers.schedules.CosineDecay:
    """Notebook 03's schedule: a linear warm-up from ``peak / 10`` to ``peak`` over the first
    ``warmup_fraction`` of ``total_steps``, then a cosine decay to ``peak / 1000``."""
    _check_lr(peak)
    _fraction("warmup_fraction", warmup_fraction)
    _positive_int("total_steps", total_steps)
    warmup_steps = int(warmup_fraction * total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=1e-3,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


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
    adapt_schedule=None,
    **recipe,
) -> TrainingResult:
    """Notebook 03's recipe, packaged: ``models.build_recommended(**RECIPE_MODEL)`` (or
    ``model``) compiled with AdamW on ``recipe_schedule`` over ``epochs``,
    ``CategoricalCrossentropy(label_smoothing=...)`` and accuracy, then ``fit`` on integer
    labels ``y`` turned one-hot. Override any of ``RECIPE_DEFAULTS`` as keywords, e.g.
    ``learning_rate=2e-3``; an unknown one raises ``TrainingConfigError``.
    ``adapt_schedule(schedule)``, if given, returns the schedule to use instead (the
    benchmark's makes it follow the wall clock)."""
    unknown = set(recipe) - set(RECIPE_DEFAULTS)
    if unknown:
        raise TrainingConfigError(
            f"unknown recipe option(s) {sorted(unknown)}; choose from {sorted(RECIPE_DEFAULTS)}"
        )
    options = {**RECIPE_DEFAULTS, **recipe}
    _positive_int("epochs", epochs)
    _positive_int("batch_size", options["batch_size"])
    _fraction("weight_decay", options["weight_decay"])
    _fraction("label_smoothing", options["label_smoothing"])
    steps = epochs * math.ceil(len(x) / options["batch_size"])
    schedule = recipe_schedule(options["learning_rate"], steps, options["warmup_fraction"])
    if adapt_schedule is not None:
        schedule = adapt_schedule(schedule)
    if model is None:
        model = models.build_recommended(**RECIPE_MODEL)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=options["weight_decay"]),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options["label_smoothing"]),
        metrics=["accuracy"],
    )
    if validation_data is not None:
        validation_data = (validation_data[0], one_hot(validation_data[1]))
    return fit(
        model, x, one_hot(y), validation_data=validation_data, epochs=epochs,
        batch_size=options["batch_size"], run_name=run_name, callbacks=callbacks,
        verbose=verbose,
    )  # fmt: skip
