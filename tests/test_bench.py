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
    assert bench.plan_epochs(1e-3, 10_000, 100, overhead=20) == 7
    assert bench.plan_epochs(1.0, 10_000, 100) == 1  # never less than one epoch


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
