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


# --- a run folder is never overwritten silently (issue 13) ------------------------------------


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_checkpoints_without_state_are_refused_and_kept(artifacts, tiny):
    """state.json deleted, last.keras and best.keras kept: fit used to start over silently."""
    training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="o", verbose=0)
    folder = artifacts / "runs" / "o"
    (folder / "state.json").unlink()
    before = _snapshot(folder)
    assert {"last.keras", "best.keras"} <= set(before)
    with pytest.raises(training.TrainingConfigError) as caught:
        training.fit(small_model(), *tiny, epochs=2, batch_size=32, run_name="o", verbose=0)
    message = str(caught.value)
    assert "no state.json" in message and "forget_run('o')" in message
    assert "another run_name" in message
    assert _snapshot(folder) == before  # nothing overwritten
    training.forget_run("o")
    assert training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="o", verbose=0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "cannot read"),
        ("", "cannot read"),
        ("[1, 2]", "not a dict"),
        ('{"history": []}', "'epoch'"),
        ('{"epoch": "2", "history": []}', "'epoch'"),
        ('{"epoch": 1}', "'history'"),
        ('{"epoch": 1, "history": [{"epoch": "one"}]}', "history row"),
        ('{"epoch": 1, "history": [{"epoch": 1, "loss": "low"}]}', "history row"),
    ],
)
def test_damaged_state_is_refused_and_kept(artifacts, tiny, text, problem):
    """A damaged state.json used to end in a raw JSONDecodeError, KeyError or TypeError."""
    training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="d", verbose=0)
    folder = artifacts / "runs" / "d"
    (folder / "state.json").write_text(text)
    before = _snapshot(folder)
    for call in (
        lambda: training.read_state("d"),
        lambda: training.fit(small_model(), *tiny, epochs=2, batch_size=32, run_name="d"),
    ):
        with pytest.raises(training.TrainingConfigError, match=problem) as caught:
            call()
        assert str(folder / "state.json") in str(caught.value)
        assert "forget_run('d')" in str(caught.value) and "another run_name" in str(caught.value)
    assert _snapshot(folder) == before


def test_checkpoint_of_another_model_with_as_many_weights_is_refused(artifacts, tiny):
    """Same number of weight arrays, other shapes: used to be a raw Keras shape error."""
    training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="m", verbose=0)
    folder = artifacts / "runs" / "m"
    before = _snapshot(folder)
    wider = training.compile_model(models.build_recommended(width=8, dropout=0.1))
    assert len(wider.weights) == len(small_model().weights)
    with pytest.raises(training.TrainingConfigError, match="belongs to another model") as caught:
        training.fit(wider, *tiny, epochs=2, batch_size=32, run_name="m", verbose=0)
    assert str(folder / "last.keras") in str(caught.value)
    assert "forget_run('m')" in str(caught.value) and "another run_name" in str(caught.value)
    assert _snapshot(folder) == before


def test_missing_last_checkpoint_is_refused(artifacts, tiny):
    training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="l", verbose=0)
    (artifacts / "runs" / "l" / "last.keras").unlink()
    with pytest.raises(training.TrainingConfigError, match=r"last.keras is missing"):
        training.fit(small_model(), *tiny, epochs=2, batch_size=32, run_name="l", verbose=0)


def test_stop_in_the_first_epoch_leaves_nothing_to_refuse(artifacts, tiny):
    """A cut-short epoch is not saved, best.keras included, so the rerun simply starts."""
    stop = training.StopTraining()
    stop.request()
    result = training.fit(
        small_model(), *tiny, epochs=2, batch_size=16, run_name="e", callbacks=[stop], verbose=0
    )
    assert result.stopped and not (artifacts / "runs" / "e" / "best.keras").exists()
    again = training.fit(small_model(), *tiny, epochs=1, batch_size=16, run_name="e", verbose=0)
    assert again.initial_epoch == 0 and again.epochs_done == 1


# --- one process per run (issue 13) ---------------------------------------------------------

CHILD = """
import os, pathlib, sys, time
import numpy as np, keras
from helpers import models, training
keras.utils.set_random_seed(0)
model = training.compile_model(models.build_recommended(width=4))
x = np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
y = np.arange(256) % 10
ready = pathlib.Path(sys.argv[1])
(ready / sys.argv[2]).touch()
deadline = time.time() + 120
while len(list(ready.iterdir())) < 2 and time.time() < deadline:
    time.sleep(0.005)
try:
    result = training.fit(model, x, y, epochs=4, batch_size=32, run_name="shared", verbose=0)
except training.TrainingConfigError as err:
    print("REFUSED", err)
    sys.exit(3)
print("TRAINED", result.epochs_done)
"""


def test_two_processes_on_one_run_one_is_refused_clearly(artifacts, tmp_path):
    """Two processes training the same run_name: one used to die with FileNotFoundError."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "KERAS_BACKEND": "tensorflow"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    (ready := tmp_path / "ready").mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ready), str(i)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outputs
    refused = next(out for p, out in zip(procs, outputs, strict=True) if p.returncode == 3)
    assert "run 'shared' is in use by another process: process" in refused
    assert "pass another run_name" in refused
    folder = artifacts / "runs" / "shared"
    assert training.read_state("shared")["epoch"] == 4
    assert sorted(p.name for p in folder.iterdir()) == ["best.keras", "last.keras", "state.json"]
    training.load_model(folder / "last.keras")


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_lock_refuses_and_a_stale_one_is_taken_over(artifacts, tiny, capsys):
    import os
    import socket

    folder = artifacts / "runs" / "k"
    folder.mkdir(parents=True)
    lock = folder / "lock"
    lock.write_text(f"{os.getppid()} {socket.gethostname()}\n")  # a live process, not us
    for call in (
        lambda: training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="k"),
        lambda: training.forget_run("k"),
    ):
        with pytest.raises(training.TrainingConfigError, match="in use by another process"):
            call()
    assert lock.exists()
    lock.write_text(f"{_dead_pid()} {socket.gethostname()}\n")
    result = training.fit(small_model(), *tiny, epochs=1, batch_size=32, run_name="k", verbose=0)
    assert result.epochs_done == 1 and "no longer runs" in capsys.readouterr().out
    assert not lock.exists()  # released at the end


def test_the_lock_is_released_on_error_and_held_while_training(artifacts, tiny):
    seen = []

    class TryToForget(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            with pytest.raises(training.TrainingConfigError, match="in another thread"):
                training.forget_run("h")
            seen.append((artifacts / "runs" / "h" / "lock").exists())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.fit(
            small_model(), *tiny, epochs=2, run_name="h", callbacks=[TryToForget()], verbose=0
        )
    assert seen == [True]
    assert not (artifacts / "runs" / "h" / "lock").exists()
    assert training.fit(small_model(), *tiny, epochs=1, run_name="h", verbose=0).epochs_done == 1


# --- other options a learner can get wrong ----------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, d: training.fit(m, *d, run_name=".."), "run_name"),
        (lambda m, d: training.fit(m, *d, run_name="a/../b"), "run_name"),
        (lambda m, d: training.fit(m, *d, run_name=3), "run_name"),
        (lambda m, d: training.fit(m, *d, run_name=""), "run_name"),
        (lambda m, d: training.fit(m, *d, run_name="x" * 300), "run_name"),
        (lambda m, d: training.fit(m, *d, run_name="a\nb"), "run_name"),
        (lambda m, d: training.fit(m, *d, epochs=-3), "epochs"),
        (lambda m, d: training.fit(m, *d, epochs=2.5), "epochs"),
        (lambda m, d: training.fit(m, d[0], d[1][:10]), "64 images but 10 labels"),
        (lambda m, d: training.fit(m, *d, validation_data=d[0]), "validation_data"),
        (lambda m, d: training.fit(m, *d, callbacks=[print]), "callbacks"),
        (lambda m, d: training.fit(m, *d, early_stopping_patience=-1), "early_stopping"),
        (lambda m, d: training.compile_model(m, label_smoothing="a"), "label_smoothing"),
        (lambda m, d: training.compile_model(m, weight_decay=-1), "weight_decay"),
        (lambda m, d: training.train_recipe(*d, batch_size=0), "batch_size"),
        (lambda m, d: training.train_recipe(*d, epochs=0), "epochs"),
        (lambda m, d: training.train_recipe(*d, label_smoothing=2), "label_smoothing"),
        (lambda m, d: training.recipe_schedule(1e-3, total_steps=-5), "total_steps"),
    ],
)
def test_more_bad_options_are_refused(call, message, tiny, artifacts):
    with pytest.raises(training.TrainingConfigError, match=message):
        call(small_model(), tiny)
    assert not (artifacts / "runs").exists() or not any((artifacts / "runs").iterdir())


def test_a_single_callback_need_not_be_in_a_list(tiny):
    stop = training.StopTraining()
    result = training.fit(small_model(), *tiny, epochs=1, batch_size=32, callbacks=stop, verbose=0)
    assert result.epochs_done == 1


def _live_training_graphs() -> int:
    import gc

    gc.collect()
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow leak")
def test_forget_traced_steps_lets_go_of_the_models_trained_before(tiny):
    x, y = tiny
    counts = []
    for _ in range(3):
        keras.backend.clear_session()
        training.forget_traced_steps()
        small_model().fit(x, y, epochs=1, batch_size=32, verbose=0)
        counts.append(_live_training_graphs())
    keras.backend.clear_session()
    training.forget_traced_steps()
    # keras.backend.clear_session() alone leaves each model's traced step alive: 2, 4, 6 ...
    assert counts[2] == counts[0] and _live_training_graphs() == 0, counts
