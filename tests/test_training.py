"""The training wrapper on tiny data: checkpoints, resume, stop callbacks, tidy histories."""

import json

import keras
import numpy as np
import pytest

from helpers import models, training


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    y = np.arange(64) % 10
    return x, y


def small_model():
    keras.utils.set_random_seed(0)
    model = models.build_recommended(width=4, dropout=0.1)
    return training.compile_model(model, optimizer="adam", learning_rate=1e-3)


class Recorder(keras.callbacks.Callback):
    """Remembers the weights and optimizer step at the start of training."""

    def on_train_begin(self, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]
        self.iterations = int(self.model.optimizer.iterations.numpy())


class InterruptAt(keras.callbacks.Callback):
    """Stands in for a kernel interrupt: raises at the start of an epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_checkpoint_is_written_after_each_epoch(artifacts, tiny):
    result = training.fit(small_model(), *tiny, epochs=2, batch_size=16, run_name="t", verbose=0)
    folder = artifacts / "runs" / "t"
    assert (folder / "last.keras").is_file() and (folder / "best.keras").is_file()
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 2 and [row["epoch"] for row in state["history"]] == [1, 2]
    assert result.epochs_done == 2 and result.initial_epoch == 0
    reloaded = training.load_model(folder / "last.keras")
    for a, b in zip(reloaded.get_weights(), result.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_interrupted_run_resumes_at_the_right_epoch_with_the_same_weights(artifacts, tiny):
    with pytest.raises(KeyboardInterrupt):
        training.fit(
            small_model(),
            *tiny,
            epochs=4,
            batch_size=16,
            run_name="r",
            callbacks=[InterruptAt(2)],
            verbose=0,
        )
    assert training.read_state("r")["epoch"] == 2
    saved = training.load_model(artifacts / "runs" / "r" / "last.keras")
    saved_step = int(saved.optimizer.iterations.numpy())
    assert saved_step == 2 * 4  # 64 images / 16 per batch, two epochs

    recorder = Recorder()
    result = training.fit(
        small_model(), *tiny, epochs=4, batch_size=16, run_name="r", callbacks=[recorder], verbose=0
    )
    assert result.initial_epoch == 2
    assert recorder.iterations == saved_step
    for a, b in zip(recorder.weights, saved.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert training.read_state("r")["epoch"] == 4

    # A third call finds the run complete: it only reloads, no training.
    again = training.fit(small_model(), *tiny, epochs=4, batch_size=16, run_name="r", verbose=0)
    assert again.initial_epoch == 4 and again.epochs_done == 4
    for a, b in zip(again.model.get_weights(), result.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unreadable_checkpoint_gives_a_clear_error_and_is_kept(artifacts, tiny):
    """A checkpoint another Keras wrote (or a damaged one) is not silently overwritten."""
    import keras

    training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="u", verbose=0)
    assert training.read_state("u")["keras"] == keras.__version__
    last = artifacts / "runs" / "u" / "last.keras"
    last.write_bytes(b"not a keras file")
    with pytest.raises(training.TrainingConfigError, match=r"forget_run\('u'\)") as caught:
        training.fit(small_model(), *tiny, epochs=2, batch_size=32, run_name="u", verbose=0)
    assert f"saved by Keras {keras.__version__}" in str(caught.value)
    assert last.read_bytes() == b"not a keras file"  # nothing was lost
    training.forget_run("u")
    fresh = training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="u", verbose=0)
    assert fresh.initial_epoch == 0


def test_resume_false_and_forget_start_over(artifacts, tiny):
    training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="f", verbose=0)
    result = training.fit(
        small_model(), *tiny, epochs=1, batch_size=32, run_name="f", resume=False, verbose=0
    )
    assert result.initial_epoch == 0
    training.forget_run("f")
    assert training.read_state("f") is None


def test_stop_training_stops_after_the_current_batch_and_keeps_whole_epochs(artifacts, tiny):
    stop = training.StopTraining()

    class PressStop(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == 6:  # in the middle of the second epoch (4 batches each)
                stop.request()

    counter = PressStop()
    result = training.fit(
        small_model(),
        *tiny,
        epochs=5,
        batch_size=16,
        run_name="s",
        callbacks=[counter, stop],
        verbose=0,
    )
    assert counter.batches == 6 and stop.stopped and result.stopped
    assert training.read_state("s")["epoch"] == 1  # the cut epoch 2 was not saved
    resumed = training.fit(small_model(), *tiny, epochs=2, batch_size=16, run_name="s", verbose=0)
    assert resumed.initial_epoch == 1 and resumed.epochs_done == 2


def test_time_budget_stops_training(tiny):
    budget = training.TimeBudget(1e-9)
    result = training.fit(small_model(), *tiny, epochs=3, batch_size=16, callbacks=[budget])
    assert budget.stopped and result.stopped
    assert result.epochs_done == 0 and result.epochs_trained == pytest.approx(1 / 4)


def test_one_cycle_warms_up_then_anneals(tiny):
    cycle = training.OneCycle(1e-2, warmup=0.25)
    training.fit(small_model(), *tiny, epochs=2, batch_size=16, callbacks=[cycle], verbose=0)
    lrs = np.array(cycle.history)
    assert len(lrs) == 8
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(1e-3) and lrs.max() <= 1e-2
    assert np.all(np.diff(lrs[: peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    assert training.one_cycle_lr(1.0, 1e-2) == pytest.approx(1e-5)


def test_history_frame_is_tidy(tiny):
    result = training.fit(
        small_model(), *tiny, validation_data=tiny, epochs=2, batch_size=32, verbose=0
    )
    frame = result.frame()
    assert list(frame.columns) == ["epoch", "metric", "split", "value"]
    assert set(frame["metric"]) == {"loss", "accuracy"}
    assert set(frame["split"]) == {"train", "validation"}
    assert len(frame) == 2 * 2 * 2


def test_label_smoothing_model_saves_and_reloads(tmp_path, tiny):
    model = training.compile_model(
        models.build_baseline(), optimizer="sgd", learning_rate=0.01, label_smoothing=0.1
    )
    model.fit(*tiny, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "m.keras")
    again = training.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(tiny[0], verbose=0), model.predict(tiny[0], verbose=0))
    assert again.loss.label_smoothing == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, d: training.fit(m, *d, epochs=0), "epochs"),
        (lambda m, d: training.fit(m, *d, batch_size=-1), "batch_size"),
        (lambda m, d: training.fit(m, *d, run_name="../x"), "run_name"),
        (lambda m, d: training.compile_model(m, optimizer="adagrad"), "optimizer"),
        (lambda m, d: training.compile_model(m, learning_rate=0), "learning_rate"),
        (lambda m, d: training.train_recipe(*d, lr=1), "recipe option"),
    ],
)
def test_bad_options_are_refused(call, message, tiny):
    with pytest.raises(training.TrainingConfigError, match=message):
        call(small_model(), tiny)


def test_uncompiled_model_is_refused(tiny):
    with pytest.raises(training.TrainingConfigError, match="compile"):
        training.fit(models.build_baseline(), *tiny)


def test_train_recipe_on_a_budget(tiny):
    result = training.train_recipe(
        *tiny, model=models.build_recommended(width=4), epochs=2, batch_size=32, verbose=0
    )
    assert result.epochs_done == 2
    assert result.model.loss.label_smoothing == pytest.approx(0.1)
