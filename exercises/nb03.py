"""Exercises of notebook 03 (Training): callbacks, steps per epoch, the learning-rate schedule,
and a learning-rate experiment judged on the validation split."""

from __future__ import annotations

import math
import numbers

from exercises import exercise


@exercise(
    "03.1",
    kind="code",
    title="callbacks for a run judged by its validation loss (EarlyStopping + ModelCheckpoint)",
    solution="""
    best_path = run_folder / "exercise_best.keras"
    my_callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(best_path, monitor="val_loss", save_best_only=True),
    ]
    """,
)
def _callbacks(my_callbacks, *, best_path=None):
    import keras

    if not isinstance(my_callbacks, list | tuple) or not my_callbacks:
        return "give a list of callbacks: [keras.callbacks.EarlyStopping(...), ...]"
    stopping = [c for c in my_callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    saving = [c for c in my_callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)]
    if len(stopping) != 1 or len(saving) != 1:
        return "one keras.callbacks.EarlyStopping and one keras.callbacks.ModelCheckpoint"
    stop, save = stopping[0], saving[0]
    for name, callback in (("EarlyStopping", stop), ("ModelCheckpoint", save)):
        if callback.monitor != "val_loss":
            return f'{name} watches monitor="val_loss" here (got {callback.monitor!r})'
        if callback.mode == "max":
            return f'{name}: a loss is better when lower; leave mode="auto" or use "min"'
    if stop.patience != 5:
        return f"patience is the number of epochs without improvement: 5 (got {stop.patience})"
    if not stop.restore_best_weights:
        return "EarlyStopping(restore_best_weights=True) goes back to the best epoch's weights"
    if not save.save_best_only:
        return "ModelCheckpoint(save_best_only=True) keeps only the best model so far"
    if best_path is None:
        return 'pass best_path to the check too: exercises.check("03.1", ..., best_path=best_path)'
    if str(save.filepath) != str(best_path):
        return (
            f"the ModelCheckpoint writes to {str(save.filepath)!r}: give it best_path "
            f"({str(best_path)!r}) as its file"
        )
    return None


@exercise(
    "03.2",
    kind="predict",
    title="optimizer steps per epoch: 45,000 images in batches of 128",
    solution="""
    n_steps = math.ceil(45_000 / 128)  # 351 full batches and one of 72 images
    """,
)
def _steps(n_steps):
    right = math.ceil(45_000 / 128)
    if not isinstance(n_steps, numbers.Number):
        return "give one number: how many batches make one pass over the 45,000 images"
    if n_steps == right:
        return None
    if n_steps == 45_000 // 128:
        return "351 batches of 128 leave 72 images: they make one more, smaller batch"
    if not float(n_steps).is_integer():
        return "a step is one whole batch: the count is an integer (round which way?)"
    if n_steps in (45_000, 45_000 * 128):
        return "one step = one batch of 128 images: divide the images by the batch size"
    return "images / batch size, rounded up (the last batch may be smaller)"


@exercise(
    "03.3",
    kind="predict",
    title="the learning rate halfway through the cosine decay",
    solution="""
    # cosine factor at half the decay: (1 + cos(pi / 2)) / 2 = 0.5, between the peak and
    # the floor alpha * peak: peak * (alpha + (1 - alpha) * 0.5)
    lr_halfway = PEAK_LR * (1e-3 + (1 - 1e-3) * 0.5)
    """,
)
def _halfway(lr_halfway, schedule):
    right = float(schedule(schedule.warmup_steps + schedule.decay_steps / 2))
    peak = float(schedule.warmup_target or schedule.initial_learning_rate)
    if not isinstance(lr_halfway, numbers.Number):
        return "give one number, a learning rate such as 1e-3"
    if math.isclose(lr_halfway, right, rel_tol=0.02):
        return None
    if math.isclose(lr_halfway, peak, rel_tol=0.02):
        return "that is the peak, reached at the end of the warm-up; the decay has gone halfway"
    if math.isclose(lr_halfway, float(schedule.initial_learning_rate), rel_tol=0.02):
        return "that is where the warm-up starts; the question is about the decay after it"
    return "cosine decay multiplies the peak by (1 + cos(pi * progress)) / 2; progress is 0.5"


@exercise(
    "03.4",
    kind="experiment",
    title="two learning rates compared on the validation split",
    solution="""
    results = {rate: validation_accuracy(rate) for rate in (1e-3, 1e-1)}
    keep = max(results, key=results.get)
    """,
)
def _learning_rates(results, keep):
    if not isinstance(results, dict) or len(results) < 2:
        return "results maps each learning rate to its validation accuracy: {1e-3: ..., 1e-1: ...}"
    if not all(isinstance(rate, numbers.Number) and rate > 0 for rate in results):
        return "the keys are the learning rates you tried, e.g. 1e-3 and 1e-1"
    scores = list(results.values())
    if not all(isinstance(s, numbers.Number) and 0 <= s <= 1 for s in scores):
        return "the values are validation accuracies, fractions between 0 and 1 (from evaluate)"
    if keep not in results:
        return "keep is one of the learning rates you tried (a key of results)"
    if results[keep] < max(scores):
        return "choose by the validation accuracy: keep the rate that scored higher"
    return None
