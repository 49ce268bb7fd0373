"""The sidebar's details in a real JupyterLab, driven in headless Chromium: every row read whole at the default
width and in plain words, names checked as the server extension checks them, an upload that goes to the active
notebook's container and lands where that notebook's code looks, and `cellbox stop` that stays stopped.

Kernels are real; JupyterLab loads the sidebar built from these sources (see browserhelp).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browserhelp import (
    CLIPPED_IN_PANEL,
    Lab,
    cellbox_command,
    cells,
    expect,
    notebook,
    open_sidebar,
    run_cell,
    running_lab,
    shot,
)

from cellbox.common import endpoint
from cellbox.local.testing import RunningServer, running_server, wait_until

pytestmark = pytest.mark.slow


def _fresh(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"  # a server that outlives the test: names must not repeat


def _create(server: RunningServer, name: str, **body: object) -> dict:
    reply = httpx.post(f"{server.base_url}/containers", json={"name": name, **body}, headers=server.headers)
    reply.raise_for_status()
    return reply.json()


def _run_code(server: RunningServer, container_id: str, code: str) -> None:
    """Code run in the container through the API, as a model's tool call runs it: its files are the container's."""
    body = {
        "model": "cellbox-local",
        "input": code,
        "tools": [{"type": "code_interpreter", "container": container_id}],
    }
    httpx.post(f"{server.base_url}/responses", json=body, headers=server.headers, timeout=120).raise_for_status()


@pytest.fixture
def quick_server(tmp_path: Path, starts_processes: None) -> Iterator[RunningServer]:
    """A local server of its own whose minutes last a second: a container expires while the test watches."""
    with running_server(tmp_path / "quick-data", pool_size=0, seconds_per_minute=1.0) as server:
        yield server


def test_every_row_reads_whole_in_plain_words(page, tmp_path: Path, quick_server: RunningServer) -> None:
    long_name = "quarterly-revenue-by-region-and-product-line-2026-q4"
    live = _create(quick_server, long_name, expires_after={"anchor": "last_active_at", "minutes": 600})
    _create(quick_server, "gone-soon", expires_after={"anchor": "last_active_at", "minutes": 1})
    _run_code(quick_server, live["id"], "open('made-by-code.csv', 'w').write('a,b\\n1,2\\n')")
    with running_lab(tmp_path, quick_server.base_url, quick_server.token) as lab:
        (lab.root / "data").mkdir()
        (lab.root / "data" / "raw.csv").write_text("x\n1\n")
        _, panel = open_sidebar(page, lab)
        expired = panel.locator(".jp-cellbox-container", has_text="gone-soon")
        expect(expired).to_contain_text("Expired: its files and Python state are gone.", timeout=60_000)
        row = panel.locator(".jp-cellbox-container", has_text=long_name)
        expect(row.locator(".jp-cellbox-expiry")).to_have_text(re.compile(r"^expires in \d+m \d\ds$"))
        expect(row.locator(".jp-cellbox-status")).to_have_class(re.compile(r"jp-cellbox-status-running"))

        # A file the code made and one uploaded: who put each there, in plain words.
        row.click()
        uploaded = httpx.post(
            f"{lab.url}/cellbox/api/containers/{live['id']}/files",
            json={"path": "data/raw.csv"},
            headers={"Authorization": f"token {lab.token}"},
        )
        assert uploaded.status_code == 201, uploaded.text
        panel.locator('[data-action="refresh"]').click()
        made = panel.locator(".jp-cellbox-file", has_text="made-by-code.csv")
        expect(made.locator(".jp-cellbox-chip")).to_have_text("made in the container")
        sent = panel.locator(".jp-cellbox-file", has_text="raw.csv")
        expect(sent.locator(".jp-cellbox-chip")).to_have_text("uploaded")
        expect(sent).to_contain_text("data/")  # it kept its folder
        expect(panel).not_to_contain_text("assistant")
        shot(page, "20-rows-read-whole")

        # At the default width nothing is cut: not the long name, not the expired row's line, not a chip.
        width = panel.evaluate("panel => panel.getBoundingClientRect().width")
        assert 200 <= width <= 400, width  # JupyterLab's default sidebar width, not one made wide for the test
        assert panel.evaluate(CLIPPED_IN_PANEL) == []

        # A name the server extension would refuse is refused as it is typed, in its words.
        panel.locator('[data-action="new"]').click()
        form = panel.locator("form.jp-cellbox-form")
        form.locator('input[name="name"]').fill("ux sidebar/bad name!")
        alert = form.locator(".jp-cellbox-form-error")
        expect(alert).to_have_text("A container name has only letters, digits, '-', '_' and '.'; not ' ', '/', '!'.")
        expect(form.get_by_role("button", name="Create")).to_be_disabled()
        shot(page, "21-name-refused")
        assert panel.evaluate(CLIPPED_IN_PANEL) == []
        form.locator('input[name="name"]').fill("ux-sidebar")
        expect(alert).to_have_count(0)
        expect(form.get_by_role("button", name="Create")).to_be_enabled()


def test_an_upload_goes_to_the_active_notebooks_container_where_its_code_looks(
    lab: Lab, page, use_local_server: RunningServer
) -> None:
    mine, other = _fresh("nb-box"), _fresh("other-box")
    made: list[str] = []
    try:
        made.append(_create(use_local_server, other)["id"])
        (lab.root / "proj" / "data").mkdir(parents=True)
        (lab.root / "proj" / "data" / "raw.csv").write_text("x\n1\n2\n")
        notebook(
            lab,
            "proj/analysis.ipynb",
            "%load_ext cellbox",
            f"%container new {mine}",
            "%%container\nimport pandas as pd\nprint('sum', int(pd.read_csv('data/raw.csv').x.sum()))",
        )
        tab, panel = open_sidebar(page, lab, "proj/analysis.ipynb")
        run_cell(page, 0)
        run_cell(page, 1)
        expect(cells(page).nth(1).locator(".jp-Cell-outputArea")).to_contain_text(mine, timeout=60_000)
        panel.locator('[data-action="refresh"]').click()
        expect(panel.locator(".jp-cellbox-container", has_text=mine)).to_contain_text("this notebook")
        made.append(next(box["id"] for box in lab.get("cellbox/api/containers").json()["data"] if box["name"] == mine))
        # The panel's selection is another container: the upload still defaults to the notebook's.
        panel.locator(".jp-cellbox-container", has_text=other).click()

        page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]').click()
        page.locator(".jp-DirListing-item", has_text="data").dblclick()
        expect(page.locator(".jp-BreadCrumbs")).to_contain_text("data")
        page.locator(".jp-DirListing-item", has_text="raw.csv").click(button="right")
        page.locator(".lm-Menu-item", has_text="Upload to container").click()
        dialog = page.locator(".jp-Dialog")
        choice = dialog.locator("select")
        expect(choice).to_be_visible()
        chosen = choice.evaluate("select => select.options[select.selectedIndex].text")
        assert chosen.startswith(f"{mine} (this notebook)"), chosen
        options = choice.locator("option").all_inner_texts()
        assert any(text.startswith(other) for text in options), options  # the user may pick another
        shot(page, "22-upload-picker")
        dialog.get_by_role("button", name="Ok").click()
        toast = page.locator(".jp-toast-message", has_text="Uploaded proj/data/raw.csv")
        expect(toast).to_contain_text(f"to {mine} at /mnt/data/data/raw.csv")

        # The notebook's code reads it where it reads it locally.
        tab.click()
        run_cell(page, 2)
        expect(cells(page).nth(2).locator(".jp-Cell-outputArea")).to_contain_text("sum 3", timeout=60_000)
        listed = lab.get(f"cellbox/api/containers/{made[0]}/files").json()["data"]
        assert listed == [], listed  # nothing went to the selected one
    finally:
        for box in made:
            httpx.delete(f"{use_local_server.base_url}/containers/{box}", headers=use_local_server.headers)


def _end_server(state_dir: Path) -> None:
    """The local server this test's JupyterLab started, stopped as a user stops it (by its endpoint file's pid)."""
    running = endpoint.read(state_dir / "server.json")
    if running is not None and running.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signal.SIGTERM)
        wait_until(lambda: endpoint.read(state_dir / "server.json") is None, timeout=30, what="the server to stop")


def test_cellbox_stop_stays_stopped_and_the_sidebar_offers_to_start(page, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    endpoint_file = state_dir / "server.json"
    try:
        # Nothing configured: the sidebar starts the local server itself, as a first-time user's JupyterLab does.
        with running_lab(tmp_path, None, None) as lab:
            _, panel = open_sidebar(page, lab)
            expect(panel.locator(".jp-cellbox-empty")).to_contain_text("No containers", timeout=90_000)
            panel.locator('[data-action="new"]').click()
            panel.locator('form.jp-cellbox-form input[name="name"]').fill("before-stop")
            panel.locator("form.jp-cellbox-form").get_by_role("button", name="Create").click()
            row = panel.locator(".jp-cellbox-container", has_text="before-stop")
            expect(row.locator(".jp-cellbox-expiry")).to_have_text(re.compile(r"^expires in "))
            before = endpoint.read(endpoint_file)
            assert before is not None

            stopped = cellbox_command(lab, "stop")
            assert stopped.returncode == 0 and "stopped the local server" in stopped.stdout, stopped.stderr
            panel.locator('[data-action="refresh"]').click()
            notice = panel.locator(".jp-cellbox-stopped")
            expect(notice).to_contain_text("The local server is stopped")
            expect(panel.locator(".jp-cellbox-error")).to_have_count(0)
            expect(row).to_have_count(0)
            shot(page, "23-server-stopped")
            # The panel refreshes on its own every 10 s: past two of them, nothing has started a server.
            time.sleep(22)
            panel.locator('[data-action="refresh"]').click()
            expect(notice).to_be_visible()
            assert endpoint.read(endpoint_file) is None

            notice.locator('[data-action="start-server"]').click()
            expect(notice).to_have_count(0, timeout=90_000)
            after = endpoint.read(endpoint_file)
            assert after is not None and after.pid != before.pid
            # The container is back, with its files, but its Python state went with the old server: said so.
            expect(row.locator(".jp-cellbox-expiry")).to_have_text(re.compile(r"^state lost · expires in "))
            expect(row.locator(".jp-cellbox-status")).to_have_class(re.compile(r"jp-cellbox-status-lost"))
            title = row.locator(".jp-cellbox-status").get_attribute("title") or ""
            assert "the server restarted since its last run" in title, title
            shot(page, "24-state-lost")
    finally:
        _end_server(state_dir)
