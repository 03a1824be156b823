"""The training side of ``widgets.TrainingPanel``, without widgets: ``Runner`` runs one job at
a time (in a background thread, or in the caller's with ``wait=True``), ``train_run`` is one run
of the panel and ``LiveUpdates`` reports its progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import keras

from helpers import training


class LiveUpdates(keras.callbacks.Callback):
    """Calls ``on_batches(n)`` with the number of batches done (at most 5 times a second and
    at the end of each epoch) and ``on_epoch(history)`` with the rows of the epochs so far."""

    def __init__(self, on_batches: Callable[[int], None], on_epoch: Callable[[list], None]):
        super().__init__()
        self.on_batches, self.on_epoch = on_batches, on_epoch
        self.batches, self.shown, self.history = 0, 0.0, []

    def _show(self) -> None:
        self.shown = time.perf_counter()
        self.on_batches(self.batches)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if time.perf_counter() - self.shown > 0.2:
            self._show()

    def on_epoch_end(self, epoch, logs=None):
        self._show()
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        self.on_epoch(self.history)


def train_run(build_model, values: dict, train, validation, options, callbacks) -> tuple:
    """One run of the panel: ``build_model(**options)``, compiled with ``values``'
    optimizer and learning rate, trained by ``training.fit``. Returns ``(result, row)``,
    the row holding ``values`` and what came out (epochs done, validation accuracy,
    seconds; ``stopped``; ``diverged``, a message when the loss became NaN or infinite)."""
    start = time.perf_counter()
    model = build_model(**options)
    training.compile_model(
        model, optimizer=values["optimizer"], learning_rate=values["learning_rate"]
    )
    result = training.fit(
        model,
        *train,
        validation_data=validation,
        epochs=values["epochs"],
        batch_size=values["batch_size"],
        callbacks=callbacks,
        verbose=0,
    )
    last = result.history[-1] if result.history else {}
    row = {
        **values,
        "epochs_done": len(result.history),
        "val_accuracy": last.get("val_accuracy"),
        "seconds": round(time.perf_counter() - start, 1),
        "stopped": result.stopped and not result.diverged,
        "diverged": result.diverged,
    }
    return result, row


class Runner:
    """One job at a time, in a background thread or in the caller's; ``stop()`` asks the
    running job's ``StopTraining`` callback (``.stop_callback``) to end it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stop_callback: training.StopTraining | None = None

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self._lock.locked()

    def start(self, job: Callable[[training.StopTraining], object], *, wait: bool = False):
        """Run ``job(stop_callback)``; returns ``False`` (nothing started) when one is running.

        With ``wait=True`` it runs here and its return value is returned (exceptions too);
        otherwise in a daemon thread, and ``True`` is returned."""
        if not self._lock.acquire(blocking=False):
            return False
        self.stop_callback = training.StopTraining()
        if wait:
            return self._run(job)
        self._thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self._thread.start()
        return True

    def _run(self, job):
        try:
            return job(self.stop_callback)
        finally:
            self._lock.release()

    def stop(self) -> bool:
        """Ask the running job to stop after its current batch; False when none runs."""
        if self.stop_callback is None or not self.busy:
            return False
        self.stop_callback.request()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until a job started in the background has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
