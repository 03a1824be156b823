"""Notebook 03's exercises: each reference solution passes, a typical wrong answer gets its hint."""

import math

import keras
import pytest

import exercises
from exercises import NOT_ATTEMPTED


def solved(exercise_id: str, **context) -> dict:
    """The names the solution of ``exercise_id`` defines, run with ``context``."""
    names = {"keras": keras, "math": math, **context}
    exec(exercises.get(exercise_id).solution, names)
    return names


def test_03_1_callbacks(tmp_path):
    names = solved("03.1", run_folder=tmp_path)
    best_path = names["best_path"]
    assert exercises.verdict("03.1", names["my_callbacks"], best_path=best_path) is None
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    path = tmp_path / "best.keras"
    by_accuracy = keras.callbacks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    assert "val_loss" in exercises.verdict("03.1", [stop, by_accuracy])
    save = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    impatient = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)
    assert "patience" in exercises.verdict("03.1", [impatient, save])
    forgetful = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)
    assert "restore_best_weights" in exercises.verdict("03.1", [forgetful, save])
    assert "one keras.callbacks.EarlyStopping" in exercises.verdict("03.1", [stop])
    assert exercises.verdict("03.1", ...) == NOT_ATTEMPTED


def test_03_1_the_checkpoint_keeps_the_best_model_in_best_path(tmp_path):
    best_path = tmp_path / "exercise_best.keras"
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    elsewhere = keras.callbacks.ModelCheckpoint(
        tmp_path / "best.keras", monitor="val_loss", save_best_only=True
    )
    assert "best_path" in exercises.verdict("03.1", [stop, elsewhere], best_path=best_path)
    as_string = keras.callbacks.ModelCheckpoint(
        str(best_path), monitor="val_loss", save_best_only=True
    )
    assert exercises.verdict("03.1", [stop, as_string], best_path=best_path) is None
    assert "best_path" in exercises.verdict("03.1", [stop, as_string])  # the cell must pass it


def test_03_2_steps_per_epoch():
    assert exercises.verdict("03.2", solved("03.2")["n_steps"]) is None
    assert "smaller batch" in exercises.verdict("03.2", 351)
    assert "integer" in exercises.verdict("03.2", 45_000 / 128)
    assert "divide" in exercises.verdict("03.2", 45_000)


@pytest.fixture
def schedule():
    peak = 5e-3
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        warmup_target=peak,
        warmup_steps=5,
        decay_steps=31,
        alpha=1e-3,
    )


def test_03_3_learning_rate_halfway(schedule):
    answer = solved("03.3", PEAK_LR=5e-3)["lr_halfway"]
    assert exercises.verdict("03.3", answer, schedule) is None
    assert "peak" in exercises.verdict("03.3", 5e-3, schedule)
    assert "warm-up starts" in exercises.verdict("03.3", 5e-4, schedule)
    assert "cos" in exercises.verdict("03.3", 1e-3, schedule)


def test_03_4_learning_rate_experiment():
    accuracies = {1e-3: 0.31, 1e-1: 0.10}
    names = solved("03.4", validation_accuracy=accuracies.get)
    assert exercises.verdict("03.4", names["results"], names["keep"]) is None
    assert names["keep"] == 1e-3
    assert "higher" in exercises.verdict("03.4", accuracies, 1e-1)
    assert "fractions" in exercises.verdict("03.4", {1e-3: 31.0, 1e-1: 10.0}, 1e-3)
    assert "one of the learning rates" in exercises.verdict("03.4", accuracies, 1e-2)
    assert exercises.verdict("03.4", {1e-3: ..., 1e-1: ...}, ...) == NOT_ATTEMPTED
