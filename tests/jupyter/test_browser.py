"""The sidebar in a real JupyterLab, driven in headless Chromium: open it, create a container, upload a file from
the file browser's context menu, download it into a folder, switch to the dark theme, delete the container.
Screenshots of each step go to test-output/jupyter/ at the repository root.

JupyterLab runs as installed (the labextension and the server extension enabled by the package's own data files),
against the suite's real local server, with every Jupyter and cellbox directory in a tmp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cellbox.local.testing import RunningServer, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "jupyter"
# Without these, Chromium on a closed network keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):  # `make install` installs it: in CI a missing browser is a failure, not a skip
        pytest.fail("the browser test needs Chromium at /usr/bin/chromium", pytrace=False)
    pytest.skip("the browser test needs Chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=20_000)


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}/{path}", headers={"Authorization": f"token {self.token}"})

    def sidebar_saved_open(self) -> bool:
        """Whether JupyterLab has saved its layout with the Containers panel open on the left."""
        reply = self.get("lab/api/workspaces/default")
        layout = reply.json().get("data", {}).get("layout-restorer:data", {}) if reply.is_success else {}
        return layout.get("left", {}).get("current") == "cellbox-sidebar"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _user_settings(settings_dir: Path) -> None:
    """No news or update checks (the network is closed), and no toasts covering the panel."""
    notification = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@contextlib.contextmanager
def _running_lab(tmp_path: Path, base_url: str, api_key: str) -> Iterator[Lab]:
    """`jupyter lab` on a free port with its own token, its workspace in tmp_path, cellbox pointed at base_url."""
    root = tmp_path / "workspace"
    (root / "results").mkdir(parents=True)
    (root / "sales.csv").write_text("region,total\nnorth,3\nsouth,5\n")
    jupyter = tmp_path / "jupyter"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "CELLBOX_"))}
    env.update(
        CELLBOX_BASE_URL=base_url,
        CELLBOX_API_KEY=api_key,
        CELLBOX_STATE_DIR=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(jupyter / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "lab-workspaces"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    _user_settings(jupyter / "lab-settings")
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / "lab.log"
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    lab = Lab(url, token, root, log_path)
    try:

        def answering() -> bool:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited ({process.returncode}):\n{lab.log()}")
            with contextlib.suppress(httpx.TransportError):
                return lab.get("api/status").is_success
            return False

        try:
            wait_until(answering, timeout=60, interval=0.2, what="JupyterLab to answer")
        except AssertionError as exc:
            pytest.fail(f"{exc}:\n{lab.log()}")
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def lab(use_local_server: RunningServer, tmp_path: Path) -> Iterator[Lab]:
    with _running_lab(tmp_path, use_local_server.base_url, use_local_server.token) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(OUTPUT / f"{name}.png"))


def _open_sidebar(page, lab: Lab):
    """Load JupyterLab and click the Containers tab; the tab and the panel."""
    page.goto(f"{lab.url}/lab?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="cellbox-sidebar"]')
    expect(tab).to_be_visible()
    tab.click()
    panel = page.locator("#cellbox-sidebar")
    expect(panel).to_be_visible()
    return tab, panel


def test_the_sidebar_creates_uploads_downloads_and_deletes(lab: Lab, page, use_local_server: RunningServer) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The tab in the left sidebar opens the panel.
    tab, panel = _open_sidebar(page, lab)
    expect(panel.locator(".jp-cellbox-title").first).to_have_text("Containers")
    expect(panel.locator(".jp-cellbox-empty")).to_contain_text("No containers")
    expect(panel.locator(".jp-cellbox-backend")).to_contain_text("127.0.0.1")
    _shot(page, "01-sidebar-open")

    # The panel comes back after a reload.
    wait_until(lab.sidebar_saved_open, timeout=30, interval=0.2, what="the layout to be saved")
    page.reload()
    expect(page.locator("#cellbox-sidebar")).to_be_visible(timeout=60_000)

    # New container: name and memory.
    panel.locator('[data-action="new"]').click()
    form = panel.locator("form.jp-cellbox-form")
    expect(form).to_be_visible()
    form.locator('input[name="name"]').fill("browser-test")
    form.locator('select[name="memory"]').select_option("4g")
    _shot(page, "02-new-container-form")
    form.get_by_role("button", name="Create").click()
    row = panel.locator(".jp-cellbox-container", has_text="browser-test")
    expect(row).to_be_visible()
    expect(row).to_have_class(re.compile(r"\bjp-mod-selected\b"))
    expect(row.locator(".jp-cellbox-chip")).to_have_text("4g")  # as the notebook tables and `cellbox ls` say
    expiry = row.locator(".jp-cellbox-expiry")
    expect(expiry).to_have_text(re.compile(r"^expires in \d+m \d\ds$"))
    shown = expiry.inner_text()
    expect(expiry).not_to_have_text(shown, timeout=5_000)  # the countdown ticks
    expect(form).to_be_hidden()
    expect(panel.locator(".jp-cellbox-files .jp-cellbox-empty")).to_contain_text("No files")
    containers = httpx.get(f"{use_local_server.base_url}/containers", headers=use_local_server.headers).json()
    [box] = [c for c in containers["data"] if c["name"] == "browser-test"]
    assert box["memory_limit"] == "4g"
    _shot(page, "03-container-created")

    # Upload from the file browser's context menu (the file browser shares the left side: switch to it and back).
    files_tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]')
    files_tab.click()
    item = page.locator(".jp-DirListing-item", has_text="sales.csv")
    expect(item).to_be_visible()
    item.click(button="right")
    entry = page.locator(".lm-Menu-item", has_text="Upload to container")
    expect(entry).to_be_visible()
    _shot(page, "04-context-menu")
    entry.click()
    expect(page.locator(".jp-toast-message", has_text="Uploaded sales.csv")).to_be_visible()
    tab.click()
    file_row = panel.locator(".jp-cellbox-file", has_text="sales.csv")
    expect(file_row).to_be_visible()
    expect(file_row).to_contain_text("29 B")
    expect(file_row).to_contain_text("user")
    _shot(page, "05-file-uploaded")

    # Download it into the folder the file browser shows.
    files_tab.click()
    page.locator(".jp-DirListing-item", has_text="results").dblclick()
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text("results")
    tab.click()
    file_row.hover()
    file_row.locator(".jp-cellbox-item-action").first.click()
    expect(page.locator(".jp-toast-message", has_text="Saved results/sales.csv")).to_be_visible()
    assert (lab.root / "results" / "sales.csv").read_text() == "region,total\nnorth,3\nsouth,5\n"
    _shot(page, "06-file-downloaded")

    # The dark theme.
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
    # Then JupyterLab hides and shows its shell (the toasts slide in again) and fades out its splash screen.
    expect(page.locator("#jupyterlab-splash")).to_have_count(0)
    expect(panel).to_be_visible()
    page.locator(".Toastify__toast").evaluate_all(
        "toasts => Promise.all(toasts.flatMap(t => t.getAnimations()).map(a => a.finished.catch(() => null)))"
    )
    _shot(page, "07-dark-theme")

    # Delete, after confirming.
    row.hover()
    row.locator(".jp-cellbox-item-action").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("browser-test")
    _shot(page, "08-confirm-delete")
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(panel.locator(".jp-cellbox-empty")).to_contain_text("No containers")
    _shot(page, "09-container-deleted")
    gone = httpx.get(f"{use_local_server.base_url}/containers/{box['id']}", headers=use_local_server.headers)
    assert gone.status_code == 404 or gone.json()["status"] == "deleted"

    assert errors == [], errors
    assert use_local_server.token not in lab.log()


def test_the_sidebar_shows_why_the_backend_fails(page, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the block ends
    with _running_lab(tmp_path, f"http://127.0.0.1:{closed}/v1", "sk-never-shown") as lab:
        _, panel = _open_sidebar(page, lab)
        alert = panel.locator(".jp-cellbox-error")
        expect(alert).to_contain_text("could not connect", timeout=30_000)
        expect(alert).to_contain_text(f"127.0.0.1:{closed}")
        expect(panel).not_to_contain_text("sk-never-shown")
        expect(panel.locator(".jp-cellbox-backend")).to_contain_text(f"127.0.0.1:{closed}")
        expect(panel.locator(".jp-cellbox-container")).to_have_count(0)
        _shot(page, "10-backend-unreachable")
        assert "sk-never-shown" not in lab.log()
