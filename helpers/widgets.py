"""The hyperparameter panel: choose values, press Train, watch the curves, compare runs.

``TrainingPanel(train=(x, y), validation=(x_val, y_val), build_model=...)`` shows
sliders and menus for the learning rate, batch size, epochs, optimizer, dropout and
augmentation (plus any extra on/off ``toggles`` a notebook passes, e.g. batch norm
in notebook 05), a Train and a Stop button, a progress bar, live learning curves and
a table of every run so far.

How training runs (the design decision):

- A click on **Train** starts training in a background thread, so the notebook stays
  responsive and **Stop** can be clicked: it sets the flag of a
  ``training.StopTraining`` callback and the run ends after the current batch.
- ``panel.train(wait=True)`` trains in the calling thread and returns the run's row;
  tests and notebooks executed top to bottom (nbval) use it.
- A second click while a run is going is refused with a message (one run at a time).

The widgets use only APIs common to ipywidgets 7.7 (Colab) and 8, and carry CSS
classes (``course-panel``, ``course-lr``, ``course-train``, ``course-runs``, ...)
so a browser test can find them.
"""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from collections.abc import Callable, Mapping

from helpers import training

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
LR_RANGE = (1e-5, 1.0)
DROPOUT_MAX = 0.8
RUN_COLUMNS = (
    ("run", "run"),
    ("learning_rate", "lr"),
    ("batch_size", "batch size"),
    ("epochs", "epochs"),
    ("optimizer", "optimizer"),
    ("dropout", "dropout"),
    ("augment", "augment"),
)


class PanelError(ValueError):
    """A panel setting cannot be used; the message says what to change."""


def _css(widget, name: str):
    widget.add_class(name)
    return widget


class TrainingPanel:
    """Hyperparameter panel for a model builder and a dataset (see the module docstring).

    - ``train``/``validation``: ``(x, y)`` uint8 images and integer labels.
    - ``build_model(dropout=..., augment=..., **toggles)`` returns an uncompiled
      Keras model, e.g. ``models.build_recommended``.
    - ``toggles``: extra on/off options with their initial state, passed to
      ``build_model`` by name (``{"batch_norm": True}``); each becomes a checkbox
      with the CSS class ``course-toggle-<name>`` and a column of the run table.
    - ``max_epochs``: upper bound of the epochs slider.
    - ``callbacks``: extra Keras callbacks for every run (``panel.callbacks`` is a list).
    """

    def __init__(
        self,
        train: tuple,
        validation: tuple,
        build_model: Callable,
        *,
        toggles: Mapping[str, bool] | None = None,
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        epochs: int = 5,
        optimizer: str = "adam",
        dropout: float = 0.0,
        augment: bool = False,
        max_epochs: int = 50,
        callbacks=(),
    ):
        import ipywidgets as w

        self.x_train, self.y_train = train
        self.x_val, self.y_val = validation
        if len(self.x_train) != len(self.y_train) or len(self.x_val) != len(self.y_val):
            raise PanelError("train and validation must each be (images, labels) of equal length")
        if not callable(build_model):
            raise PanelError("build_model must be a function that returns a Keras model")
        self.build_model = build_model
        self.toggle_names = tuple(toggles or {})
        self.callbacks = list(callbacks)
        self.runs: list[dict] = []
        self.model = None
        self.redraws = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = None
        style = {"description_width": "110px"}

        lo, hi = LR_RANGE
        self.lr = _css(
            w.FloatLogSlider(
                value=learning_rate,
                base=10,
                min=_log10(lo),
                max=_log10(hi),
                step=0.1,
                description="learning rate",
                readout_format=".1e",
                continuous_update=False,
                style=style,
            ),
            "course-lr",
        )
        self.batch_size = _css(
            w.Dropdown(
                options=list(BATCH_SIZES), value=batch_size, description="batch size", style=style
            ),
            "course-batch-size",
        )
        self.epochs = _css(
            w.IntSlider(
                value=epochs,
                min=1,
                max=max_epochs,
                description="epochs",
                continuous_update=False,
                style=style,
            ),
            "course-epochs",
        )
        self.optimizer = _css(
            w.Dropdown(
                options=list(training.OPTIMIZERS),
                value=optimizer,
                description="optimizer",
                style=style,
            ),
            "course-optimizer",
        )
        self.dropout = _css(
            w.FloatSlider(
                value=dropout,
                min=0.0,
                max=DROPOUT_MAX,
                step=0.05,
                description="dropout",
                continuous_update=False,
                style=style,
            ),
            "course-dropout",
        )
        self.augment = _css(
            w.Checkbox(value=augment, description="augmentation", indent=False),
            "course-augment",
        )
        self.toggles = {
            name: _css(
                w.Checkbox(value=bool(on), description=name.replace("_", " "), indent=False),
                f"course-toggle-{name}",
            )
            for name, on in (toggles or {}).items()
        }
        self.train_button = _css(
            w.Button(description="Train", button_style="success", icon="play"), "course-train"
        )
        self.stop_button = _css(
            w.Button(description="Stop", button_style="danger", icon="stop", disabled=True),
            "course-stop",
        )
        self.progress = _css(
            w.IntProgress(value=0, min=0, max=1, description="progress", style=style),
            "course-progress",
        )
        self.status = _css(w.Label(value="Choose values and press Train."), "course-status")
        self.plot = _css(w.Output(), "course-curves")
        self.runs_html = _css(w.HTML(value=self._runs_table()), "course-runs")
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())

        controls = w.VBox(
            [
                self.lr,
                self.batch_size,
                self.epochs,
                self.optimizer,
                self.dropout,
                w.HBox([self.augment, *self.toggles.values()]),
                w.HBox([self.train_button, self.stop_button]),
                self.progress,
                self.status,
            ]
        )
        self.widget = _css(w.VBox([w.HBox([controls, self.plot]), self.runs_html]), "course-panel")

    # --- what the buttons do --------------------------------------------------------------

    def values(self) -> dict:
        """The current choices, as they will be used for the next run."""
        return {
            "learning_rate": float(self.lr.value),
            "batch_size": int(self.batch_size.value),
            "epochs": int(self.epochs.value),
            "optimizer": self.optimizer.value,
            "dropout": round(float(self.dropout.value), 4),
            "augment": bool(self.augment.value),
            **{name: bool(box.value) for name, box in self.toggles.items()},
        }

    def check(self, values: dict) -> None:
        """Raise ``PanelError`` with a clear message for values that make no sense."""
        lo, hi = LR_RANGE
        if not lo <= values["learning_rate"] <= hi:
            raise PanelError(f"learning rate must be between {lo:g} and {hi:g}")
        if values["batch_size"] not in BATCH_SIZES:
            raise PanelError(f"batch size must be one of {BATCH_SIZES}")
        if values["batch_size"] > len(self.x_train):
            raise PanelError(
                f"batch size {values['batch_size']} is larger than the "
                f"{len(self.x_train)} training images; choose a smaller one"
            )
        if not 1 <= values["epochs"] <= self.epochs.max:
            raise PanelError(f"epochs must be between 1 and {self.epochs.max}")
        if values["optimizer"] not in training.OPTIMIZERS:
            raise PanelError(f"optimizer must be one of {training.OPTIMIZERS}")
        if not 0 <= values["dropout"] <= DROPOUT_MAX:
            raise PanelError(f"dropout must be between 0 and {DROPOUT_MAX}")

    def train(self, wait: bool = False) -> dict | None:
        """Start a run with the current values (what the Train button does).

        In a background thread by default; ``wait=True`` trains in this thread and
        returns the run's row. Returns ``None`` (and says why in the status label)
        when a run is already going or a value is refused."""
        if not self._lock.acquire(blocking=False):
            self.status.value = "A run is already going: wait for it or press Stop."
            return None
        try:
            values = self.values()
            self.check(values)
        except PanelError as err:
            self.status.value = f"Not started: {err}"
            self._lock.release()
            return None
        self._stop = training.StopTraining()
        self.train_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = f"Training run {len(self.runs) + 1}..."
        if wait:
            return self._run(values)
        self._thread = threading.Thread(target=self._run, args=(values,), daemon=True)
        self._thread.start()
        return None

    def stop(self) -> None:
        """Ask the current run to stop after its current batch (the Stop button)."""
        if self._stop is not None and self._lock.locked():
            self._stop.request()
            self.status.value = "Stopping after the current batch..."

    def wait(self, timeout: float | None = None) -> None:
        """Block until a run started in the background has finished."""
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def training(self) -> bool:
        """True while a run is going."""
        return self._lock.locked()

    # --- one run ---------------------------------------------------------------------------

    def _run(self, values: dict) -> dict | None:
        start = time.perf_counter()
        row = None
        try:
            options = {k: values[k] for k in ("dropout", "augment", *self.toggle_names)}
            model = self.build_model(**options)
            training.compile_model(
                model, optimizer=values["optimizer"], learning_rate=values["learning_rate"]
            )
            steps = -(-len(self.x_train) // values["batch_size"])
            self.progress.max = steps * values["epochs"]
            self.progress.value = 0
            history: list[dict] = []
            result = training.fit(
                model,
                self.x_train,
                self.y_train,
                validation_data=(self.x_val, self.y_val),
                epochs=values["epochs"],
                batch_size=values["batch_size"],
                callbacks=[
                    self._live(history),
                    *self.callbacks,
                    self._stop,
                ],  # stop: last, sees clicks made in this batch
                verbose=0,
            )
            self.model = result.model
            last = result.history[-1] if result.history else {}
            row = {
                "run": len(self.runs) + 1,
                **values,
                "epochs_done": len(result.history),
                "val_accuracy": last.get("val_accuracy"),
                "seconds": round(time.perf_counter() - start, 1),
                "stopped": self._stop.stopped,
            }
            self.runs.append(row)
            self.runs_html.value = self._runs_table()
            acc = "n/a" if row["val_accuracy"] is None else f"{row['val_accuracy']:.1%}"
            verb = "stopped" if row["stopped"] else "finished"
            self.status.value = (
                f"Run {row['run']} {verb} after {row['epochs_done']} epoch(s): "
                f"validation accuracy {acc}, {row['seconds']} s."
            )
        except Exception as err:  # shown in the panel; a thread has nobody else to tell
            self.status.value = f"Run failed: {type(err).__name__}: {err}"
            if not self._thread or threading.current_thread() is not self._thread:
                raise
        finally:
            self.train_button.disabled = False
            self.stop_button.disabled = True
            self._lock.release()
        return row

    def _live(self, history: list[dict]):
        """A callback that moves the progress bar and redraws the curves each epoch."""
        import keras

        panel = self

        class Live(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.batches = 0
                self.shown = 0.0

            def show(self):
                self.shown = time.perf_counter()
                panel.progress.value = min(panel.progress.max, self.batches)

            def on_train_batch_end(self, batch, logs=None):
                self.batches += 1
                if time.perf_counter() - self.shown > 0.2:  # at most 5 updates a second
                    self.show()

            def on_epoch_end(self, epoch, logs=None):
                self.show()
                history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
                panel.draw_curves(history)

        return Live()

    # --- drawing ---------------------------------------------------------------------------

    def draw_curves(self, history: list[dict]) -> None:
        """Replace the plot with the learning curves of ``history`` (one row per epoch).

        The figure is rendered to PNG and set as the Output widget's only output in one
        assignment, which is safe from the training thread on ipywidgets 7 and 8."""
        from matplotlib.figure import Figure

        from helpers import plots

        fig = Figure(figsize=(7.5, 3))
        plots.learning_curves(history, fig=fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        png = base64.b64encode(buffer.getvalue()).decode("ascii")
        self.plot.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": png, "text/plain": "<learning curves>"},
                "metadata": {},
            },
        )
        self.redraws += 1

    def _runs_table(self) -> str:
        columns = [
            *RUN_COLUMNS,
            *((name, name.replace("_", " ")) for name in self.toggle_names),
            ("val_accuracy", "val accuracy"),
            ("seconds", "seconds"),
        ]
        head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
        body = []
        for run in self.runs:
            cells = "".join(
                f'<td class="col-{key}">{html.escape(_fmt(key, run.get(key)))}</td>'
                for key, _ in columns
            )
            body.append(f"<tr>{cells}</tr>")
        if not body:
            return '<p class="course-runs-empty">No runs yet.</p>'
        return (
            '<table class="course-runs-table" style="border-collapse:collapse">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )

    def _ipython_display_(self):  # pragma: no cover - display hook of IPython
        from IPython.display import display

        display(self.widget)


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "learning_rate":
        return f"{value:.1e}"
    if key == "val_accuracy":
        return f"{value:.1%}"
    if key == "dropout":
        return f"{value:.2f}"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _log10(value: float) -> float:
    import math

    return math.log10(value)
