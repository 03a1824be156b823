"""``make lab``, the course's first command, starts a JupyterLab that serves the notebooks.

The test runs the real target with extra ``LAB_ARGS`` (127.0.0.1, a token, a free port, no
browser) and asks the server's REST API what it sees. The server and everything it started
share one process group, which the test ends whatever happens.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.test_browser import api_get, free_port, stop_process_group, wait_for_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    token, port = secrets.token_hex(16), free_port()
    lab_args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lab_args.append("--allow-root")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    log = tmp_path / "make-lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [make, "-C", str(ROOT), "lab", f"LAB_ARGS={' '.join(lab_args)}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, token, proc, log, timeout=180)

        listing = api_get(url, token, "/api/contents/notebooks")
        served = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        expected = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
        assert expected and expected <= served

        # The course opens on notebook 00 (the target's --LabApp.default_url).
        with urllib.request.urlopen(f"{url}/?token={token}", timeout=30) as reply:
            assert reply.status == 200
            assert reply.geturl().split("?")[0].endswith("/lab/tree/notebooks/00_start_here.ipynb")
    finally:
        stop_process_group(proc)
    assert proc.poll() is not None
