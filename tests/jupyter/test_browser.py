"""The sidebar in a real JupyterLab, driven in headless Chromium: open it, create a container, upload a file from
the file browser's context menu, download it into a folder, switch to the dark theme, delete the container.
Screenshots of each step go to test-output/jupyter/ at the repository root.

JupyterLab runs as installed (the labextension and the server extension enabled by the package's own data files),
against the suite's real local server, with every Jupyter and cellbox directory in a tmp dir.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest
from browserhelp import Lab, expect, open_sidebar, running_lab, shot

from cellbox.api import Client
from cellbox.local.testing import RunningServer, wait_until

pytestmark = pytest.mark.slow


def test_the_sidebar_creates_uploads_downloads_and_deletes(lab: Lab, page, use_local_server: RunningServer) -> None:
    # The worker's server may hold containers of tests run before this one: the sidebar starts from none.
    with Client(use_local_server.base_url, api_key=use_local_server.token) as client:
        for box in client.containers.list():
            client.containers.delete(box.id)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The tab in the left sidebar opens the panel.
    tab, panel = open_sidebar(page, lab)
    expect(panel.locator(".jp-cellbox-title").first).to_have_text("Containers")
    # The first listing waits for the server extension's first request: past 20 s on a loaded 2-core host.
    expect(panel.locator(".jp-cellbox-empty")).to_contain_text("No containers", timeout=60_000)
    expect(panel.locator(".jp-cellbox-backend")).to_contain_text("127.0.0.1")
    shot(page, "01-sidebar-open")

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
    shot(page, "02-new-container-form")
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
    shot(page, "03-container-created")

    # Upload from the file browser's context menu (the file browser shares the left side: switch to it and back).
    files_tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]')
    files_tab.click()
    item = page.locator(".jp-DirListing-item", has_text="sales.csv")
    expect(item).to_be_visible()
    item.click(button="right")
    entry = page.locator(".lm-Menu-item", has_text="Upload to container")
    expect(entry).to_be_visible()
    shot(page, "04-context-menu")
    entry.click()
    expect(page.locator(".jp-toast-message", has_text="Uploaded sales.csv")).to_contain_text("at /mnt/data/sales.csv")
    tab.click()
    file_row = panel.locator(".jp-cellbox-file", has_text="sales.csv")
    expect(file_row).to_be_visible()
    expect(file_row).to_contain_text("29 B")
    expect(file_row).to_contain_text("uploaded")
    shot(page, "05-file-uploaded")

    # Download it into the folder the file browser shows.
    files_tab.click()
    page.locator(".jp-DirListing-item", has_text="results").dblclick()
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text("results")
    tab.click()
    file_row.hover()
    file_row.locator(".jp-cellbox-item-action").first.click()
    expect(page.locator(".jp-toast-message", has_text="Saved results/sales.csv")).to_be_visible()
    assert (lab.root / "results" / "sales.csv").read_text() == "region,total\nnorth,3\nsouth,5\n"
    shot(page, "06-file-downloaded")

    # The dark theme.
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
    # Then JupyterLab hides and shows its shell (the toasts slide in again) and fades out its splash screen.
    expect(page.locator("#jupyterlab-splash")).to_have_count(0)
    expect(panel).to_be_visible()
    page.locator(".Toastify__toast").evaluate_all(
        "toasts => Promise.all(toasts.flatMap(t => t.getAnimations()).map(a => a.finished.catch(() => null)))"
    )
    shot(page, "07-dark-theme")

    # Delete, after confirming.
    row.hover()
    row.locator(".jp-cellbox-item-action").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("browser-test")
    shot(page, "08-confirm-delete")
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(panel.locator(".jp-cellbox-empty")).to_contain_text("No containers")
    shot(page, "09-container-deleted")
    gone = httpx.get(f"{use_local_server.base_url}/containers/{box['id']}", headers=use_local_server.headers)
    assert gone.status_code == 404 or gone.json()["status"] == "deleted"

    assert errors == [], errors
    assert use_local_server.token not in lab.log()


def test_the_sidebar_shows_why_the_backend_fails(page, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the block ends
    with running_lab(tmp_path, f"http://127.0.0.1:{closed}/v1", "sk-never-shown") as lab:
        _, panel = open_sidebar(page, lab)
        alert = panel.locator(".jp-cellbox-error")
        expect(alert).to_contain_text("could not connect", timeout=30_000)
        expect(alert).to_contain_text(f"127.0.0.1:{closed}")
        expect(panel).not_to_contain_text("sk-never-shown")
        expect(panel.locator(".jp-cellbox-backend")).to_contain_text(f"127.0.0.1:{closed}")
        expect(panel.locator(".jp-cellbox-container")).to_have_count(0)
        shot(page, "10-backend-unreachable")
        assert "sk-never-shown" not in lab.log()
