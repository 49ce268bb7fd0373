"""The shipped notebooks open unmodified in a real JupyterLab: a user who opens one, lets its kernel start and
closes it untouched is not asked to save it.

When a notebook's kernel starts, JupyterLab writes what the kernel says about itself into the notebook
(`kernelspec` from the kernel's spec, `language_info` from its kernel_info reply, the Python version included) and
marks the document modified when that differs from the file; the labextension keeps it unmodified
(jupyter_extension/src/cleanopen.ts). tests/test_notebooks_stable.py checks the files themselves; this checks what
JupyterLab does with them, in headless Chromium, one JupyterLab opening every notebook in turn. Two copies saved
as elsewhere (with another Python; by another tool, under another display name) show that the outcome doesn't
depend on this machine's Python being the one the notebooks were saved with.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from browserhelp import Lab, expect, kernel_idle, shot

from cellbox.local.testing import wait_until

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
DIRTY = re.compile(r"\bjp-mod-dirty\b")

# Once the notebook's kernel has answered kernel_info and its spec is known, JupyterLab has written both into the
# notebook (its callbacks on these promises were attached when the kernel started, so they ran first): the model's
# dirty flag and metadata then say what opening did.
_SETTLED = """
async path => {
  const widget = [...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === path);
  const sessionContext = widget.context.sessionContext;
  await sessionContext.ready;
  const kernel = sessionContext.session.kernel;
  await kernel.info;
  await kernel.spec;
  await new Promise(resolve => setTimeout(resolve, 0));
  return {dirty: widget.context.model.dirty, metadata: widget.context.model.sharedModel.getMetadata()};
}
"""


def _saved_elsewhere(lab: Lab, source: Path) -> list[str]:
    """Copies of `source` as they would be saved on another machine, whatever Python runs this test."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    metadata = notebook["metadata"]
    other_python = dict(metadata, language_info=dict(metadata["language_info"], version="3.0.0"))
    # Not none at all: without any, JupyterLab adds a placeholder as it loads the file, before any kernel starts.
    other_tool = dict(
        metadata,
        kernelspec=dict(metadata["kernelspec"], display_name="Python 3"),
        language_info={"name": "python", "version": "3.0.0"},
    )
    names = []
    for name, changed in (("saved-with-another-python", other_python), ("saved-by-another-tool", other_tool)):
        (lab.root / f"{name}.ipynb").write_text(json.dumps(dict(notebook, metadata=changed), indent=1) + "\n")
        names.append(f"{name}.ipynb")
    return names


def _show_file_browser(page) -> None:
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):  # a click on the shown panel's tab hides it
        tab.click()
    expect(page.locator("#filebrowser .jp-DirListing-content")).to_be_visible()


def _open(page, name: str):
    """Double-click `name` in the file browser and wait for its kernel to be idle; its tab."""
    _show_file_browser(page)
    page.locator(".jp-DirListing-item", has_text=name).dblclick()
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=name)
    expect(tab).to_have_class(re.compile(r"\blm-mod-current\b"))
    kernel_idle(page)
    return tab


def _close(page, tab, name: str) -> str:
    """Click the tab's close button; what the dialog that came up instead said ("" when it closed)."""
    tab.locator(".lm-TabBar-tabCloseIcon").click()
    dialog = page.locator(".jp-Dialog")
    wait_until(lambda: tab.count() == 0 or dialog.count() > 0, timeout=10, what=f"{name} to close or ask")
    if not dialog.count():
        return ""
    asked = dialog.inner_text()
    dialog.get_by_role("button", name="Discard").click()
    expect(tab).to_have_count(0)
    return asked


def _shut_down_kernel(lab: Lab, name: str) -> None:
    """Closing a tab leaves its kernel running (JupyterLab's default); one kernel at a time is enough here."""
    headers = {"Authorization": f"token {lab.token}"}
    for session in lab.get("api/sessions").json():
        if session["path"] == name:
            httpx.delete(f"{lab.url}/api/sessions/{session['id']}", headers=headers).raise_for_status()


def _changed(stored: dict, opened: dict) -> dict:
    return {
        key: {"stored": stored.get(key), "opened": opened.get(key)}
        for key in sorted(stored.keys() | opened.keys())
        if stored.get(key) != opened.get(key)
    }


def test_the_shipped_notebooks_open_and_close_unmodified(lab: Lab, page) -> None:
    assert NOTEBOOKS, "no notebooks/*.ipynb"
    for notebook in NOTEBOOKS:
        shutil.copyfile(notebook, lab.root / notebook.name)
    names = [notebook.name for notebook in NOTEBOOKS] + _saved_elsewhere(lab, NOTEBOOKS[0])
    written = {name: (lab.root / name).read_bytes() for name in names}
    started = time.monotonic()
    page.goto(f"{lab.url}/lab?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    page.evaluate("() => window.jupyterapp.restored")  # the layout no longer changes under the clicks

    problems: list[str] = []
    for name in names:
        tab = _open(page, name)
        settled = page.evaluate(_SETTLED, name)
        changed = _changed(json.loads(written[name])["metadata"], settled["metadata"])
        if settled["dirty"] or DIRTY.search(tab.get_attribute("class") or ""):
            shot(page, f"modified-on-open-{Path(name).stem}")
            problems.append(f"{name} is marked modified once its kernel is idle; metadata changed: {changed}")
        asked = _close(page, tab, name)
        if asked:
            problems.append(f"closing {name} untouched asks {asked!r}; metadata changed: {changed}")
        _shut_down_kernel(lab, name)
        assert (lab.root / name).read_bytes() == written[name], f"{name} was written"

    # The same signals do see a modified notebook: an edit marks the tab, and closing it asks to save.
    name = names[0]
    tab = _open(page, name)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-editor").first.click()
    page.keyboard.type("# edited")
    expect(tab).to_have_class(DIRTY)
    assert "Save changes" in _close(page, tab, name)
    _shut_down_kernel(lab, name)

    print(f"{len(names)} notebooks opened and closed, one edited, in {time.monotonic() - started:.1f} s")
    assert problems == [], "\n".join(problems)
