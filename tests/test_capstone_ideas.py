"""benchmarks/capstone_ideas.py: airbench's pieces written in Keras (its schedule, its
Lookahead) do what their docstrings say."""

import importlib.util
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "capstone_ideas", ROOT / "benchmarks" / "capstone_ideas.py"
)
ideas = sys.modules["capstone_ideas"] = importlib.util.module_from_spec(_spec)
_mode = os.environ.get("COURSE_FAST")
_spec.loader.exec_module(ideas)  # as a script it sets COURSE_FAST=0 where unset: undo that
if _mode is None:
    os.environ.pop("COURSE_FAST", None)


def test_triangular_schedule_rises_from_a_fifth_and_falls_to_seven_hundredths():
    schedule = ideas.TriangularSchedule(peak=2.0, total_steps=100)
    rate = {step: float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 23, 100)}
    assert rate == pytest.approx({0: 0.4, 23: 2.0, 100: 0.14})


def tiny_model(steps_per_execution):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="mse",
        steps_per_execution=steps_per_execution,
    )
    return model


def test_lookahead_leaves_the_model_on_its_slow_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 3))
    plain, slowed = tiny_model(1), tiny_model(1)
    slowed.set_weights(plain.get_weights())
    lookahead = ideas.Lookahead(total_steps=10)
    plain.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    slowed.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[lookahead])
    for variable, slow in zip(slowed.weights, lookahead.slow, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), slow)
    moved = [
        np.abs(a - b).max() for a, b in zip(plain.get_weights(), slowed.get_weights(), strict=True)
    ]
    assert max(moved) > 1e-4  # the two updates pulled the weights back toward the start


def test_lookahead_refuses_several_steps_per_call():
    x, y = np.zeros((8, 4)), np.zeros((8, 3))
    # On the PyTorch backend Keras itself refuses steps_per_execution > 1 first.
    with pytest.raises(ValueError, match="steps_per_execution"):
        tiny_model(4).fit(x, y, batch_size=2, verbose=0, callbacks=[ideas.Lookahead(4)])
