"""Every course model builds and trains, unchanged, on the TensorFlow, JAX and PyTorch backends.

The Keras backend is fixed when ``keras`` is first imported, so each backend runs in
its own Python process (``KERAS_BACKEND=...``). The JAX run is skipped, with the
reason, when JAX is not installed (``pip install "jax[cpu]"``; requirements-dev.txt
has it), the PyTorch run when PyTorch is not (requirements-torch.txt, ``make test-backends``).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh process: build each model, train one epoch on 64 random uint8 images,
# check the loss and the predictions, and print one JSON line with what was seen.
SCRIPT = r"""
import json, math
import numpy as np
import keras
from helpers import accelerate, capstone, config, evaluation, models, training

rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
y = rng.integers(0, 10, size=64)
report = {"backend": keras.backend.backend(), "models": {}, "banner": config.banner(0)}

def check(name, model):
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    probabilities = model.predict(x[:8], verbose=0)
    report["models"][name] = {
        "loss": float(history.history["loss"][-1]),
        "shape": list(probabilities.shape),
        "sums_to_one": bool(np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)),
        "output_dtype": str(model.output.dtype),
    }

for name in ("baseline", "recommended"):
    model = getattr(models, f"build_{name}")()
    training.compile_model(model)
    check(name, model)
# helpers.evaluation.predict_proba (a direct call, or predict on JAX) agrees with predict.
report["predict_proba_matches"] = bool(np.allclose(
    evaluation.predict_proba(model, x[:40], batch_size=16),
    model.predict(x[:40], verbose=0), atol=1e-5,
))

recipe = capstone.Recipe(widths=(8, 8, 16), epochs=1, batch_size=32, ema_momentum=0.9)
for policy in ("float32", "mixed_bfloat16"):
    with accelerate.use_precision(policy):
        model = capstone.build_capstone(recipe, x)
        capstone.compile_capstone(model, recipe, steps_per_epoch=2)
        check(f"capstone-{policy}", model)
# The H100 fast path, run here: bfloat16, XLA, 2 steps per call, the data on the device
# (PyTorch: one step per call and no XLA, which is what the fast path chooses there).
gpu = accelerate.fast_path_settings(
    "GPU", 1, compute_capability=(9, 0), batch_size=32, learning_rate=0.05,
    reference_batch_size=32, steps_per_execution=1 if report["backend"] == "torch" else 2,
)
fitted = capstone.fit(x, y, recipe, fast_path=gpu)
probabilities = fitted.model.predict(x[:8], verbose=0)
report["gpu_path"] = {
    "describe": gpu.describe(),
    "epochs": fitted.epochs_trained,
    "loss": fitted.history["loss"][-1],
    "sums_to_one": bool(np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)),
    "model_input": str(fitted.model.input.dtype),
}
print("REPORT " + json.dumps(report))
"""


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


#: The three backends, each skipped with the way to install it when it is missing.
BACKENDS = [
    "tensorflow",
    pytest.param(
        "jax",
        marks=pytest.mark.skipif(
            _missing("jax"), reason='JAX is not installed: pip install "jax[cpu]"'
        ),
    ),
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(
            _missing("torch"),
            reason="PyTorch is not installed: pip install -r requirements-torch.txt "
            "(make test-backends does it)",
        ),
    ),
]


def run_script(script: str, env_extra: dict) -> dict:
    """Run ``script`` in a fresh Python with ``env_extra`` in its environment; return the
    JSON it prints after ``REPORT ``. (tests/test_distribute.py uses it too.)"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("REPORT "))
    return json.loads(line.removeprefix("REPORT "))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_course_model_trains_on_the_backend(backend):
    report = run_script(SCRIPT, {"KERAS_BACKEND": backend})
    assert report["backend"] == backend
    assert report["predict_proba_matches"]
    # The banner names the backend, and how to switch to another one.
    assert f"Backend: {backend} (chosen by KERAS_BACKEND)" in report["banner"]
    assert "KERAS_BACKEND=" in report["banner"] and "keras.json" in report["banner"]
    seen = report["models"]
    assert {"capstone-float32", "capstone-mixed_bfloat16"} <= set(seen)
    for name in ("baseline", "recommended"):
        assert name in seen, f"helpers.models.build_{name} did not run on {backend}"
    for name, row in seen.items():
        assert row["shape"] == [8, 10], name
        assert row["sums_to_one"], name
        assert 0 < row["loss"] < 10, f"{name}: loss {row['loss']}"
        # Under mixed precision the output layer still computes in float32.
        assert row["output_dtype"] == "float32", name
    gpu = report["gpu_path"]
    assert "mixed_bfloat16" in gpu["describe"] and "training set on the device" in gpu["describe"]
    assert gpu["epochs"] == 1.0 and 0 < gpu["loss"] < 10 and gpu["sums_to_one"]
    assert gpu["model_input"] == "uint8"  # the trained network, not the lookup model
