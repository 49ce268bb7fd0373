"""The live views in a real kernel against the real local server: the artifact gallery as an ipywidget carrying its
static HTML in the same bundle, paged and sorted from the kernel, its save action kept inside the notebook's
folder; the progress line as a widget that ends as the static line; a figure also saved with savefig shown once;
a result's rows counted once; and a kernel without ipywidgets showing the static views and saying so once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernelhelp import Kernel, plain, text, user_env

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Code run in the kernel: the live widgets of the last gallery shown, found as a frontend would by their classes.
FIND = """
import ipywidgets as _w
def _live(cls):
    return [w for w in list(_w.Widget.widgets.values()) if cls in getattr(w, '_dom_classes', ())]
"""


@pytest.fixture(scope="module")
def kernel(
    cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Kernel, Path]]:
    home = tmp_path_factory.mktemp("kernel-home")
    folder = tmp_path_factory.mktemp("notebook-folder")
    env = user_env(cloud_environment, home)
    k = Kernel(env)
    status, out = k.run(f"import os\nos.chdir({str(folder)!r})\n%load_ext cellbox\n%container new widgets\n{FIND}")
    assert status == "ok", out
    yield k, folder
    k.run("%container delete")
    k.stop()


def gallery(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in messages if "cellbox-artifacts" in str(m.get("data", {}).get("text/html", "")))


def value(k: Kernel, expression: str) -> Any:
    status, out = k.run(f"import json as _json\nprint(_json.dumps({expression}))")
    assert status == "ok", out
    return json.loads(text(out, "stdout"))


MANY = (
    "%%container\nimport pandas as pd\n"
    "pd.DataFrame({'n': [3, 1, 2, 15, 4, 9, 7, 8, 6, 5, 11, 10, 13, 12, 14],"
    " 'who': ['<script>alert(1)</script>'] * 15}).to_csv('scores.csv', index=False)\n"
    "for i in range(14):\n    open(f'f{i:02}.txt', 'w').write(f'file {i}')\n"
    "open('<img src=x onerror=alert(1)>.txt', 'w').write('<b>bold</b>')"
)


def test_the_gallery_is_a_widget_with_its_static_html_in_the_same_bundle(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, out = k.run(MANY)
    assert status == "ok", out
    shown = gallery(out)["data"]
    assert WIDGET_VIEW in shown, sorted(shown)  # a live frontend draws the widget
    static = shown["text/html"]  # nbconvert, GitHub and an untrusted JupyterLab show this
    assert "16 file(s) from the container" in static and "scores.csv" in static
    assert "<script>" not in static and "<img src=x" not in static  # the container's names, escaped
    assert shown["text/plain"].startswith("16 file(s) from the container:")
    # the widget shows the first page of ten files, and pages
    assert value(k, "_live('cellbox-gallery')[-1].children[1].children[1].value") == "files 1-10 of 16 · page 1 of 2"
    assert value(k, "len(_live('cellbox-gallery')[-1].children[2].children)") == 10
    # every container string in the widgets is text: what reaches a widget as markup was escaped
    titles = value(k, "[i.children[0].value for i in _live('cellbox-gallery')[-1].children[2].children]")
    hostile = next(t for t in titles if "onerror" in t)
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile and "<img" not in hostile
    k.run(
        "_pager = _live('cellbox-gallery')[-1].children[1]\n_pager.children[2].click()"
    )  # "next", as a click sends it
    assert value(k, "_pager.children[1].value") == "files 11-16 of 16 · page 2 of 2"
    assert value(k, "len(_live('cellbox-gallery')[-1].children[2].children)") == 6


def test_a_table_pages_and_sorts_in_the_kernel(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, out = k.run(
        "%%container\nimport pandas as pd\n"
        "pd.DataFrame({'n': [3, 1, 2, 15, 4, 9, 7, 8, 6, 5, 11, 10, 13, 12, 14]}).to_csv('sorted.csv', index=False)"
    )
    assert status == "ok", out
    k.run(
        "_table = _live('cellbox-table-view')[-1]\nimport re as _re\n"
        "_cells = lambda: [int(c) for c in _re.findall(r'<td>(\\d+)</td>', _table.children[1].value)]"
    )
    assert value(k, "_cells()") == [3, 1, 2, 15, 4, 9, 7, 8, 6, 5]
    k.run("_table.children[0].children[0].value = 0")  # sort by n, as choosing it in the list sends it
    assert value(k, "_cells()") == list(range(1, 11))
    k.run("_table.children[0].children[1].value = True")  # descending
    assert value(k, "_cells()") == list(range(15, 5, -1))
    k.run("_table.children[0].children[2].children[2].click()")  # the next page of rows
    assert value(k, "_cells()") == [5, 4, 3, 2, 1]
    assert value(k, "_table.children[0].children[2].children[1].value") == "rows 11-15 of 15 · page 2 of 2"


def test_save_writes_into_the_notebooks_folder_and_replaces_on_a_second_click(kernel: tuple[Kernel, Path]) -> None:
    k, folder = kernel
    status, out = k.run(
        "%%container\nopen('keep.txt', 'w').write('from the box')\nopen('.hidden', 'w').write('x')\n"
        "open('pandas.py', 'w').write('raise SystemExit')"
    )
    assert status == "ok", out
    k.run(
        "_items = _live('cellbox-gallery')[-1].children[2].children\n"
        "_save = {i.children[0].value: i.children[-1] for i in _items}"
    )
    names = value(k, "sorted(_save)")
    keep = next(n for n in names if "keep.txt" in n)
    hidden = next(n for n in names if ".hidden" in n)
    k.run(f"_save[{keep!r}].children[0].click()")
    assert (folder / "keep.txt").read_text() == "from the box"
    assert value(k, f"_save[{keep!r}].children[1].value") == "saved keep.txt (12 B)"
    (folder / "keep.txt").write_text("edited here")
    k.run(f"_save[{keep!r}].children[0].click()")
    assert (folder / "keep.txt").read_text() == "edited here"  # not replaced on the first click
    assert (
        value(k, f"_save[{keep!r}].children[1].value")
        == "keep.txt is already in this folder: click again to replace it"
    )
    k.run(f"_save[{keep!r}].children[0].click()")
    assert (folder / "keep.txt").read_text() == "from the box"
    k.run(f"_save[{hidden!r}].children[0].click()")  # a hidden name: refused, in words
    assert not (folder / ".hidden").exists()
    assert "hidden" in value(k, f"_save[{hidden!r}].children[1].value")
    module = next(n for n in names if "pandas.py" in n)
    k.run(f"_save[{module!r}].children[0].click()")  # code that would shadow a module the notebook imports
    assert not (folder / "pandas.py").exists()
    assert "module" in value(k, f"_save[{module!r}].children[1].value")


def test_a_figure_also_saved_is_shown_once(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, out = k.run(
        "%%container\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.savefig('plot.png')\n"
        "plt.figure(); plt.plot([2, 2]); plt.savefig('unshown.png'); plt.close()"
    )
    assert status == "ok", out
    images = [m for m in out if m["type"] == "display_data" and "image/png" in m.get("data", {})]
    assert len(images) == 1  # the figure, in its place, as the inline backend shows it
    static = gallery(out)["data"]["text/html"]
    plot = static[static.index("plot.png") :]
    assert "saved from a figure the cell displayed above" in plot.split("unshown.png")[0]
    assert static.count("<img src='data:image/png") == 1  # the figure closed unshown is the gallery's to show


def test_a_result_is_read_once_and_its_rows_counted_once(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    k.run("import cellbox.session.progress as _progress\n_progress.MIN_BYTES = 0")  # every line shows
    status, _, out = k.timed(
        "%%container -o summary\nimport pandas as pd\nsummary = pd.DataFrame({'x': range(4)})\nsummary"
    )
    assert status == "ok", out
    finals = [m for m in out if m["type"] == "update_display_data" and "cell in widgets" in plain(m)]
    assert finals and "read summary (4 rows)" in plain(finals[-1]), [plain(m) for m in finals]
    assert value(k, "_ is summary and len(summary)") == 4  # the last value is the variable, as locally
    k.run("_progress.MIN_BYTES = 8 * 1024 * 1024")


def test_the_progress_line_is_a_widget_that_ends_as_the_static_line(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    k.run("import cellbox.session.progress as _progress\n_progress.MIN_BYTES = 0")
    status, _, out = k.timed("%%container -o frame\nimport pandas as pd\nframe = pd.DataFrame({'x': range(50)})")
    k.run("_progress.MIN_BYTES = 8 * 1024 * 1024")
    assert status == "ok", out
    first = next(m for m in out if m["type"] == "display_data" and "cellbox-progress" in str(m["data"]))
    assert WIDGET_VIEW in first["data"]  # live: a bar set in place
    ids = first["transient"]["display_id"]
    updates = [m for m in out if m["type"] == "update_display_data" and m["transient"]["display_id"] == ids]
    assert len(updates) == 1, updates  # the end: the static line, no widget left for a later kernel to miss
    assert WIDGET_VIEW not in updates[0]["data"] and "done in" in plain(updates[0])
    assert "value='1000' max='1000'" in updates[0]["data"]["text/html"]


def test_without_ipywidgets_the_views_are_static_and_say_so_once(
    cloud_environment: dict[str, str], tmp_path: Path
) -> None:
    env = user_env(cloud_environment, tmp_path)
    k = Kernel(env)
    try:
        # as in a kernel where ipywidgets was never installed
        status, out = k.run(
            f"import sys, os\nsys.modules['ipywidgets'] = None\nos.chdir({str(tmp_path)!r})\n%load_ext cellbox"
        )
        assert status == "ok", out
        said = []
        for _ in range(2):
            status, out = k.run("%%container\nopen('a.txt', 'w').write('a')")
            assert status == "ok", out
            assert WIDGET_VIEW not in gallery(out)["data"] and "a.txt" in gallery(out)["data"]["text/html"]
            said.append(text(out, "stderr"))
        assert said[0].count("ipywidgets is not installed") == 1 and "cellbox[widgets]" in said[0]
        assert "ipywidgets" not in said[1]
        k.run("%container delete")
    finally:
        k.stop()


def test_a_running_pool_is_a_live_grid_that_ends_as_the_static_grid(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, out = k.run("import pandas as pd\ndf = pd.DataFrame({'x': range(6)})\n%container pool 2")
    assert status == "ok", out
    status, _, out = k.timed(
        "%%container --pool --split df -o part\nimport time\ntime.sleep(1.5)\npart = df", comms=True
    )
    assert status == "ok", out
    live = next(m for m in out if m["type"] == "display_data" and WIDGET_VIEW in m["data"])
    assert live["data"]["text/plain"] == "" and "text/html" not in live["data"]  # nothing left of it but the widget
    grid = live["data"][WIDGET_VIEW]["model_id"]
    redrawn = [m for m in out if m["type"] == "comm_msg" and m["comm_id"] == grid and "value" in m["data"]["state"]]
    drawn = " ".join(m["data"]["state"]["value"] for m in redrawn)
    assert "cellbox-pool" in drawn and "running" in drawn  # the grid, set in place
    ended = [m for m in out if m["type"] == "update_display_data" and m["transient"] == live["transient"]]
    assert ended[-1]["data"] == {"text/plain": ""}  # the live grid goes; the final grid is a display of its own
    final = [m for m in out if m["type"] == "display_data" and "2 parts on 2 sandboxes: 2 done" in plain(m)]
    assert len(final) == 1 and WIDGET_VIEW not in final[0]["data"]
    assert "<script" not in final[0]["data"]["text/html"]
    k.run("%container pool --delete")
