"""helpers.capstone: the whitening layer, the recipe's options, the schedule and the
optimizer, and a run of the whole recipe (and its ablation, on a validation split) on tiny
data."""

import weakref

import numpy as np
import pytest

from helpers import capstone, data
from helpers.capstone import CapstoneError, Recipe

TINY = Recipe(widths=(8, 8, 16), epochs=2, batch_size=16, learning_rate=0.05, ema_momentum=0.9)


def _smooth_images(n=40, seed=0):
    """Images whose neighbouring pixels and channels are correlated, like photographs."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8, 8, 1))
    big = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)  # 4x4 blocks: strong correlation
    colour = big * [1.0, 0.9, 0.8] + 0.2 * rng.normal(size=(n, 32, 32, 3))
    return np.clip(128 + 40 * colour, 0, 255).astype(np.uint8)


@pytest.fixture
def tiny(tiny_cifar):
    return data.load_cifar10(tiny_cifar)


def test_whitening_kernel_decorrelates_patches():
    images = _smooth_images()
    kernel = capstone.whitening_kernel(images)
    assert kernel.shape == (2, 2, 3, 24)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])  # ± pairs
    x = (images.astype(np.float32) - capstone.CIFAR_MEAN) / capstone.CIFAR_STD
    windows = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))
    rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    before = np.corrcoef(rows.T)
    assert np.abs(before[~np.eye(12, dtype=bool)]).max() > 0.5  # raw patches are correlated
    out = rows @ kernel[..., :12].reshape(12, 12)
    covariance = out.T @ out / len(out)
    # Whitened: unit variance (up to the eps) and no correlation between outputs.
    off_diagonal = covariance[~np.eye(12, dtype=bool)]
    assert np.abs(off_diagonal).max() < 1e-3
    assert np.diag(covariance)[:6] == pytest.approx(1, abs=0.05)


def test_whitening_kernel_refuses_wrong_shapes():
    with pytest.raises(CapstoneError):
        capstone.whitening_kernel(np.zeros((4, 32, 32), np.uint8))


def test_the_model_uses_the_frozen_whitening_layer(tiny):
    model = capstone.build_capstone(TINY, tiny.x_train)
    whiten = model.get_layer("whiten")
    assert not whiten.trainable
    np.testing.assert_allclose(whiten.get_weights()[0], capstone.whitening_kernel(tiny.x_train))
    plain = capstone.build_capstone(TINY.without("whitening"))
    assert plain.get_layer("whiten").trainable
    assert model.input.dtype == "uint8"
    assert model.output_shape == (None, 10)
    with pytest.raises(CapstoneError, match="x_train"):
        capstone.build_capstone(TINY)


@pytest.mark.parametrize(
    ("idea", "field", "value"),
    [
        ("whitening", "whitening", False),
        ("label_smoothing", "label_smoothing", 0.0),
        ("ema", "ema_momentum", 0.0),
        ("tta", "tta", False),
        ("schedule", "schedule", False),
    ],
)
def test_recipe_without_switches_one_idea_off(idea, field, value):
    changed = TINY.without(idea)
    assert getattr(changed, field) == value
    others = {k: v for k, v in vars(changed).items() if k != field}
    assert others == {k: v for k, v in vars(TINY).items() if k != field}


@pytest.mark.parametrize(
    "options",
    [
        {"widths": (8, 8)},
        {"epochs": 0},
        {"batch_size": 2.5},
        {"label_smoothing": 0.9},
        {"learning_rate": 0},
        {"ema_momentum": 1.5},
    ],
)
def test_bad_recipes_are_refused(options):
    with pytest.raises(CapstoneError):
        Recipe(**options)
    with pytest.raises(CapstoneError, match="unknown idea"):
        TINY.without("dropout")


def test_default_recipe_is_small_in_fast_mode(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    fast = capstone.default_recipe()
    monkeypatch.setenv("COURSE_FAST", "0")
    full = capstone.default_recipe("GPU")
    assert full == Recipe()
    assert capstone.default_recipe("CPU") == capstone.CPU_RECIPE
    assert sum(fast.widths) < sum(full.widths) and fast.epochs <= full.epochs


def test_lr_schedule_warms_up_linearly_then_decays_along_a_cosine_to_zero():
    import keras

    schedule = capstone.lr_schedule(0.4, total_steps=100, warmup_fraction=0.25)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 10, 25, 62.5, 100)]
    # warm-up: 0 -> 0.4 over 25 steps; then 0.4 * (1 + cos(pi * t)) / 2 over the 75 others
    assert rates == pytest.approx([0.0, 0.16, 0.4, 0.2, 0.0], abs=1e-6)
    config = schedule.get_config()
    assert (config["warmup_steps"], config["decay_steps"], config["warmup_target"]) == (25, 75, 0.4)
    with pytest.raises(CapstoneError):
        capstone.lr_schedule(0.4, total_steps=0)


def test_optimizer_is_sgd_nesterov_with_weight_decay_and_ema():
    import keras

    optimizer = capstone.make_optimizer(TINY, 0.1)
    config = optimizer.get_config()
    assert isinstance(optimizer, keras.optimizers.SGD) and config["nesterov"] and config["use_ema"]
    assert config["momentum"] == TINY.momentum and config["ema_momentum"] == TINY.ema_momentum
    assert config["weight_decay"] == pytest.approx(TINY.weight_decay)
    assert not capstone.make_optimizer(TINY.without("ema"), 0.1).get_config()["use_ema"]


def test_both_recipes_shrink_the_weights_by_one_percent_per_1024_images_at_the_peak():
    """Keras's decoupled decay shrinks each weight by rate x decay per step; the CPU and GPU
    recipes' decays are set so that both shrink by 1.0% per 1,024 images at the peak rate."""

    def shrink_per_1024_images(recipe):
        return recipe.learning_rate * recipe.weight_decay * 1024 / recipe.batch_size

    assert shrink_per_1024_images(capstone.CPU_RECIPE) == pytest.approx(0.01)
    assert shrink_per_1024_images(capstone.Recipe()) == pytest.approx(0.01)


def test_whitening_layer_is_a_frozen_conv_set_from_the_images():
    images = _smooth_images()
    layer = capstone.whitening_layer(images)
    assert not layer.trainable and not layer.use_bias
    assert layer.count_params() == 2 * 2 * 3 * capstone.WHITEN_FILTERS
    np.testing.assert_allclose(layer.get_weights()[0], capstone.whitening_kernel(images))
    assert capstone.whitening_layer().trainable


def test_random_shift_moves_each_image_within_the_reflected_border():
    shift = capstone.build_capstone(TINY.without("whitening")).get_layer("shift")
    images = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32")
    shifted = np.asarray(shift(images, training=True))
    p = capstone.SHIFT_PIXELS
    padded = np.pad(images, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
    offsets = []
    for image, out in zip(padded, shifted, strict=True):
        found = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if np.array_equal(image[dy : dy + 32, dx : dx + 32], out)
        ]
        assert len(found) == 1  # exactly one window of the padded image
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # independent per image
    np.testing.assert_array_equal(np.asarray(shift(images, training=False)), images)


def test_the_model_keeps_xla_compilation(tiny):
    """keras.layers.RandomTranslation would make Keras switch XLA off for the whole model
    (and run JAX uncompiled); the capstone's own shift layer compiles."""
    import warnings

    model = capstone.build_capstone(TINY, tiny.x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it refuses jit_compile
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile is True


def test_flip_tta_averages_an_image_and_its_mirror(tiny):
    import keras

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    # A "model" that looks only at the left half: a flip changes its answer.
    left = keras.layers.Lambda(lambda t: keras.ops.cast(t[:, :, :16, :], "float32"))(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(left))
    model = keras.Model(inputs, outputs)
    images = tiny.x_test[:4]
    plain = capstone.predict(model, images, tta=False)
    mirrored = capstone.predict(model, np.ascontiguousarray(images[:, :, ::-1]), tta=False)
    np.testing.assert_allclose(capstone.predict(model, images), (plain + mirrored) / 2, atol=1e-6)


def test_train_runs_the_recipe_and_reports_what_it_measured(tiny):
    result = capstone.train((tiny.x_train, tiny.y_train), (tiny.x_test, tiny.y_test), TINY)
    assert result.split == "validation" and result.epochs_run == 2
    assert len(result.history["loss"]) == 2
    assert 0 <= result.accuracy <= 1 and 0 <= result.accuracy_no_tta <= 1
    assert result.train_seconds > 0
    assert result.images_per_second == pytest.approx(2 * 100 / result.train_seconds)
    assert result.fast_path["kind"] == "CPU" and result.fast_path["batch_size"] == 16
    row = result.as_row()
    assert "history" not in row and "model" not in row and row["recipe"]["widths"] == (8, 8, 16)
    # The EMA weights are in the model: its predictions give the reported accuracy, and
    # the flip-TTA model that evaluate() uses agrees.
    labels = np.argmax(capstone.predict(result.model, tiny.x_test), axis=1)
    assert np.mean(labels == tiny.y_test) == pytest.approx(result.accuracy)
    tta = capstone.flip_tta_model(result.model)
    _, accuracy = tta.evaluate(tiny.x_test, tiny.y_test, verbose=0)
    assert accuracy == pytest.approx(result.accuracy, abs=1e-6)


def test_fit_takes_callbacks_and_has_no_time_budget_of_its_own(tiny):
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    recipe = Recipe(widths=(8, 8, 8), epochs=5, batch_size=25, ema_momentum=0.9)
    fitted = capstone.fit(tiny.x_train, tiny.y_train, recipe, callbacks=[Stop()])
    assert fitted.epochs_trained == 1 and fitted.seconds > 0
    assert fitted.model.name == "capstone"
    with pytest.raises(TypeError):
        capstone.fit(tiny.x_train, tiny.y_train, recipe, budget_seconds=3)


def test_ablation_has_one_row_per_idea_scored_on_the_given_split(tiny):
    recipe = Recipe(widths=(8, 8, 8), epochs=1, batch_size=25, ema_momentum=0.9)
    splits = (tiny.x_train, tiny.y_train), (tiny.x_test, tiny.y_test)
    rows = capstone.ablation(*splits, recipe, ideas=("tta", "label_smoothing"))
    assert [r["variant"] for r in rows] == [
        "full recipe",
        "without tta",
        "without label_smoothing",
    ]
    full = rows[0]["validation accuracy"]
    for row in rows:
        assert row["gain"] == pytest.approx(full - row["validation accuracy"], abs=1e-4)
        assert row["idea"]
    assert rows[1]["train_seconds"] == rows[0]["train_seconds"]  # TTA needs no new run
    with pytest.raises(CapstoneError, match="unknown ideas"):
        capstone.ablation(*splits, recipe, ideas=("mixup",))


def test_ablation_frees_each_variant_before_the_next_trains(tiny, monkeypatch):
    """On Binder's 2 GB, two variants' models must not be alive at the same time."""
    recipe = Recipe(widths=(8, 8, 8), epochs=1, batch_size=25, ema_momentum=0.9)
    splits = (tiny.x_train, tiny.y_train), (tiny.x_test, tiny.y_test)
    full = capstone.train(*splits, recipe)
    real_train, variant_models = capstone.train, []

    def train_and_check(*args, **kwargs):
        alive = [ref() for ref in variant_models if ref() is not None]
        assert not alive, f"a previous variant's model is still alive: {alive}"
        result = real_train(*args, **kwargs)
        variant_models.append(weakref.ref(result.model))
        return result

    monkeypatch.setattr(capstone, "train", train_and_check)
    capstone.ablation(*splits, recipe, ideas=("label_smoothing", "ema"), full=full)
    assert len(variant_models) == 2
    assert full.model is not None  # the run passed in is the caller's, left as it was
