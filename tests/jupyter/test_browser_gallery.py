"""The "save to the notebook's folder" buttons under an artifact gallery, in a real JupyterLab: a notebook run
earlier (by nbclient, as nbval and papermill run one) and opened afterwards, its first kernel long gone, still
shows working buttons (no "model not found"), which save into the notebook's folder, replace only on a second
click, and say so once the container is gone.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from browserhelp import Lab, expect, shot
from nbclient import NotebookClient

import cellbox
from cellbox.local.testing import RunningServer

pytestmark = pytest.mark.slow

WRITE = (
    "%%container\nimport os\nos.makedirs('plots', exist_ok=True)\n"
    "open('saved.txt', 'w').write('from the box')\nopen('plots/p.txt', 'w').write('plotted')"
)


def test_a_reopened_notebooks_buttons_save_into_its_folder(lab: Lab, page, use_local_server: RunningServer) -> None:
    folder = lab.root / "work"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext cellbox\n%container new gallery-test"),
            nbformat.v4.new_code_cell(WRITE),
        ]
    )
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    nbformat.write(notebook, folder / "gallery.ipynb")

    page.goto(f"{lab.url}/lab/tree/work/gallery.ipynb?token={lab.token}")
    buttons = page.locator(".jp-cellbox-save-button")
    expect(buttons).to_have_count(2, timeout=60_000)
    expect(buttons.nth(0)).to_have_text("plots/p.txt")
    expect(buttons.nth(1)).to_have_text("saved.txt")
    expect(page.locator(".jp-Notebook")).not_to_contain_text("model not found")
    status = page.locator(".jp-cellbox-save-status")
    shot(page, "gallery-buttons")

    buttons.nth(1).click()
    expect(status).to_have_text("saved saved.txt (12 B) into work")
    assert (folder / "saved.txt").read_text() == "from the box"
    buttons.nth(0).click()
    expect(status).to_have_text("saved p.txt (7 B) into work/plots")  # its folder in /mnt/data, made here
    assert (folder / "plots" / "p.txt").read_text() == "plotted"

    (folder / "saved.txt").write_text("edited here")
    buttons.nth(1).click()
    expect(status).to_have_text("saved.txt is already in this folder: click again to replace it")
    expect(buttons.nth(1)).to_have_text("replace saved.txt")
    assert (folder / "saved.txt").read_text() == "edited here"
    buttons.nth(1).click()
    expect(status).to_have_text(re.compile(r"^saved saved\.txt "))
    assert (folder / "saved.txt").read_text() == "from the box"
    expect(buttons.nth(1)).to_have_text("saved.txt")

    cellbox.Sandbox.attach("gallery-test").delete()
    buttons.nth(0).click()
    expect(status).to_have_text("could not save p.txt: its container is gone, and its files with it")
    shot(page, "gallery-container-gone")
