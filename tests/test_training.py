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


def test_recipe_schedule_warms_up_then_decays():
    schedule = training.recipe_schedule(1e-2, total_steps=100, warmup_fraction=0.2)
    lrs = np.array([float(schedule(step)) for step in range(101)])
    peak = int(np.argmax(lrs))
    assert peak == 20 and lrs[0] == pytest.approx(1e-3) and lrs.max() == pytest.approx(1e-2)
    assert np.all(np.diff(lrs[: peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    assert lrs[-1] == pytest.approx(1e-5)
    with pytest.raises(training.TrainingConfigError, match="warmup_fraction"):
        training.recipe_schedule(1e-2, 100, warmup_fraction=1.5)


def test_callbacks_are_plain_keras_callbacks():
    for callback in (training.StopTraining(), training.EpochCheckpoint([]), training.Divergence()):
        assert isinstance(callback, keras.callbacks.Callback)
    assert isinstance(training.Divergence(), keras.callbacks.TerminateOnNaN)


def test_a_diverging_run_stops_and_says_so(tiny, capsys):
    keras.utils.set_random_seed(0)
    model = models.build_recommended(width=4)
    # log(0) = -inf: the loss is infinite from the first batch, as after a too-high rate.
    model.compile(optimizer="sgd", loss=lambda y, p: keras.ops.log(0.0 * p[:, 0]))
    result = training.fit(model, *tiny, epochs=3, batch_size=16, verbose=1)
    assert result.stopped and result.epochs_done == 0
    assert result.diverged.startswith("diverged at epoch 1") and "lower the learning rate" in (
        result.diverged
    )
    assert "diverged at epoch 1" in capsys.readouterr().out
    fine = training.fit(small_model(), *tiny, epochs=1, batch_size=16, verbose=0)
    assert fine.diverged is None and not fine.stopped


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


def test_train_recipe_packages_the_notebook_recipe(artifacts, tiny):
    result = training.train_recipe(
        *tiny, validation_data=tiny, model=models.build_recommended(width=4), epochs=2,
        batch_size=32, run_name="recipe", verbose=0,
    )  # fmt: skip
    assert result.epochs_done == 2 and "val_accuracy" in result.history[-1]
    assert isinstance(result.model.loss, keras.losses.CategoricalCrossentropy)
    assert result.model.loss.label_smoothing == pytest.approx(0.1)
    assert isinstance(result.model.optimizer, keras.optimizers.AdamW)
    schedule = result.model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.warmup_steps + schedule.decay_steps == 2 * 2  # 64 images, batch 32
    # The run resumes (or, finished, reloads) from its checkpoint like any other.
    again = training.train_recipe(
        *tiny, model=models.build_recommended(width=4), epochs=2, batch_size=32,
        run_name="recipe", verbose=0,
    )  # fmt: skip
    assert again.initial_epoch == 2
    assert training.one_hot(np.array([2])).tolist() == [[0, 0, 1, 0, 0, 0, 0, 0, 0, 0]]
