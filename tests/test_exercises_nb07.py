"""Exercises of notebook 07: the solutions pass, typical wrong answers get their hint."""

import math
from dataclasses import asdict, replace

import keras
import pytest

from exercises import NOT_ATTEMPTED, verdict
from helpers import capstone

RECIPE = capstone.Recipe(widths=(8, 8, 8), epochs=1, batch_size=16, ema_momentum=0.9)


def test_whitening_layer_weights():
    assert verdict("07.1", 2 * 2 * 3 * 24) is None
    assert "use_bias=False" in verdict("07.1", 2 * 2 * 3 * 24 + 24)
    assert "all 3 input channels" in verdict("07.1", 2 * 2 * 24)
    assert "24 filters" in verdict("07.1", 2 * 2 * 3 * 12)
    assert verdict("07.1", ...) == NOT_ATTEMPTED


def _sgd(**changes):
    options = {
        "learning_rate": capstone.lr_schedule(0.1, 100),
        "momentum": RECIPE.momentum,
        "nesterov": True,
        "weight_decay": RECIPE.weight_decay,
        "use_ema": True,
        "ema_momentum": 0.999,
    }
    return keras.optimizers.SGD(**{**options, **changes})


def test_optimizer_with_a_long_weight_average():
    assert verdict("07.2", _sgd(), RECIPE) is None
    assert "1,000" in verdict("07.2", _sgd(ema_momentum=0.99), RECIPE)
    assert "use_ema=True" in verdict("07.2", _sgd(use_ema=False), RECIPE)
    assert "nesterov=True" in verdict("07.2", _sgd(nesterov=False), RECIPE)
    assert "schedule" in verdict("07.2", _sgd(learning_rate=0.1), RECIPE)
    assert "not Adam" in verdict("07.2", keras.optimizers.Adam(), RECIPE)
    assert verdict("07.2", ..., RECIPE) == NOT_ATTEMPTED


def test_learning_rate_of_the_warm_up_cosine_schedule():
    example = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=300, warmup_target=0.2, warmup_steps=100
    )
    at_175 = 0.2 * (1 + math.cos(math.pi * 75 / 300)) / 2
    assert verdict("07.3", example, 0.05, at_175) is None
    assert "still in the warm-up" in verdict("07.3", example, 0.2, at_175)
    forgot_warmup = 0.2 * (1 + math.cos(math.pi * 175 / 300)) / 2
    assert "warm-up ends" in verdict("07.3", example, 0.05, forgot_warmup)
    assert "straight line" in verdict("07.3", example, 0.05, 0.2 * (1 - 75 / 300))


def _result(accuracy, split="validation", **recipe_changes):
    recipe = replace(RECIPE, **recipe_changes)
    return capstone.Result(
        recipe=asdict(recipe),
        split=split,
        accuracy=accuracy,
        accuracy_no_tta=accuracy,
        train_seconds=1.0,
        epochs_run=1,
        images_per_second=1.0,
    )


def test_ema_experiment_is_judged_by_a_rule():
    with_ema, without_ema = _result(0.42), _result(0.40, ema_momentum=0.0)
    assert verdict("07.4", with_ema, without_ema, True) is None
    assert verdict("07.4", _result(0.38), without_ema, False) is None
    assert "compare with_ema.accuracy" in verdict("07.4", with_ema, without_ema, False)
    assert "validation split" in verdict("07.4", _result(0.42, split="test"), without_ema, True)
    assert "same recipe" in verdict("07.4", with_ema, _result(0.40), True)
    other = _result(0.40, ema_momentum=0.0, label_smoothing=0.0)
    assert "change one thing only" in verdict("07.4", with_ema, other, True)
    assert verdict("07.4", with_ema, ..., True) == NOT_ATTEMPTED


@pytest.mark.parametrize("exercise_id", ["07.1", "07.2", "07.3", "07.4"])
def test_solutions_are_registered(exercise_id):
    from exercises import get

    assert "..." not in get(exercise_id).solution
