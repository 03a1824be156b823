"""The hyperparameter panel of notebooks 03 and 05: choose values, press Train, watch the curves,
compare runs. The training itself runs in ``runner`` (no widgets there). The widgets use only
APIs common to ipywidgets 7.7 (Colab) and 8, and carry CSS classes (``course-panel``,
``course-lr``, ...) so the browser test can find them."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping

import ipywidgets as w
import pandas as pd

from helpers import runner, training

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
LR_RANGE = (1e-5, 1.0)
DROPOUT_MAX = 0.8
STYLE = {"description_width": "110px"}
#: The runs table's columns (key of a run's row: header), before toggles and results.
RUN_COLUMNS = {
    "run": "run",
    "learning_rate": "lr",
    "batch_size": "batch size",
    "epochs": "epochs",
    "optimizer": "optimizer",
    "dropout": "dropout",
    "augment": "augment",
}


class PanelError(ValueError):
    """A panel setting cannot be used; the message says what to change."""


def _css(name: str, widget):
    widget.add_class(name)
    return widget


def _checkbox(name: str, value: bool, description: str):
    return _css(name, w.Checkbox(value=bool(value), description=description, indent=False))


class TrainingPanel:
    """Sliders and menus for learning rate, batch size, epochs, optimizer, dropout and
    augmentation, Train and Stop buttons, a progress bar, live learning curves and a table of
    every run. A click on Train trains in a background thread (Stop stays clickable);
    ``train(wait=True)`` trains in the calling thread and returns the run's row.

    - ``train``/``validation``: ``(x, y)`` uint8 images and integer labels.
    - ``build_model(dropout=..., augment=..., **toggles)`` returns an uncompiled Keras model.
    - ``toggles``: extra on/off options passed to ``build_model`` by name with their initial
      state (``{"batch_norm": True}``): a checkbox (``course-toggle-<name>``) and a column each.
    - ``callbacks``: extra Keras callbacks for every run (``panel.callbacks`` is a list).
    Raises ``PanelError`` for unmatched data or a ``build_model`` that is not callable.
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
        (self.x_train, self.y_train), (self.x_val, self.y_val) = train, validation
        if len(self.x_train) != len(self.y_train) or len(self.x_val) != len(self.y_val):
            raise PanelError("train and validation must each be (images, labels) of equal length")
        if not callable(build_model):
            raise PanelError("build_model must be a function that returns a Keras model")
        self.build_model, self.toggle_names = build_model, tuple(toggles or {})
        self.callbacks, self.runs, self.model, self.redraws = list(callbacks), [], None, 0
        self.runner = runner.Runner()
        common = {"style": STYLE, "continuous_update": False}
        low, high = (math.log10(rate) for rate in LR_RANGE)
        self.lr = _css("course-lr", w.FloatLogSlider(
            value=learning_rate, min=low, max=high, step=0.1, description="learning rate",
            readout_format=".1e", **common,
        ))  # fmt: skip
        self.batch_size = _css("course-batch-size", w.Dropdown(
            options=list(BATCH_SIZES), value=batch_size, description="batch size", style=STYLE
        ))  # fmt: skip
        self.epochs = _css("course-epochs", w.IntSlider(
            value=epochs, min=1, max=max_epochs, description="epochs", **common
        ))  # fmt: skip
        self.optimizer = _css("course-optimizer", w.Dropdown(
            options=list(training.OPTIMIZERS), value=optimizer, description="optimizer",
            style=STYLE,
        ))  # fmt: skip
        self.dropout = _css("course-dropout", w.FloatSlider(
            value=dropout, max=DROPOUT_MAX, step=0.05, description="dropout", **common
        ))  # fmt: skip
        self.augment = _checkbox("course-augment", augment, "augmentation")
        self.toggles = {
            name: _checkbox(f"course-toggle-{name}", on, name.replace("_", " "))
            for name, on in (toggles or {}).items()
        }
        self._make_layout()

    def _make_layout(self):
        """Buttons, progress bar, status line, curves and runs table, laid out in one box."""
        self.train_button = _css(
            "course-train", w.Button(description="Train", button_style="success", icon="play")
        )
        self.stop_button = _css("course-stop", w.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        ))  # fmt: skip
        self.progress = _css("course-progress", w.IntProgress(
            value=0, min=0, max=1, description="progress", style=STYLE
        ))  # fmt: skip
        self.status = _css("course-status", w.Label(value="Choose values and press Train."))
        self.plot = _css("course-curves", w.Output())
        self.runs_html = _css("course-runs", w.HTML(value=self._runs_table()))
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        controls = w.VBox([
            self.lr, self.batch_size, self.epochs, self.optimizer, self.dropout,
            w.HBox([self.augment, *self.toggles.values()]),
            w.HBox([self.train_button, self.stop_button]), self.progress, self.status,
        ])  # fmt: skip
        self.widget = _css("course-panel", w.VBox([w.HBox([controls, self.plot]), self.runs_html]))

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

    def train(self, wait: bool = False) -> dict | None:
        """Start a run with the current values (what the Train button does): in a background
        thread, or with ``wait=True`` in this one, returning the run's row. Returns ``None``
        (and says why in the status line) when a run is already going or a value is refused."""
        busy = "A run is already going: wait for it or press Stop."
        if self.runner.busy:
            self.status.value = busy
            return None
        values = self.values()
        if values["batch_size"] > len(self.x_train):  # the widgets clamp or refuse the rest
            self.status.value = (
                f"Not started: batch size {values['batch_size']} is larger than the "
                f"{len(self.x_train)} training images; choose a smaller one"
            )
            return None
        started = self.runner.start(lambda stop: self._run(values, stop, wait), wait=wait)
        if started is False:
            self.status.value = busy
        return started if wait else None

    def stop(self) -> None:
        """Ask the current run to stop after its current batch (the Stop button)."""
        if self.runner.stop():
            self.status.value = "Stopping after the current batch..."

    def wait(self, timeout: float | None = None) -> None:
        """Block until a run started in the background has finished."""
        self.runner.wait(timeout)

    @property
    def training(self) -> bool:
        """True while a run is going."""
        return self.runner.busy

    def _run(self, values: dict, stop, wait: bool) -> dict | None:
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"Training run {len(self.runs) + 1}..."
        self.progress.max = -(-len(self.x_train) // values["batch_size"]) * values["epochs"]
        self.progress.value = 0
        live = runner.LiveUpdates(self._show_progress, self.draw_curves)
        options = {k: values[k] for k in ("dropout", "augment", *self.toggle_names)}
        try:
            result, row = runner.train_run(
                self.build_model, values, (self.x_train, self.y_train), (self.x_val, self.y_val),
                options, [live, *self.callbacks, stop],  # stop: last, sees this batch's clicks
            )  # fmt: skip
        except Exception as err:  # shown in the panel; a thread has nobody else to tell
            self.status.value = f"Run failed: {type(err).__name__}: {err}"
            if wait:
                raise
            return None
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True
        self.model = result.model
        row = {"run": len(self.runs) + 1, **row}
        self.runs.append(row)
        self.runs_html.value = self._runs_table()
        self.status.value = _outcome(row)
        return row

    def _show_progress(self, batches: int) -> None:
        self.progress.value = min(self.progress.max, batches)

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
        data = {"image/png": png, "text/plain": "<learning curves>"}
        self.plot.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)
        self.redraws += 1

    def _runs_table(self) -> str:
        if not self.runs:
            return '<p class="course-runs-empty">No runs yet.</p>'
        columns = {**RUN_COLUMNS, **{name: name.replace("_", " ") for name in self.toggle_names}}
        columns.update(val_accuracy="val accuracy", seconds="seconds")
        rows = [{label: _fmt(key, run) for key, label in columns.items()} for run in self.runs]
        return pd.DataFrame(rows).to_html(index=False, border=0, classes="course-runs-table")

    def _ipython_display_(self):  # pragma: no cover - display hook of IPython
        from IPython.display import display

        display(self.widget)


def _outcome(row: dict) -> str:
    """The status line after a run: finished, stopped, or diverged (and what to do)."""
    if row.get("diverged"):
        return f"Run {row['run']} {row['diverged']}."
    acc = "n/a" if row["val_accuracy"] is None else f"{row['val_accuracy']:.1%}"
    verb = "stopped" if row["stopped"] else "finished"
    return (
        f"Run {row['run']} {verb} after {row['epochs_done']} epoch(s): "
        f"validation accuracy {acc}, {row['seconds']} s."
    )


def _fmt(key: str, run: dict) -> str:
    """A cell of the runs table: the value of ``key`` in ``run``, as the table shows it."""
    value = run.get(key)
    if key == "val_accuracy" and run.get("diverged"):
        return "diverged"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    formats = {"learning_rate": "{:.1e}", "val_accuracy": "{:.1%}", "dropout": "{:.2f}"}
    return formats.get(key, "{}").format(value)
