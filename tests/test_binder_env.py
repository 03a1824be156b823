"""binder/environment.yml installs what requirements.txt pins (CPU TensorFlow on Binder)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    return {
        line.split("==")[0].strip(" -"): line.split("==")[1].strip()
        for line in lines
        if "==" in line and not line.lstrip().startswith("#")
    }


def test_binder_pins_match_requirements():
    wanted = _pins((ROOT / "requirements.txt").read_text().splitlines())
    binder = _pins((ROOT / "binder" / "environment.yml").read_text().splitlines())
    wanted["tensorflow-cpu"] = wanted.pop("tensorflow")  # Binder has no GPU
    assert binder == wanted


def test_postbuild_installs_helpers_without_touching_pins():
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install --no-deps -e ." in post.read_text()
