"""The live views' parts without a kernel: a gallery widget pages and makes only the shown page's previews, keeps
every container string as text, sorts tables of mixed values; a kernel without ipywidgets is told once; the
record's new fields (`same_as`, `shown_figures`) are believed only as far as the request lets them."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cellbox.api import ContainerFile
from cellbox.common import extras
from cellbox.notebook import views, widgets
from cellbox.session.results import Artifact

ipywidgets = pytest.importorskip("ipywidgets")


def artifact(path: str, data: bytes, reads: list[str] | None = None) -> Artifact:
    record = ContainerFile.from_dict(
        {"id": "cfile_1", "container_id": "cntr_1", "path": path, "bytes": len(data), "source": "user"}
    )

    def fetch(f: ContainerFile) -> bytes:
        if reads is not None:
            reads.append(path)
        return data

    return Artifact(record, fetch, lambda f, out: out.write(data))


def values(widget: Any) -> list[str]:
    """Every string value of a widget tree: what a frontend receives as the widgets' state."""
    found = [widget.value] if isinstance(getattr(widget, "value", None), str) else []
    for child in getattr(widget, "children", ()):
        found += values(child)
    return found


def test_a_gallery_makes_only_the_shown_pages_previews() -> None:
    reads: list[str] = []
    files = [artifact(f"/mnt/data/t{i:03}.csv", b"a,b\n1,2\n", reads) for i in range(200)]
    shown = widgets.GalleryWidget(views.ArtifactGallery(files))
    assert len(shown.page.children) == widgets.ITEMS_PER_PAGE
    assert sorted(set(reads)) == [f"/mnt/data/t{i:03}.csv" for i in range(10)]
    shown.pager.go(19)
    assert shown.pager.label.value == "files 191-200 of 200 · page 20 of 20"
    assert shown.pager.next.disabled and not shown.pager.previous.disabled
    assert len(set(reads)) == 20


def test_container_strings_reach_the_widgets_escaped() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    files = [
        artifact(f"/mnt/data/{hostile}.txt", f"{hostile}\n</pre><script>alert(2)</script>".encode()),
        artifact(f"/mnt/data/{hostile}.csv", f"{hostile},b\n<script>alert(3)</script>,2\n".encode()),
    ]
    shown = widgets.GalleryWidget(views.ArtifactGallery(files))
    sent = "\n".join(values(shown.box))
    assert "&lt;img src=x onerror=alert(1)&gt;" in sent and "&lt;script&gt;alert(3)&lt;/script&gt;" in sent
    assert "<img" not in sent and "<script" not in sent


def test_a_table_sorts_mixed_values_and_repeated_labels() -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [3, "b", 1, None, "a"]}, index=[0, 0, 1, 1, 2])
    table = widgets.TableView(frame, "5 rows")
    table.sort.value = 0
    assert [str(v) for v in table.sorted["x"]] == ["1", "3", "a", "b", "None"]
    table.descending.value = True
    assert table.sorted["x"].iloc[0] == "b"
    table.sort.value = -1
    assert list(table.sorted["x"]) == list(frame["x"])[::-1]


def test_a_kernel_without_ipywidgets_is_told_once(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.setattr(extras, "_said", set())
    assert not extras.live_widgets() and not extras.live_widgets()
    said = capsys.readouterr().err
    assert said.count("ipywidgets is not installed") == 1 and "pip install 'cellbox[widgets]'" in said


def test_widgets_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv(extras.WIDGETS_SWITCH, "0")
    assert not extras.live_widgets()
    assert capsys.readouterr().err == ""


def test_a_figure_shown_by_the_cell_is_listed_not_shown_again() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    saved, other = artifact("/mnt/data/plot.png", png), artifact("/mnt/data/other.png", png)
    saved.shown_as_figure = True
    page = views.ArtifactGallery([saved, other])._repr_html_()
    assert page.count("<img src='data:image/png") == 1
    assert views.FIGURE_SHOWN in page.split("other.png")[0]
    shown = widgets.GalleryWidget(views.ArtifactGallery([saved, other]))
    images = [c for item in shown.page.children for c in item.children if isinstance(c, ipywidgets.Image)]
    assert len(images) == 1


def test_the_record_is_believed_only_as_far_as_the_request_goes() -> None:
    from cellbox.session.result_record import Result

    base: dict[str, Any] = dict(
        run_id="r",
        stdout="",
        stderr="",
        error=None,
        variables={"out": {"kind": "dataframe", "format": "parquet", "path": "/o"}},
        figures=[],
        changed=["/mnt/data/a.png"],
        duration=0.1,
    )
    value = {"kind": "dataframe", "format": "parquet", "path": "/v"}
    named = Result(**base, value={**value, "same_as": "out"})
    assert named.same_as == "out" and named.frame_specs == [base["variables"]["out"]]
    forged = Result(**base, value={**value, "same_as": "secret"})  # a name the request did not ask for
    assert forged.same_as is None and len(forged.frame_specs) == 2
