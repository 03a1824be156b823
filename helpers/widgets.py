"""The hyperparameter panel: choose values, press Train, watch the curves, compare runs.

``TrainingPanel(train=(x, y), validation=(x_val, y_val), build_model=...)`` shows
sliders and menus for the learning rate, batch size, epochs, optimizer, dropout and
augmentation (plus any extra on/off ``toggles`` a notebook passes, e.g. batch norm
in notebook 05), a Train and a Stop button, a progress bar, live learning curves and
a table of every run so far.

Training runs in ``runner.py`` (a thread, a lock, the training call, the live-update
callback; no widgets there): a click on **Train** starts a run in a background thread, so the
notebook stays responsive and **Stop** can be clicked; ``panel.train(wait=True)`` trains in
the calling thread and returns the run's row (tests, notebooks executed top to bottom); a
second click while a run is going is refused with a message.

The widgets use only APIs common to ipywidgets 7.7 (Colab) and 8, and carry CSS
classes (``course-panel``, ``course-lr``, ``course-train``, ``course-runs``, ...)
so a browser test can find them.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping

import ipywidgets as w

from helpers import runner, training

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
LR_RANGE = (1e-5, 1.0)
DROPOUT_MAX = 0.8
STYLE = {"description_width": "110px"}
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
        self.runner = runner.Runner()
        initial = {"learning_rate": learning_rate, "batch_size": batch_size, "epochs": epochs}
        initial.update(optimizer=optimizer, dropout=dropout, augment=augment)
        self._make_controls(initial, max_epochs, toggles or {})
        self._make_layout()

    def _make_controls(self, initial: dict, max_epochs: int, toggles: Mapping[str, bool]):
        """One widget per choice, each with its CSS class (``course-lr``, ...)."""
        style = STYLE
        common = {"style": style, "continuous_update": False}
        lo, hi = LR_RANGE
        self.lr = _css(w.FloatLogSlider(
            value=initial["learning_rate"], base=10, min=math.log10(lo), max=math.log10(hi),
            step=0.1, description="learning rate", readout_format=".1e", **common,
        ), "course-lr")  # fmt: skip
        self.batch_size = _css(w.Dropdown(
            options=list(BATCH_SIZES), value=initial["batch_size"], description="batch size",
            style=style,
        ), "course-batch-size")  # fmt: skip
        self.epochs = _css(w.IntSlider(
            value=initial["epochs"], min=1, max=max_epochs, description="epochs", **common
        ), "course-epochs")  # fmt: skip
        self.optimizer = _css(w.Dropdown(
            options=list(training.OPTIMIZERS), value=initial["optimizer"],
            description="optimizer", style=style,
        ), "course-optimizer")  # fmt: skip
        self.dropout = _css(w.FloatSlider(
            value=initial["dropout"], min=0.0, max=DROPOUT_MAX, step=0.05,
            description="dropout", **common,
        ), "course-dropout")  # fmt: skip
        self.augment = _css(
            w.Checkbox(value=initial["augment"], description="augmentation", indent=False),
            "course-augment",
        )
        self.toggles = {
            name: _css(
                w.Checkbox(value=bool(on), description=name.replace("_", " "), indent=False),
                f"course-toggle-{name}",
            )
            for name, on in toggles.items()
        }

    def _make_layout(self):
        """Buttons, progress bar, status line, curves and runs table, laid out in one box."""
        self.train_button = _css(
            w.Button(description="Train", button_style="success", icon="play"), "course-train"
        )
        self.stop_button = _css(
            w.Button(description="Stop", button_style="danger", icon="stop", disabled=True),
            "course-stop",
        )
        self.progress = _css(
            w.IntProgress(value=0, min=0, max=1, description="progress", style=STYLE),
            "course-progress",
        )
        self.status = _css(w.Label(value="Choose values and press Train."), "course-status")
        self.plot = _css(w.Output(), "course-curves")
        self.runs_html = _css(w.HTML(value=self._runs_table()), "course-runs")
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        controls = w.VBox([
            self.lr, self.batch_size, self.epochs, self.optimizer, self.dropout,
            w.HBox([self.augment, *self.toggles.values()]),
            w.HBox([self.train_button, self.stop_button]), self.progress, self.status,
        ])  # fmt: skip
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
        busy = "A run is already going: wait for it or press Stop."
        if self.runner.busy:
            self.status.value = busy
            return None
        values = self.values()
        try:
            self.check(values)
        except PanelError as err:
            self.status.value = f"Not started: {err}"
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

    # --- one run ---------------------------------------------------------------------------

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
                f'<td class="col-{key}">{html.escape(_fmt(key, run.get(key), run))}</td>'
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


def _fmt(key: str, value, run: dict | None = None) -> str:
    if key == "val_accuracy" and run and run.get("diverged"):
        return "diverged"
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
