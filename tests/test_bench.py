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
    # 20 steps of 0.1 s after a first step that stalled 2 s: a 4-s epoch on 1,000 images,
    # of which 2 s (the stall less one step's pace, plus the 0.1 s after the last step) are
    # paid per epoch whatever its size, and 0.1 s every 50 images.
    steps = [(i, 2.1 + 0.1 * i) for i in range(20)]
    speed = bench.steady_speed(6.0, 4.1, steps, 1_000)
    assert speed.per_image == pytest.approx(0.002)
    assert speed.per_epoch == pytest.approx(2.1)
    assert speed.overhead == pytest.approx(1.9)
    assert speed.epoch_seconds(45_000) == pytest.approx(92.1)  # not 45 x 4.1 s = 184.5 s
    # steps_per_execution=5: one mark every 5 steps, same pace
    grouped = bench.steady_speed(6.0, 4.1, [(i, t) for i, t in steps if i % 5 == 4], 1_000)
    assert grouped.per_image == pytest.approx(0.002)
    # a single mark: no steady state to measure, the whole epoch counts per image
    assert bench.steady_speed(6.0, 4.0, [(19, 4.0)], 1_000) == bench.Speed(0.004, 0.0, 2.0)


def test_the_capstone_trains_the_widest_recipe_that_fits_ten_epochs():
    from helpers import capstone

    wide, narrow = capstone.Recipe(), capstone.CPU_RECIPE
    probed = []

    def speed(recipe):  # seconds per image: the wide recipe 4x slower, no compile time
        probed.append(recipe.widths)
        return bench.Speed(4e-3 if recipe is wide else 1e-3)

    # 45,000 images: 45 s an epoch narrow, 180 s wide; 90% of 600 s fits 12 narrow, 3 wide.
    assert bench.widest_that_fits([wide, narrow], speed, 45_000, 600) == (narrow, 12)
    assert probed == [wide.widths, narrow.widths]
    probed.clear()  # an hour fits 18 wide epochs: the narrow recipe is not even probed
    assert bench.widest_that_fits([wide, narrow], speed, 45_000, 3600) == (wide, 18)
    assert probed == [wide.widths]
    assert bench.widest_that_fits([wide], speed, 45_000, 60) == (wide, 1)  # the last, anyway


def test_result_files_name_the_processor():
    def slug(cpu, gpu=None):
        return bench.machine_slug({"cpu": cpu, "cores": 2, "gpu": gpu})

    assert slug("Intel(R) Xeon(R) Processor") == "cpu2-intel-xeon"
    assert slug("Intel(R) Xeon(R) Processor @ 2.80GHz") == "cpu2-intel-xeon-2-80ghz"
    assert slug("AMD EPYC 7B13 64-Core Processor") == "cpu2-amd-epyc-7b13"
    assert slug("x", gpu="NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


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
