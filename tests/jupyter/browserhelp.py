"""What the browser tests share: a real JupyterLab in a tmp dir (`running_lab`), headless Chromium driven by
Playwright (`browser_page`), and the few steps every test takes in the page. The `lab` and `page` fixtures over
them are in conftest.py.

Importing this module skips (or, in CI, fails) the importing test module when Chromium or Playwright is missing,
as the browser tests always have: only browser test modules import it.
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nbformat
import pytest

import cellbox
from cellbox.local.testing import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "jupyter"
# JupyterLab's defaults as the wheel installs them (share/jupyter/lab/settings): widget state saved with notebooks
APP_SETTINGS = Path(__file__).resolve().parents[2] / "jupyter-config" / "lab-settings"
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
    # The environment JupyterLab (and so its kernels) runs with: a command run "as the user" gets the same one.
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}/{path}", headers={"Authorization": f"token {self.token}"})

    def sidebar_saved_open(self) -> bool:
        """Whether JupyterLab has saved its layout with the Containers panel open on the left."""
        reply = self.get("lab/api/workspaces/default")
        layout = reply.json().get("data", {}).get("layout-restorer:data", {}) if reply.is_success else {}
        return layout.get("left", {}).get("current") == "cellbox-sidebar"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _user_settings(settings_dir: Path, theme: str | None) -> None:
    """No news or update checks (the network is closed), and no toasts covering the panel; the theme, when given,
    as the Settings menu saves it."""
    apputils = settings_dir / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)
    notification = {"fetchNews": "false", "checkForUpdates": False}
    (apputils / "notification.jupyterlab-settings").write_text(json.dumps(notification))
    if theme is not None:
        (apputils / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))


def _this_build(data_dir: Path) -> list[str]:
    """Arguments that make JupyterLab load the sidebar built from these sources (`npm run build` writes it beside
    the package imported here) rather than the copy an install put in the environment, which a virtualenv's data
    folder would otherwise put first."""
    built = Path(cellbox.__file__).resolve().parent / "labextension"
    if not (built / "package.json").exists():
        return []
    folder = data_dir / "this-build"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cellbox").symlink_to(built, target_is_directory=True)
    return [f"--LabApp.extra_labextensions_path={folder}"]


@contextlib.contextmanager
def running_lab(
    tmp_path: Path,
    base_url: str | None,
    api_key: str | None,
    *,
    model: str | None = None,
    theme: str | None = None,
) -> Iterator[Lab]:
    """`jupyter lab` on a free port with its own token, its workspace in tmp_path, cellbox pointed at base_url
    (None: nothing configured, so the local server starts on first use, its endpoint file in tmp_path)."""
    root = tmp_path / "workspace"
    (root / "results").mkdir(parents=True)
    (root / "sales.csv").write_text("region,total\nnorth,3\nsouth,5\n")
    jupyter = tmp_path / "jupyter"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "CELLBOX_"))}
    cellbox = {"CELLBOX_BASE_URL": base_url, "CELLBOX_API_KEY": api_key, "CELLBOX_MODEL": model}
    env.update({name: value for name, value in cellbox.items() if value is not None})
    env.update(
        CELLBOX_STATE_DIR=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(jupyter / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "lab-workspaces"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    _user_settings(jupyter / "lab-settings", theme)
    port, token = free_port(), secrets.token_hex(16)
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
        *_this_build(jupyter / "data"),
        f"--LabApp.app_settings_dir={APP_SETTINGS}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    lab = Lab(url, token, root, log_path, env)
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


@contextlib.contextmanager
def browser_page(tmp_path: Path) -> Iterator[object]:
    """A page of headless Chromium (Debian's, never one Playwright downloads), its profile in tmp_path."""
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


def shot(page, name: str) -> None:
    page.screenshot(path=str(OUTPUT / f"{name}.png"))


def kernel_idle(page) -> None:
    """Until the notebook on screen has its kernel up and idle: keys pressed before that run nothing."""
    indicator = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator")
    expect(indicator).to_have_attribute("data-status", "idle", timeout=30_000)


def open_sidebar(page, lab: Lab, path: str = ""):
    """Load JupyterLab (on document `path` when given) and click the Containers tab; the tab and the panel."""
    page.goto(f"{lab.url}/lab{'/tree/' + path if path else ''}?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="cellbox-sidebar"]')
    expect(tab).to_be_visible()
    tab.click()
    panel = page.locator("#cellbox-sidebar")
    expect(panel).to_be_visible()
    return tab, panel


# --- notebooks, cells and the `cellbox` command, as a user drives them ---------------------------------------------


def notebook(lab: Lab, path: str, *cells: str) -> str:
    """A notebook at workspace path `path` with these code cells, on the python3 kernel (opening it starts one)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    (lab.root / path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, lab.root / path)
    return path


def cells(page):
    """The cells of the notebook on screen (the other documents' panels are hidden)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def started(cell) -> bool:
    """Whether the cell was sent to the kernel ([*] or [n]): a key or menu item that lands while the notebook is
    still connecting to its kernel runs nothing, so the caller tries again."""
    try:
        expect(cell.locator(".jp-InputPrompt")).not_to_have_text(re.compile(r"^\[ \]:$"), timeout=10_000)
    except AssertionError:
        return False
    return True


def choose_the_kernel_if_asked(page) -> None:
    """From now on, press Select in JupyterLab's "Select Kernel" dialog whenever it stands in the way of an action, as
    a user does. A notebook opened before the server has listed its kernel specs (a slow start on a loaded host) is
    asked about, though its metadata names python3; opened later, it starts its kernel by itself."""
    if getattr(page, "_chooses_kernel", False):
        return
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    page.add_locator_handler(dialog, lambda found: found.get_by_role("button", name="Select").click())
    page._chooses_kernel = True


def run_cell(page, index: int) -> None:
    """Shift+Enter in cell `index` of the notebook on screen, as a user does."""
    choose_the_kernel_if_asked(page)
    kernel_idle(page)
    cell = cells(page).nth(index)
    for _ in range(3):
        # A notebook just opened can take past 30 s to show its cells on a loaded 2-core host.
        try:
            cell.locator(".jp-InputArea-editor").click(timeout=90_000)
        except sync_api.TimeoutError:
            dialog = page.locator(".jp-Dialog")
            if dialog.count():  # what stood in the way, said, rather than a click's timeout
                raise AssertionError(f"a dialog covers the notebook: {dialog.first.inner_text()!r}") from None
            raise
        expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"))
        page.keyboard.press("Shift+Enter")
        if started(cell):
            return
    raise AssertionError(f"Shift+Enter in cell {index} ran nothing, three times")


def cellbox_command(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The `cellbox` command, as the user would type it in a terminal next to their JupyterLab."""
    return subprocess.run(
        [sys.executable, "-m", "cellbox", *args], env=lab.env, capture_output=True, text=True, timeout=60
    )


# Every element of the Containers panel that the user can't read whole: cut by its own box (text wider than it)
# or sticking out of the panel. JupyterLab's shell above the panel lays out absolutely: its boxes say nothing.
CLIPPED_IN_PANEL = """
panel => {
  const frame = panel.getBoundingClientRect();
  const cut = [];
  for (const element of panel.querySelectorAll('*')) {
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (box.width === 0 || style.visibility === 'hidden' || element.closest('svg')) continue;
    const label = (element.className.baseVal ?? element.className) + ': ' + (element.textContent || '').trim();
    if (element.scrollWidth > element.clientWidth + 1 && style.overflowX !== 'visible') cut.push('cut ' + label);
    if (box.right > frame.right + 0.5 || box.left < frame.left - 0.5) cut.push('out of the panel ' + label);
  }
  return cut;
}
"""
