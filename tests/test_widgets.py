"""The hyperparameter panel's logic, driven from Python as a browser would drive it."""

import keras
import numpy as np
import pytest

from helpers import models, widgets


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 10
    return (x[:32], y[:32]), (x[32:], y[32:])


def tiny_builder(dropout, augment, **toggles):
    return models.build_recommended(width=4, dropout=dropout, augment=augment, **toggles)


@pytest.fixture
def panel(data):
    train, val = data
    return widgets.TrainingPanel(train, val, tiny_builder, toggles={"batch_norm": True})


def test_train_adds_a_row_with_the_chosen_values_and_redraws(panel):
    panel.lr.value = 2.5e-3
    panel.batch_size.value = 16
    panel.epochs.value = 2
    panel.optimizer.value = "sgd"
    panel.dropout.value = 0.25
    panel.augment.value = True
    panel.toggles["batch_norm"].value = False
    row = panel.train(wait=True)
    assert len(panel.runs) == 1 and row is panel.runs[0]
    assert row["learning_rate"] == pytest.approx(2.5e-3, rel=0.03)
    assert (row["batch_size"], row["epochs"], row["optimizer"]) == (16, 2, "sgd")
    assert row["dropout"] == 0.25 and row["augment"] is True and row["batch_norm"] is False
    assert row["epochs_done"] == 2 and 0 <= row["val_accuracy"] <= 1 and not row["stopped"]
    assert panel.redraws == 2 and panel.plot.outputs[0]["data"]["image/png"]
    assert panel.progress.value == panel.progress.max == 2 * 2
    table = panel.runs_html.value
    assert table.count("<tr") == 2  # header and one run
    for text in ("2.5e-03", ">16<", ">sgd<", "0.25", ">on<", ">off<"):
        assert text in table
    assert "finished" in panel.status.value
    assert not panel.train_button.disabled and panel.stop_button.disabled

    panel.epochs.value = 1
    panel.train(wait=True)
    assert len(panel.runs) == 2 and panel.runs_html.value.count("<tr") == 3
    assert panel.redraws == 3


def test_button_click_trains_in_the_background(panel):
    panel.epochs.value = 1
    panel.batch_size.value = 32
    panel.train_button.click()
    panel.wait(timeout=300)
    assert not panel.training and len(panel.runs) == 1
    assert panel.runs[0]["epochs"] == 1


class ClickDuringTraining(keras.callbacks.Callback):
    def __init__(self, button, after_batches=1):
        super().__init__()
        self.button, self.after, self.batches = button, after_batches, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.after:
            self.button.click()


def test_stop_ends_the_run_after_the_current_batch(panel):
    panel.epochs.value = 3
    panel.batch_size.value = 16
    clicker = ClickDuringTraining(panel.stop_button, after_batches=3)
    panel.callbacks.append(clicker)
    row = panel.train(wait=True)
    assert clicker.batches == 3  # stopped right after the batch in which Stop was pressed
    assert row["stopped"] and row["epochs_done"] == 1 and len(panel.runs) == 1
    assert "stopped" in panel.status.value


def test_a_second_click_while_training_is_ignored(panel):
    panel.epochs.value = 1
    panel.batch_size.value = 16
    clicker = ClickDuringTraining(panel.train_button, after_batches=1)
    panel.callbacks.append(clicker)
    panel.train(wait=True)
    assert clicker.batches == 2 and len(panel.runs) == 1


def test_invalid_values_are_refused_with_a_message(panel):
    panel.dropout.value = 5.0  # the slider clamps what cannot be entered
    assert panel.dropout.value == widgets.DROPOUT_MAX
    panel.lr.value = 100.0
    assert panel.lr.value <= widgets.LR_RANGE[1]
    panel.batch_size.value = 64  # more than the 32 training images
    assert panel.train(wait=True) is None
    assert "larger than the 32 training images" in panel.status.value
    assert panel.runs == [] and not panel.training
    with pytest.raises(Exception):  # noqa: B017 - traitlets refuses a value not offered
        panel.batch_size.value = 100


def test_css_classes_for_the_browser_test(panel):
    parts = {
        "course-lr": panel.lr,
        "course-batch-size": panel.batch_size,
        "course-epochs": panel.epochs,
        "course-optimizer": panel.optimizer,
        "course-dropout": panel.dropout,
        "course-augment": panel.augment,
        "course-train": panel.train_button,
        "course-stop": panel.stop_button,
        "course-progress": panel.progress,
        "course-runs": panel.runs_html,
        "course-status": panel.status,
        "course-panel": panel.widget,
        "course-toggle-batch_norm": panel.toggles["batch_norm"],
    }
    for css, widget in parts.items():
        assert css in widget._dom_classes, css


def test_bad_construction_is_refused(data):
    train, val = data
    with pytest.raises(widgets.PanelError):
        widgets.TrainingPanel(train, (val[0], val[1][:2]), tiny_builder)
    with pytest.raises(widgets.PanelError):
        widgets.TrainingPanel(train, val, "not a builder")


def test_a_diverging_run_says_so_in_the_status_and_the_table(data):
    def diverging(dropout, augment):
        inputs = keras.Input((32, 32, 3), dtype="uint8")
        x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
        probabilities = keras.layers.Dense(10, activation="softmax")(x)
        return keras.Model(inputs, keras.layers.Lambda(lambda p: p * float("nan"))(probabilities))

    panel = widgets.TrainingPanel(*data, diverging, epochs=2, batch_size=16)
    row = panel.train(wait=True)
    assert row["diverged"].startswith("diverged at epoch 1") and not row["stopped"]
    assert "lower the learning rate" in panel.status.value
    assert ">diverged<" in panel.runs_html.value
