"""helpers.config: the mode switch, seeding, platform detection and the banner."""

import sys
import types

import numpy as np
import pytest

from helpers import colab, config


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_fast_values(value):
    assert config.current_mode({"COURSE_FAST": value}) is config.FAST


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_full_values(value):
    assert config.current_mode({"COURSE_FAST": value}) is config.FULL


def test_unset_is_full():
    assert config.current_mode({}) is config.FULL


@pytest.mark.parametrize("value", ["2", "fast", "ture"])
def test_invalid_mode_is_a_clear_error(value):
    with pytest.raises(ValueError, match=r"COURSE_FAST=.* is not a valid mode.*COURSE_FAST=1"):
        config.current_mode({"COURSE_FAST": value})


def test_pick_follows_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert config.pick(fast=1, full=30) == 1
    monkeypatch.setenv("COURSE_FAST", "0")
    assert config.pick(fast=1, full=30) == 30


def test_set_seed_makes_numpy_and_keras_repeatable():
    import keras

    config.set_seed(7)
    a = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    config.set_seed(7)
    b = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        config.set_seed(seed)


def test_platform_detection(monkeypatch):
    assert config.detect_platform({"BINDER_LAUNCH_HOST": "https://mybinder.org/"}) == "binder"
    assert config.detect_platform({"COLAB_RELEASE_TAG": "release-colab"}) == "colab"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert config.detect_platform({}) == "colab"
    monkeypatch.delitem(sys.modules, "google.colab")
    assert config.detect_platform({}) == "local"


def test_setup_prints_banner_with_mode_and_device(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert config.setup(seed=5) is config.FAST
    out = capsys.readouterr().out
    assert "Keras 3." in out and "backend: tensorflow" in out
    assert "Device: CPU" in out and "Platform: local" in out
    assert "Mode: fast (2,000 train / 1,000 test images" in out and "seed 5" in out


def test_banner_says_how_to_switch_the_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no keras.json there
    assert "Backend: tensorflow (" in config.banner(seed=1)
    env = {"KERAS_HOME": str(tmp_path)}
    local = config.backend_switch_hint("local", env)
    assert "chosen by Keras's default" in local
    assert "KERAS_BACKEND=jax" in local and "before Keras is imported" in local
    assert "make lab BACKEND=jax" in local and "~/.keras/keras.json" in local
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert "chosen by ~/.keras/keras.json" in config.backend_switch_hint("local", env)
    env["KERAS_BACKEND"] = "torch"
    assert "chosen by KERAS_BACKEND" in config.backend_switch_hint("local", env)
    colab = config.backend_switch_hint("colab", env)
    assert 'os.environ["KERAS_BACKEND"] = "jax"' in colab and "before importing keras" in colab
    assert "restart" in colab.lower() and "make lab" not in colab


def test_start_backend_filters_routine_notices_and_keeps_real_errors(capfd):
    import os

    with config._filtered_stderr(config.ROUTINE_STARTUP_LOG):
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see\n")
        os.write(2, b"E0000 something real went wrong\n")
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "something real went wrong" in err
    assert config.start_backend() == "tensorflow"


def test_setup_refuses_bad_mode_before_doing_anything(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="not a valid mode"):
        config.setup()


def test_artifacts_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path / "a"))
    assert config.artifacts_dir() == tmp_path / "a" and (tmp_path / "a").is_dir()


def _run_setup_cell(monkeypatch, *, on_colab, helpers_present):
    """Execute the notebooks' first cell with fakes for Colab, pip and the import system."""
    import importlib.util
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            (real_find_spec(name) if helpers_present else None)
            if name == "helpers"
            else real_find_spec(name, *a)
        ),
    )
    exec(colab.SETUP_CELL, {})
    return calls


def test_colab_cell_installs_helpers_without_dependencies_when_missing(monkeypatch):
    calls = _run_setup_cell(monkeypatch, on_colab=True, helpers_present=False)
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "install"] and "--no-deps" in cmd
    assert cmd[-1] == f"git+{config.REPO_URL}"
    assert not any("tensorflow" in part for part in cmd)


@pytest.mark.parametrize(("on_colab", "present"), [(True, True), (False, False), (False, True)])
def test_colab_cell_does_nothing_otherwise(monkeypatch, on_colab, present):
    assert _run_setup_cell(monkeypatch, on_colab=on_colab, helpers_present=present) == []


def test_badges_point_at_the_notebook():
    row = colab.badges("03_training.ipynb")
    assert "colab.research.google.com/github/" in row and "notebooks/03_training.ipynb" in row
    assert "mybinder.org/v2/gh/" in row and "labpath=notebooks%2F03_training.ipynb" in row
