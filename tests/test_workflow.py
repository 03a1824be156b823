"""The GitHub Actions workflow calls Makefile targets only, and every one of them exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
PROBE = "__no_such_target__"


def make_targets(makefile_dir: Path) -> set[str]:
    """The targets ``make`` knows in ``makefile_dir``, read from its database (``make -p``).

    Asking for a target that does not exist makes make print its database and stop, so no
    recipe runs (``make -n`` would still run the lines that call ``$(MAKE)``).
    """
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    database = subprocess.run(
        [make, "-C", str(makefile_dir), "--print-data-base", "--question", "-r", "-R", PROBE],
        capture_output=True,
        text=True,
    ).stdout
    targets, lines = set(), database.splitlines()
    for previous, line in zip(["", *lines], lines, strict=False):
        found = re.match(r"^([A-Za-z0-9_][\w.-]*):(?!=)", line)
        if found and previous != "# Not a target:" and found.group(1) != PROBE:
            targets.add(found.group(1))
    return targets


def make_calls(workflow: dict) -> list[tuple[str, str]]:
    """``(job, target)`` for every ``make <target>`` in a ``run:`` step."""
    calls = []
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            for target in re.findall(r"\bmake\s+(?:-\S+\s+)*([\w.-]+)", step.get("run", "")):
                calls.append((job_name, target))
    return calls


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_every_make_target_the_workflow_calls_exists(workflow):
    targets = make_targets(ROOT)
    calls = make_calls(workflow)
    assert calls, "the workflow should call make"
    missing = [(job, target) for job, target in calls if target not in targets]
    assert not missing, f"not Makefile targets: {missing}; known: {sorted(targets)}"


def test_steps_only_call_make(workflow):
    """Nothing is duplicated in YAML: a run step is a single ``make`` command."""
    for name, job in workflow["jobs"].items():
        runs = [step["run"].strip() for step in job["steps"] if "run" in step]
        assert runs, f"job {name} runs nothing"
        for command in runs:
            assert re.fullmatch(r"make( [\w.=-]+)+", command), f"{name}: {command!r}"


def test_cpu_job_runs_make_test_and_gpu_job_the_full_notebooks(workflow):
    jobs = workflow["jobs"]
    assert jobs["cpu"]["runs-on"] == "ubuntu-latest"
    assert ("cpu", "test") in make_calls(workflow)
    gpu = jobs["gpu"]
    assert {"self-hosted", "gpu"} <= set(gpu["runs-on"])
    assert ("gpu", "test-notebooks-full") in make_calls(workflow)
    cached = [
        step["with"]["path"]
        for step in gpu["steps"]
        if step.get("uses", "").startswith("actions/cache")
    ]
    assert "~/.keras" in cached and "~/.cache/pip" in cached, cached


def test_the_checks_catch_a_missing_target_and_run_nothing(tmp_path):
    (tmp_path / "Makefile").write_text("all: build\nbuild:\n\ttouch built\n.PHONY: all\n")
    assert make_targets(tmp_path) == {"all", "build"}
    assert not (tmp_path / "built").exists(), "reading the targets must not run recipes"
    fake = {"jobs": {"x": {"steps": [{"run": "make build"}, {"run": "make -s deploy"}]}}}
    assert make_calls(fake) == [("x", "build"), ("x", "deploy")]
