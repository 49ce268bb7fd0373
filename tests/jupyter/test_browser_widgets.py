"""The artifact gallery as a live widget in a real JupyterLab in Chromium: it renders and pages while its kernel
lives, shows the container's hostile names as text, and reads the same after the notebook is saved and reopened
with its kernel gone; exported with nbconvert, the static gallery beside it is what shows."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import nbformat
import pytest
from browserhelp import Lab, expect, kernel_idle, shot
from nbclient import NotebookClient

from cellbox.local.testing import RunningServer

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>.txt"
FILES = (
    "%%container\nimport pandas as pd\n"
    "pd.DataFrame({'n': [3, 1, 2, 15, 4, 9, 7, 8, 6, 5, 11, 10, 13, 12, 14]}).to_csv('scores.csv', index=False)\n"
    "for i in range(14):\n    open(f'f{i:02}.txt', 'w').write(f'file {i}')\n"
    f"open({HOSTILE!r}, 'w').write('<b>bold</b>')"
)
_NOT_RUN = re.compile(r"^\[ \]:$")
_DONE = re.compile(r"^\[\d+\]:$")


def _cells(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def _run_all(page) -> None:
    kernel_idle(page)
    for _ in range(3):
        _cells(page).first.locator(".jp-InputArea-editor").click(timeout=90_000)
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        try:
            expect(_cells(page).first.locator(".jp-InputPrompt")).not_to_have_text(_NOT_RUN, timeout=10_000)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("Run All ran nothing, three times")
    expect(_cells(page).last.locator(".jp-InputPrompt")).to_have_text(_DONE, timeout=240_000)


def _write(lab: Lab, name: str) -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext cellbox\n%container new widget-test"),
            nbformat.v4.new_code_cell(FILES),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(notebook, lab.root / name)


def _stop_kernels(lab: Lab) -> None:
    for session in lab.get("api/sessions").json():
        httpx.delete(f"{lab.url}/api/sessions/{session['id']}", headers={"Authorization": f"token {lab.token}"})


def test_the_gallery_pages_live_and_reads_the_same_after_reopening(
    lab: Lab, page, use_local_server: RunningServer
) -> None:
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    _write(lab, "widgets.ipynb")
    page.goto(f"{lab.url}/lab/tree/widgets.ipynb?token={lab.token}")
    _run_all(page)
    gallery = page.locator(".cellbox-gallery")
    expect(gallery).to_be_visible(timeout=60_000)
    pager = gallery.locator(".cellbox-pager").first
    expect(pager).to_contain_text("files 1-10 of 16 · page 1 of 2")
    expect(gallery).to_contain_text(HOSTILE)  # the container's name, as text
    assert gallery.locator("img[src='x']").count() == 0
    pager.get_by_role("button", name="next").click()
    expect(pager).to_contain_text("files 11-16 of 16 · page 2 of 2")
    expect(gallery.locator(".cellbox-artifact")).to_have_count(6)
    table = gallery.locator(".cellbox-table-view")  # scores.csv, on the second page
    expect(table.locator("td").first).to_have_text("3")
    table.locator("select").select_option(label="n")  # sorted by n, in the kernel
    expect(table.locator("td").first).to_have_text("1")
    shot(page, "widget-gallery-live")

    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    expect(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-mod-dirty")).to_have_count(0, timeout=30_000)
    _stop_kernels(lab)
    assert lab.get("api/kernels").json() == []
    page.goto(f"{lab.url}/lab/tree/widgets.ipynb?token={lab.token}")  # reopened: its first kernel is gone
    gallery = page.locator(".cellbox-gallery")
    expect(gallery).to_be_visible(timeout=150_000)  # drawn from the widget state saved with the notebook
    expect(gallery.locator(".cellbox-pager").first).to_contain_text("files 11-16 of 16 · page 2 of 2")
    expect(gallery).to_contain_text("f13.txt")
    expect(gallery.locator(".cellbox-table-view td").first).to_have_text("1")  # as it was left: sorted
    expect(page.locator(".jp-Notebook")).not_to_contain_text("model not found")
    shot(page, "widget-gallery-reopened")
    assert alerts == []


def test_nbconvert_shows_the_static_gallery(lab: Lab, page, use_local_server: RunningServer) -> None:
    """A notebook run without saving widget state (nbclient told not to, a JupyterLab whose user turned it off)
    exports the gallery's static HTML: nbconvert skips a widget view whose state the notebook lacks."""
    folder = lab.root / "export"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext cellbox\n%container new export-test"),
            nbformat.v4.new_code_cell(FILES),
        ]
    )
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    shown = notebook.cells[1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown)  # live, it was a widget
    nbformat.write(notebook, folder / "export.ipynb")
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(folder / "export.ipynb")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto((folder / "export.html").as_uri())
    static = page.locator(".cellbox-artifacts")
    expect(static).to_contain_text("16 file(s) from the container")
    expect(static).to_contain_text(HOSTILE)
    expect(static.locator("table").first).to_contain_text("15")  # the table's preview
    assert page.locator("img[src='x']").count() == 0
    shot(page, "widget-gallery-nbconvert")
    assert alerts == []
