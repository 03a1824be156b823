"""Exercises of notebook 07 (Capstone): the whitening layer, the optimizer with weight
averaging, the warm-up + cosine schedule, and an ablation-style experiment."""

from __future__ import annotations

import math

from exercises import exercise


@exercise(
    "07.1",
    kind="predict",
    title="weights of the whitening layer, Conv2D(24, 2, use_bias=False) on an RGB image",
    solution="""
    n_weights = 2 * 2 * 3 * 24  # kernel height x width x input channels x filters, no bias
    """,
)
def _whitening_weights(n_weights):
    right = 2 * 2 * 3 * 24
    if n_weights == right:
        return None
    if n_weights == right + 24:
        return "that counts a bias per filter; this layer has use_bias=False"
    if n_weights == 2 * 2 * 24:
        return "each filter spans all 3 input channels (red, green, blue)"
    if n_weights == 2 * 2 * 3 * 12:
        return "the layer has 24 filters: the 12 eigenvectors and their negatives"
    return "a Conv2D kernel holds kernel height x kernel width x input channels x filters weights"


@exercise(
    "07.2",
    kind="code",
    title="the recipe's SGD with an EMA that averages over about 1,000 steps",
    solution="""
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule,
        momentum=recipe.momentum,
        nesterov=True,
        weight_decay=recipe.weight_decay,
        use_ema=True,
        ema_momentum=0.999,  # the average spans about 1 / (1 - 0.999) = 1,000 steps
    )
    """,
)
def _optimizer(optimizer, recipe):
    import keras

    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return "optimizer must be a Keras optimizer: keras.optimizers.SGD(...)"
    if not isinstance(optimizer, keras.optimizers.SGD):
        return f"the recipe uses SGD, not {type(optimizer).__name__}"
    config = optimizer.get_config()
    if not isinstance(config["learning_rate"], dict):
        return "pass the schedule as learning_rate=schedule, so the rate warms up and decays"
    if not config["nesterov"]:
        return "the recipe uses Nesterov momentum: nesterov=True"
    if not math.isclose(config["momentum"], recipe.momentum):
        return f"momentum should be the recipe's, {recipe.momentum}"
    if not math.isclose(config["weight_decay"] or 0.0, recipe.weight_decay, rel_tol=1e-6):
        return f"weight_decay should be the recipe's, {recipe.weight_decay}"
    if not config["use_ema"]:
        return "weight averaging is switched on with use_ema=True"
    if not math.isclose(config["ema_momentum"], 0.999, rel_tol=1e-9):
        span = 1 / (1 - config["ema_momentum"]) if config["ema_momentum"] < 1 else math.inf
        return (
            f"ema_momentum={config['ema_momentum']} averages over about 1 / (1 - m) = "
            f"{span:,.0f} steps; choose m for about 1,000"
        )
    return None


@exercise(
    "07.3",
    kind="predict",
    title="the learning rate at steps 25 and 175 of a warm-up + cosine schedule",
    solution="""
    example = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=300, warmup_target=0.2, warmup_steps=100
    )
    rate_at_25 = 0.2 * 25 / 100  # warm-up: a straight line from 0 to 0.2 over 100 steps
    rate_at_175 = 0.2 * (1 + math.cos(math.pi * (175 - 100) / 300)) / 2  # 75 of 300 decay steps
    """,
)
def _schedule_rates(example, rate_at_25, rate_at_175):
    import keras

    config = example.get_config()
    peak, warmup = config["warmup_target"], config["warmup_steps"]
    decay = config["decay_steps"]
    right_25 = float(keras.ops.convert_to_numpy(example(25)))
    right_175 = float(keras.ops.convert_to_numpy(example(175)))
    if not math.isclose(rate_at_25, right_25, abs_tol=1e-3):
        if math.isclose(rate_at_25, peak, abs_tol=1e-3):
            return "step 25 is still in the warm-up: the rate climbs in a straight line to the peak"
        return "during the warm-up the rate is initial + (peak - initial) * step / warmup_steps"
    if not math.isclose(rate_at_175, right_175, abs_tol=1e-3):
        from_zero = peak * (1 + math.cos(math.pi * 175 / decay)) / 2
        if math.isclose(rate_at_175, from_zero, abs_tol=1e-3):
            return "the cosine starts when the warm-up ends: count the decay steps from there"
        if math.isclose(rate_at_175, peak * (1 - (175 - warmup) / decay), abs_tol=1e-3):
            return "that is a straight line; the decay follows peak * (1 + cos(pi * t)) / 2"
        return "after the warm-up: peak * (1 + cos(pi * t)) / 2, t = decay steps done / decay_steps"
    return None


@exercise(
    "07.4",
    kind="experiment",
    title="does weight averaging help when training is short? (validation split)",
    solution="""
    short = replace(recipe, epochs=config.pick(fast=1, full=2))
    with_ema = capstone.train((x_train, y_train), (x_val, y_val), short)
    without_ema = capstone.train((x_train, y_train), (x_val, y_val), short.without("ema"))
    ema_helped = with_ema.accuracy > without_ema.accuracy
    """,
)
def _ema_experiment(with_ema, without_ema, ema_helped):
    runs = (with_ema, without_ema)
    if not all(hasattr(run, "accuracy") and hasattr(run, "recipe") for run in runs):
        return "with_ema and without_ema must be what capstone.train(...) returns"
    if any(run.split != "validation" for run in runs):
        return "score both runs on the validation split (x_val, y_val): the test set is for the end"
    changed = {k for k in with_ema.recipe if with_ema.recipe[k] != without_ema.recipe[k]}
    if not changed:
        return "the two runs use the same recipe: switch the EMA off in one, short.without('ema')"
    if changed != {"ema_momentum"} or without_ema.recipe["ema_momentum"] != 0:
        return f"change one thing only, the EMA; these fields differ: {sorted(changed)}"
    if with_ema.recipe["ema_momentum"] == 0:
        return "with_ema should average the weights, without_ema not: swap them"
    if not isinstance(ema_helped, bool):
        return "ema_helped should be True or False"
    if ema_helped != (with_ema.accuracy > without_ema.accuracy):
        return (
            f"compare with_ema.accuracy ({with_ema.accuracy:.2%}) with "
            f"without_ema.accuracy ({without_ema.accuracy:.2%})"
        )
    return None
