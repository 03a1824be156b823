"""The course as a learner meets it: a real JupyterLab, driven by headless Chromium.

The test starts the virtualenv's ``jupyter lab`` on 127.0.0.1 with a token, opens notebooks
in the system Chromium through the Python ``playwright`` package (no browser download:
``executable_path`` points at Debian's ``chromium``), runs all cells from the Run menu, and
checks what a person would see: the banner of notebook 00, and in notebook 03 a training run
started from the hyperparameter panel that lands in the run table with the chosen values.

The server serves a throwaway copy of ``notebooks/`` so that running cells never writes
outputs into the repository. Screenshots go to ``test-artifacts/`` (ignored by git).
Without Chromium the test is skipped, except on CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
]
SERVER_START_S = 180
NOTEBOOK_RUN_S = 480
RUN_START_S = 30
TRAIN_S = 600

# JupyterLab settings for an unattended run: every cell in the DOM (no virtual scrolling),
# no news or update pop-ups, no autosave (the copy is thrown away anyway).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

# The hyperparameter panel of notebook 03 (helpers/widgets.py) marks its parts with these.
PANEL = ".course-panel"
PANEL_CHOICE = {"course-lr": "0.01", "course-epochs": "2"}


def chromium_executable() -> str | None:
    """The system Chromium: ``$CHROMIUM`` if set, else Debian's ``chromium`` on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, token: str, proc: subprocess.Popen, log: Path, timeout: float):
    """Poll ``/api/status`` until the server answers; fail with its log if it dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def stop_process_group(proc: subprocess.Popen) -> None:
    """End the server and everything it started (kernels included): its whole process group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    # Kernels live in the same group; make sure none outlives the server.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def api_get(url: str, token: str, path: str) -> dict:
    sep = "&" if "?" in path else "?"
    with urllib.request.urlopen(f"{url}{path}{sep}token={token}", timeout=30) as reply:
        return json.load(reply)


@dataclass
class Lab:
    url: str
    token: str
    root: Path


@pytest.fixture(scope="module")
def chromium() -> str:
    executable = chromium_executable()
    if executable is None:
        reason = (
            "Chromium is not installed: the browser test needs the system Chromium "
            "(Debian: apt-get install chromium; or set CHROMIUM=/path/to/chromium)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; on CI .ci/run installs it")
        pytest.skip(reason)
    return executable


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """JupyterLab from this virtualenv, serving a copy of the notebooks, in fast mode."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(
        ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_*")
    )
    home = root / ".jupyter"
    for plugin, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        **os.environ,
        "COURSE_FAST": "1",
        "COURSE_ARTIFACTS": str(root / "artifacts"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    token, port = secrets.token_hex(16), free_port()
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = root / "lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, token, proc, log, SERVER_START_S)
        yield Lab(url, token, root)
    finally:
        stop_process_group(proc)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / "jupyterlab.log")


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, request):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    page.set_default_timeout(60_000)
    yield page
    name = re.sub(r"[^\w.-]", "_", request.node.name)
    page.screenshot(path=ARTIFACTS / f"{name}-final.png")
    page.close()


# --- What a person does in JupyterLab -------------------------------------------------------

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def open_notebook(page, lab: Lab, name: str) -> None:
    """Open ``notebooks/<name>`` alone in a workspace of its own and wait until its kernel is
    ready.

    The default workspace remembers the tabs of earlier pages: a notebook opened by a previous
    test comes back beside this one, and Run All Cells may then run the wrong notebook (a CI
    run waited 480 s for notebook 03 while 00 had been run)."""
    workspace = re.sub(r"\W", "-", Path(name).stem)
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/notebooks/{name}?token={lab.token}")
    page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=120_000)
    tabs = page.locator("#jp-main-dock-panel .lm-TabBar-tab")
    tabs.and_(page.locator(".lm-mod-current")).filter(has_text=name).wait_for(timeout=60_000)
    open_tabs = tabs.all_inner_texts()
    assert [t.strip() for t in open_tabs] == [name], f"expected only {name} open: {open_tabs}"
    # The status bar reads "Python 3 (ipykernel) | Idle" once the kernel has started.
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(
        timeout=120_000
    )


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in the menu bar, then ``item`` in the menu that opens (once enabled)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{top}$")).click()
    entry = page.locator(".lm-Menu-item", has_text=re.compile(rf"^{re.escape(item)}")).first
    entry.and_(page.locator(":not(.lm-mod-disabled)")).wait_for(timeout=30_000)
    entry.click()


def prompts(page) -> list[str]:
    return [
        text.strip()
        for text in page.locator(f"{NOTEBOOK} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    ]


def kernel_status(page) -> str:
    """The status bar's kernel item, e.g. "Python 3 (ipykernel) | Busy"."""
    items = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| \w+$"))
    return items.first.inner_text().strip() if items.count() else "(no kernel status shown)"


def run_report(page, lab: Lab | None = None) -> str:
    """What the notebook shows now: prompts, the kernel, the cell still running and its output,
    the server log's end: the facts a failure message needs to be understood from CI's log."""
    cells = page.locator(f"{NOTEBOOK} .jp-CodeCell")
    lines = [f"kernel: {kernel_status(page)}", f"prompts: {prompts(page)}"]
    for index, prompt in enumerate(prompts(page)):
        if "*" in prompt:
            cell = cells.nth(index)
            source = cell.locator(".jp-InputArea-editor").inner_text()[:300]
            output = cell.locator(".jp-OutputArea").inner_text()[-1500:]
            lines += [f"first running cell ({index}):", source, "its output so far:", output]
            break
    if lab is not None and (lab.root / "lab.log").is_file():
        lines += ["end of the JupyterLab log:", (lab.root / "lab.log").read_text()[-3000:]]
    return "\n".join(lines)


def run_all_cells(page, lab: Lab | None = None, timeout_s: float = NOTEBOOK_RUN_S) -> None:
    """Run > Run All Cells, then wait until no cell is queued or running any more.

    Fails early, with ``run_report``, when the run does not start, an error is shown, or the
    kernel dies; the menu is tried again if the first click started nothing."""
    page.locator(f"{NOTEBOOK} .jp-Cell").first.click()  # the notebook must be the active panel
    for _ in range(3):
        menu(page, "Run", "Run All Cells")
        deadline = time.monotonic() + RUN_START_S
        while time.monotonic() < deadline:
            if any("*" in p or re.search(r"\[\d+\]", p) for p in prompts(page)):
                break
            time.sleep(0.5)
        else:
            continue
        break
    else:
        pytest.fail(f"Run All Cells started nothing in 3 tries:\n{run_report(page, lab)}")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = prompts(page)
        if not any("*" in p for p in shown) and any(re.search(r"\[\d+\]", p) for p in shown):
            return
        status = kernel_status(page)
        if re.search(r"(Dead|Unknown|Restarting|Disconnected)$", status):
            pytest.fail(f"the kernel stopped ({status}):\n{run_report(page, lab)}")
        if page.locator(f"{NOTEBOOK} .jp-OutputArea-output:has-text('Traceback')").count():
            pytest.fail(f"a cell shows a traceback:\n{run_report(page, lab)}")
        time.sleep(1)
    pytest.fail(f"the notebook still ran after {timeout_s} s:\n{run_report(page, lab)}")


def saved_outputs(page, lab: Lab, name: str) -> list[dict]:
    """Save the notebook from the browser and return the outputs the server received."""
    path = f"/api/contents/notebooks/{name}"
    before = api_get(lab.url, lab.token, f"{path}?content=0")["last_modified"]
    menu(page, "File", "Save Notebook")
    # Read the file only once the save is over: the server answers a read during the write
    # with a 400 and puts its backup copy back, which makes the save itself fail.
    # The file's time (content=0 reads no content) says this save has started ...
    deadline = time.monotonic() + 60
    while api_get(lab.url, lab.token, f"{path}?content=0")["last_modified"] == before:
        if time.monotonic() > deadline:
            pytest.fail(f"{name} was not saved within 60 s")
        time.sleep(0.5)
    # ... and the status bar says when it has finished.
    page.get_by_text(re.compile(r"^Saving (completed|failed)$")).wait_for()
    assert not page.get_by_text("Saving failed").count(), f"JupyterLab could not save {name}"
    model = api_get(lab.url, lab.token, path)
    return [
        dict(output, cell=index)
        for index, cell in enumerate(model["content"]["cells"])
        if cell["cell_type"] == "code"
        for output in cell["outputs"]
    ]


def assert_ran_without_errors(page, lab: Lab, name: str) -> list[dict]:
    numbered = [bool(re.search(r"\[\d+\]", p)) for p in prompts(page)]
    outputs = saved_outputs(page, lab, name)
    errors = [o for o in outputs if o["output_type"] == "error"]
    if errors:
        traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors[0]["traceback"]))
        pytest.fail(f"{name}: error output in cell {errors[0]['cell']}:\n{traceback[-2000:]}")
    assert all(numbered), f"{name}: cells left unrun: {prompts(page)}"
    assert not page.locator(f"{NOTEBOOK} .jp-OutputArea-output:has-text('Traceback')").count()
    return outputs


# --- The tests ------------------------------------------------------------------------------


@pytest.mark.slow
def test_notebook_00_shows_the_banner(page, lab):
    open_notebook(page, lab, "00_start_here.ipynb")
    run_all_cells(page, lab)
    outputs = assert_ran_without_errors(page, lab, "00_start_here.ipynb")

    # The header rendered as Markdown: title and the Colab/Binder badge links.
    assert page.locator(f"{NOTEBOOK} h1", has_text="00 · Start here").count() == 1
    assert page.locator(f"{NOTEBOOK} a[href^='https://colab.research.google.com/']").count()
    assert page.locator(f"{NOTEBOOK} a[href^='https://mybinder.org/']").count()

    # The banner printed by config.setup() in the first code cell, as the page shows it.
    first_output = page.locator(f"{NOTEBOOK} .jp-CodeCell").first.locator(".jp-OutputArea")
    first_output.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "00_start_here.png")
    banner = first_output.inner_text()
    for line in ("Keras", "Device: CPU", "Mode: fast"):
        assert line in banner, f"banner lacks {line!r}: {banner!r}"
    assert any("Mode: fast" in "".join(o.get("text", "")) for o in outputs)


def _set_widget(panel, css_class: str, value: str) -> None:
    """Type ``value`` into the panel's widget ``css_class`` the way a person would."""
    widget = panel.locator(f".{css_class}")
    if widget.locator("select").count():
        widget.locator("select").select_option(label=value)
        return
    field = widget.locator("input[type='number'], input[type='text'], .widget-readout").first
    field.click()
    field.press("Control+a")
    field.press_sequentially(value)
    field.press("Enter")
    field.press("Tab")


def _table_rows(panel) -> list[dict[str, str]]:
    """The run table as a list of {column: text}, from its <table> element."""
    table = panel.locator(".course-runs table")
    if not table.count():
        return []
    headers = [h.strip() for h in table.locator("th").all_inner_texts()]
    rows = []
    for row in table.locator("tr").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        if cells:
            rows.append(dict(zip(headers[-len(cells) :], cells, strict=True)))
    return rows


def _column(row: dict[str, str], *words: str) -> str:
    for key, value in row.items():
        if any(word in key.lower() for word in words):
            return value
    raise AssertionError(f"no column like {words} in run table row {row}")


@pytest.mark.slow
def test_notebook_03_panel_trains_with_the_chosen_values(page, lab):
    name = "03_training.ipynb"
    if not (lab.root / "notebooks" / name).exists():
        pytest.skip(f"notebooks/{name} is not in the repository yet")
    open_notebook(page, lab, name)
    run_all_cells(page, lab)
    assert_ran_without_errors(page, lab, name)

    panel = page.locator(f"{NOTEBOOK} {PANEL}")
    panel.scroll_into_view_if_needed()
    for part in ("course-lr", "course-epochs", "course-train", "course-runs", "course-progress"):
        assert panel.locator(f".{part}").count() == 1, f"panel has no .{part}"
    before = _table_rows(panel)

    for css_class, value in PANEL_CHOICE.items():
        _set_widget(panel, css_class, value)
    page.screenshot(path=ARTIFACTS / "03_training-panel-set.png")
    panel.locator(".course-train button, button.course-train").first.click()

    # Done when the run table has one more row and the progress bar is full.
    page.wait_for_function(
        """([panel, before]) => {
            const root = document.querySelector(panel);
            const rows = root.querySelectorAll('.course-runs table tr:has(td)').length;
            const bar = root.querySelector('.course-progress .progress-bar, .course-progress');
            const full = bar && (bar.style.width === '100%'
                || root.querySelector('.course-progress progress')?.value
                   === root.querySelector('.course-progress progress')?.max);
            return rows > before && full;
        }""",
        arg=[f"{NOTEBOOK} {PANEL}", len(before)],
        timeout=TRAIN_S * 1000,
        polling=1000,
    )
    panel.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "03_training-panel-trained.png")

    rows = _table_rows(panel)
    assert len(rows) == len(before) + 1
    new = rows[-1]
    assert float(_column(new, "learning", "lr")) == float(PANEL_CHOICE["course-lr"]), new
    assert int(_column(new, "epoch")) == int(PANEL_CHOICE["course-epochs"]), new
    # The values left alone are recorded as the panel shows them.
    for css_class, words in [("course-batch-size", ("batch",)), ("course-optimizer", ("optim",))]:
        shown = panel.locator(f".{css_class} select option:checked").inner_text().strip()
        assert _column(new, *words) == shown, (css_class, new)
    assert not page.locator(f"{NOTEBOOK} .jp-OutputArea-output:has-text('Traceback')").count()
    errors = [o for o in saved_outputs(page, lab, name) if o["output_type"] == "error"]
    assert not errors, errors
