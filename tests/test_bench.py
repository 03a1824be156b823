"""benchmarks/bench.py: the time budget, the epoch planning, the tutorial model, and a run
that reports validation accuracy (to choose by) apart from test accuracy (for the record)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import models, training

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = sys.modules["bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    return x, np.arange(64) % 10


def test_time_budget_stops_training(tiny):
    budget = bench.TimeBudget(1e-9)
    model = training.compile_model(models.build_recommended(width=4))
    result = training.fit(model, *tiny, epochs=3, batch_size=16, callbacks=[budget], verbose=0)
    assert budget.stopped and result.stopped
    assert result.epochs_done == 0 and result.epochs_trained == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="positive"):
        bench.TimeBudget(0)


def test_plan_epochs_fits_the_schedule_in_the_budget():
    # 1 ms per image, 10,000 images: 10 s an epoch; 90% of 100 s, less 20 s compiling: 7.
    assert bench.plan_epochs(bench.Speed(1e-3, overhead=20), 10_000, 100) == 7
    # with a 2-s stall per epoch, 12 s an epoch: 5
    assert bench.plan_epochs(bench.Speed(1e-3, 2.0, 20), 10_000, 100) == 5
    assert bench.plan_epochs(bench.Speed(1.0), 10_000, 100) == 1  # never less than one epoch


def test_the_probe_tells_the_per_epoch_stall_from_the_steady_pace():
    # A first step of 2.1 s (a 2-s stall), then 19 steps of 0.1 s, and 0.1 s after the last:
    # a 4.1-s epoch on 1,000 images, of which 2.1 s are paid per epoch whatever its size
    # (the epoch less 20 steps at the steady pace), and 0.1 s every 50 images.
    steps = [(i, 2.1 + 0.1 * i) for i in range(20)]
    speed = bench.steady_speed(6.0, 4.1, steps, 1_000)
    assert speed.per_image == pytest.approx(0.002)
    assert speed.per_epoch == pytest.approx(2.1)
    assert speed.overhead == pytest.approx(1.9)
    assert speed.epoch_seconds(45_000) == pytest.approx(92.1)  # not 45 x 4.1 s = 184.5 s
    # steps_per_execution=5: one mark every 5 steps, same pace
    grouped = bench.steady_speed(6.0, 4.1, [(i, t) for i, t in steps if i % 5 == 4], 1_000)
    assert grouped.per_image == pytest.approx(0.002)
    # steps_per_execution=8 on 10 steps: Keras marks the short last execution as step 15
    short = bench.steady_speed(6.0, 4.1, [(7, 2.8), (15, 3.0)], 1_000, step_count=10)
    assert short.per_image == pytest.approx(0.001)  # (3.0 - 2.8) s for steps 8-9: 0.1 s each
    assert short.per_epoch == pytest.approx(3.1)
    # a single mark: no steady state to measure, the whole epoch counts per image
    assert bench.steady_speed(6.0, 4.0, [(19, 4.0)], 1_000) == bench.Speed(0.004, 0.0, 2.0)


def test_the_capstone_trains_the_widest_recipe_that_fits_ten_epochs():
    from helpers import capstone

    wide, narrow = bench.Candidate(capstone.Recipe()), bench.Candidate(capstone.CPU_RECIPE)
    probed = []

    def speed_of(candidate):  # seconds per image: the wide recipe 4x slower, no compile time
        probed.append(candidate.recipe.widths)
        return bench.Speed(4e-3 if candidate is wide else 1e-3)

    def choose(candidates, budget):
        candidate, speed = bench.widest_that_fits(candidates, speed_of, 45_000, budget)
        return candidate, bench.plan_epochs(speed, 45_000, budget)

    # 45,000 images: 45 s an epoch narrow, 180 s wide; 90% of 600 s fits 12 narrow, 3 wide.
    assert choose([wide, narrow], 600) == (narrow, 12)
    assert probed == [wide.recipe.widths, narrow.recipe.widths]
    probed.clear()  # an hour fits 18 wide epochs: the narrow recipe is not even probed
    assert choose([wide, narrow], 3600) == (wide, 18)
    assert probed == [wide.recipe.widths]
    assert choose([wide], 60) == (wide, 1)  # the last, anyway


def test_a_cpu_with_bfloat16_matrix_units_tries_the_wide_recipe_in_bfloat16_first(monkeypatch):
    import keras

    from helpers import accelerate, capstone

    amx = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert bench.cpu_multiplies_bfloat16(amx)
    assert not bench.cpu_multiplies_bfloat16("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert not bench.cpu_multiplies_bfloat16("")

    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.setattr(capstone, "default_recipe", lambda kind=None: capstone.CPU_RECIPE)
    wide = capstone.Recipe()
    with_amx = bench.capstone_candidates(bfloat16_cpu=True)
    expected = [(wide, "mixed_bfloat16"), (wide, None), (capstone.CPU_RECIPE, None)]
    if keras.backend.backend() != "tensorflow":  # measured on TensorFlow only
        expected = expected[1:]
    assert [(c.recipe, c.precision) for c in with_amx] == expected
    without = bench.capstone_candidates(bfloat16_cpu=False)
    assert [(c.recipe, c.precision) for c in without] == [(wide, None), (capstone.CPU_RECIPE, None)]
    no_ema = bench.capstone_candidates(bfloat16_cpu=False, without=("ema",))
    assert [c.recipe.ema_momentum for c in no_ema] == [0.0, 0.0]  # "capstone-no-ema"
    assert [c.recipe.without("ema") for c in without] == [c.recipe for c in no_ema]
    first = with_amx[0].fast_path()  # the policy set, on the device's other settings
    assert first.precision == (expected[0][1] or accelerate.fast_path_settings().precision)
    assert first.batch_size == wide.batch_size


def test_result_files_name_the_processor():
    def slug(cpu, gpu=None):
        return bench.machine_slug({"cpu": cpu, "cores": 2, "gpu": gpu})

    assert slug("Intel(R) Xeon(R) Processor") == "cpu2-intel-xeon"
    assert slug("Intel(R) Xeon(R) Processor @ 2.80GHz") == "cpu2-intel-xeon-2-80ghz"
    assert slug("AMD EPYC 7B13 64-Core Processor") == "cpu2-amd-epyc-7b13"
    assert slug("x", gpu="NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    # Two machines named "AMD EPYC", one with AVX-512 and one with AVX2 only:
    avx512 = bench.vector_unit(bench.cpu_flags("flags\t: fpu avx2 avx512f avx512_bf16\n"))
    avx2 = bench.vector_unit(bench.cpu_flags("flags\t: fpu sse2 avx avx2 fma\n"))
    assert (avx512, avx2) == ("avx512", "avx2")
    assert bench.vector_unit(bench.cpu_flags("flags\t: avx2 avx512f amx_tile\n")) == "amx"
    assert bench.vector_unit(set()) is None
    epyc = {"cpu": "AMD EPYC", "cores": 2, "gpu": None}
    assert bench.machine_slug({**epyc, "vector_unit": avx512}) == "cpu2-amd-epyc-avx512"
    assert bench.machine_slug({**epyc, "vector_unit": avx2}) == "cpu2-amd-epyc-avx2"
    assert bench.machine_slug({**epyc, "vector_unit": None}) == "cpu2-amd-epyc"


def test_tutorial_model_parameter_count():
    model = bench.build_tutorial()
    assert model.count_params() == 122_570 and model.input.dtype == "uint8"
    assert model.get_layer("conv3").output.shape[1:] == (4, 4, 64)


def test_a_run_reports_validation_and_test_accuracy(tiny_cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path / "artifacts"))
    out = tmp_path / "result.json"
    argv = ["--recipes", "tutorial", "--budget-seconds", "2", "--out", str(out)]
    assert bench.main([*argv, "--data-dir", str(tiny_cifar)]) == 0
    payload = json.loads(out.read_text())
    (row,) = payload["results"]
    assert 0 <= row["val_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
    assert payload["images"] == {"train": 90, "validation": 10, "test": 20}
    assert "val_accuracy" in payload["splits"] and "test_accuracy" in payload["splits"]
    assert "val acc" in bench.table([row]) and "choose by it" in bench.table([row])


def _cosine(steps=100):
    """A cosine decay from 0.1 to 0 over ``steps``, no warm-up."""
    import keras

    return keras.optimizers.schedules.CosineDecay(0.1, decay_steps=steps)


def test_the_clock_schedule_gives_the_rate_of_the_share_of_the_budget_spent():
    base = _cosine(100)
    clock = bench.WallClock(10.0)
    schedule = clock.drive(base)
    assert clock.schedules == [schedule] and schedule.total_steps == 100
    assert schedule.get_config() == base.get_config()  # a compiled model can be saved
    for share in (0.0, 0.25, 0.5, 1.0):
        schedule.progress.assign(share)
        expected = float(base(100 * share))
        assert float(schedule(step=7)) == pytest.approx(expected, abs=1e-7)  # not base(7)


def test_the_compiled_training_step_reads_the_clock_live():
    import keras

    if keras.backend.backend() not in bench.CLOCK_BACKENDS:
        pytest.skip("this backend's compiled step cannot read the clock (see CLOCK_BACKENDS)")
    schedule = bench.WallClock(10.0).drive(_cosine(100))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    before = [w.copy() for w in model.get_weights()]
    schedule.progress.assign(1.0)  # the budget spent: the rate is 0, nothing moves
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    schedule.progress.assign(0.5)  # the same compiled step, now at half the peak rate
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(before[0], model.get_weights()[0])


def test_the_wall_clock_moves_progress_and_stops_on_time(tiny):
    clock = bench.WallClock(1e-9)
    schedule = clock.drive(_cosine(100))
    model = training.compile_model(models.build_recommended(width=4))
    result = training.fit(model, *tiny, epochs=3, batch_size=16, callbacks=[clock], verbose=0)
    assert clock.stopped and result.epochs_trained == pytest.approx(1 / 4)
    assert float(schedule.progress) == 1.0


def test_schedule_plan_follows_the_clock_where_the_backend_can(monkeypatch):
    speed = bench.Speed(1e-3)  # 45 s an epoch of 45,000 images: 12 fit 90% of 600 s
    monkeypatch.setattr(bench.keras.backend, "backend", lambda: "tensorflow")
    epochs, stop, adapt, settings = bench.schedule_plan(speed, 45_000, 600)
    assert (epochs, settings["planned_epochs"]) == (2 * 12, 12)
    assert isinstance(stop, bench.WallClock) and stop.seconds == pytest.approx(582)
    assert adapt == stop.drive and settings["schedule"] == "wall clock, 582 s"
    monkeypatch.setattr(bench.keras.backend, "backend", lambda: "jax")
    epochs, stop, adapt, settings = bench.schedule_plan(speed, 45_000, 600)
    assert (epochs, adapt, settings["schedule"]) == (12, None, "steps")
    assert type(stop) is bench.TimeBudget and stop.seconds == 600
