"""How runs, files and containers look: the views hold what they show, and degrade to text."""

from __future__ import annotations

import base64
import io
import os
import time

import pandas as pd
import pytest

from cellbox.api import Container, ContainerFile
from cellbox.notebook.views import ArtifactGallery, ContainerTable, FileTable, StatusView, TransferProgress
from cellbox.session import progress
from cellbox.session.errors import RemoteError
from cellbox.session.first_rows import first_rows
from cellbox.session.progress import Operation
from cellbox.session.results import Artifact

X = "\N{MULTIPLICATION SIGN}"  # as pandas writes a frame's size in HTML

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def artifact(path: str, data: bytes) -> Artifact:
    record = ContainerFile(id="cfile_1", container_id="cntr_1", path=path, bytes=len(data), source="assistant")
    return Artifact(record, lambda f: data, lambda f, target: target)


def test_gallery_shows_images_inline_tables_as_previews_and_other_files_as_links() -> None:
    csv = pd.DataFrame({"x": range(50)}).to_csv(index=False).encode()
    parquet = io.BytesIO()
    pd.DataFrame({"y": ["a", "b"]}).to_parquet(parquet)
    gallery = ArtifactGallery(
        [
            artifact("/mnt/data/plot.png", PNG),
            artifact("/mnt/data/out/table.csv", csv),
            artifact("/mnt/data/t.parquet", parquet.getvalue()),
            artifact("/mnt/data/notes.bin", b"\x00\x01"),
        ]
    )
    assert [gallery.kind(a) for a in gallery.items] == ["image", "table", "table", "file"]
    page = gallery._repr_html_()
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page
    assert len(gallery.preview(gallery.items[1])) == 20 and "<table" in page  # a preview, not the whole file
    assert gallery.preview(gallery.items[2]).y.tolist() == ["a", "b"]
    assert "download='notes.bin'" in page and "2 B" in page
    text = repr(gallery)
    assert "4 file(s)" in text and f"/mnt/data/out/table.csv  ({len(csv)} B)" in text


def test_a_file_that_is_not_the_table_its_name_says_is_shown_as_a_file() -> None:
    page = ArtifactGallery([artifact("/mnt/data/broken.parquet", b"not parquet")])._repr_html_()
    assert "no preview" in page and "download='broken.parquet'" in page


def test_huge_files_are_not_embedded() -> None:
    big = artifact("/mnt/data/big/dump.bin", b"x")
    big.file.bytes = 50_000_000
    page = ArtifactGallery([big])._repr_html_()
    assert "%container pull big/dump.bin" in page and "base64" not in page


def test_status_view_counts_down_to_expiry() -> None:
    now = int(time.time())
    box = Container.from_dict(
        {
            "id": "cntr_abc",
            "name": "demo",
            "status": "running",
            "memory_limit": "4g",
            "last_active_at": now,
            "expires_after": {"anchor": "last_active_at", "minutes": 20},
        }
    )
    view = StatusView(box)
    ((name, cid, status, memory, expires),) = view.rows
    assert (name, cid, status, memory) == ("demo", "cntr_abc", "running", "4g")
    assert expires in ("20m 00s", "19m 59s", "19m 58s")
    assert "cntr_abc" in view._repr_html_() and "expires in" in repr(view)
    expired = Container.from_dict({**box.to_dict(), "status": "expired"})
    assert ContainerTable([expired]).rows[0][4] == "-"


def test_file_table_is_sorted_by_path_with_sizes() -> None:
    files = [
        ContainerFile(id="2", path="/mnt/data/b.csv", bytes=2_500_000, source="user"),
        ContainerFile(id="1", path="/mnt/data/a.txt", bytes=12, source="assistant"),
    ]
    assert FileTable(files).rows == [("/mnt/data/a.txt", "12 B", "assistant"), ("/mnt/data/b.csv", "2.5 MB", "user")]


def test_progress_outside_a_kernel_is_a_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.step(TransferProgress, "push to demo") as operation:
        operation.phase("uploading", 10_000_000)
        operation.update(4_000_000)
        operation.update(6_000_000)
    err = capsys.readouterr().err
    assert err.endswith("\n") and "push to demo: uploaded 10.0 MB in " in err and "done in" in err
    bar = TransferProgress(operation)
    assert "<progress value='1000' max='1000'" in bar._repr_html_() and repr(bar) == operation.describe()


def test_a_running_line_is_left_empty_and_a_transfer_line_keeps_its_end() -> None:
    quiet = Operation(None, "cell in demo")
    quiet.indicate("running in demo · 3 s")
    view = TransferProgress(quiet)
    assert view.bundle()["text/plain"] == "running in demo · 3 s" and "opacity" in view.bundle()["text/html"]
    quiet.close()
    assert view.bundle() == {"text/plain": ""}  # the saved notebook keeps nothing of it
    moved = Operation(None, "cell in demo")
    moved.phase("downloading", 10_000_000)
    moved.phase("running", unit="")
    assert "<progress max='1000'" in TransferProgress(moved).bundle()["text/html"]  # running: a bar that moves
    moved.close()
    assert TransferProgress(moved).bundle()["text/plain"].endswith(" s · ran 0.0 s · done in 0.0 s")


def test_previews_say_how_much_of_the_file_they_show() -> None:
    many = pd.DataFrame({"x": range(6000), "y": 1}).to_csv(index=False).encode()
    parquet = io.BytesIO()
    pd.DataFrame({"x": range(6000)}).to_parquet(parquet)
    page = ArtifactGallery(
        [
            artifact("/mnt/data/many.csv", many),
            artifact("/mnt/data/few.csv", b"a,b\n1,2\n"),
            artifact("/mnt/data/many.parquet", parquet.getvalue()),
        ]
    )._repr_html_()
    assert f"first 20 of 6,000 rows {X} 2 columns" in page and f"1 row {X} 2 columns" in page
    assert f"first 20 of 6,000 rows {X} 1 columns" in page


def test_downloads_embedded_in_the_notebook_stop_at_cellbox_inline_max(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [artifact(f"/mnt/data/f{i}.bin", bytes(400)) for i in range(3)]
    monkeypatch.setenv("CELLBOX_INLINE_MAX", "1kB")
    page = ArtifactGallery(files)._repr_html_()
    assert page.count("download='") == 2  # 800 bytes of 1000: the third would pass the cap
    assert "too large to embed (CELLBOX_INLINE_MAX is 1.0 kB): <code>%container pull f2.bin</code>" in page
    monkeypatch.setenv("CELLBOX_INLINE_MAX", "0")
    assert "download='" not in ArtifactGallery(files)._repr_html_()
    monkeypatch.setenv("CELLBOX_INLINE_MAX", "lots")
    page = ArtifactGallery(files)._repr_html_()
    assert page.count("download='") == 3 and "CELLBOX_INLINE_MAX=&#x27;lots&#x27; is not a size such as 2MB" in page


def test_the_first_rows_of_a_longer_frame_say_so() -> None:
    shown = first_rows(pd.DataFrame({"a": range(100), "b": 0}), 1_000_000)
    assert shown.total_rows == 1_000_000 and len(shown) == 100
    with pd.option_context("display.max_rows", 10):
        assert repr(shown).endswith("[first 100 of 1,000,000 rows x 2 columns]")
        assert f"<p>first 100 of 1,000,000 rows {X} 2 columns</p>" in shown._repr_html_()
    assert type(shown.head()) is pd.DataFrame and type(shown + 1) is pd.DataFrame  # only what came back is partial
    series = first_rows(pd.Series(range(100), name="a"), 1_000_000)
    with pd.option_context("display.max_rows", 10):
        assert "Name: a, first 100 of 1,000,000 rows, dtype: int64" in repr(series)


def test_remote_error_renders_the_remote_traceback() -> None:
    error = RemoteError("KeyError", "'price'", 'Traceback (most recent call last):\n  File "<cell>", line 3\nKeyError')
    lines = error._render_traceback_()
    # As a local IPython traceback looks: the remote one as the container's IPython formatted it, no header of ours.
    assert lines[0] == "Traceback (most recent call last):" and lines[-1] == "KeyError"


def test_the_inline_cap_can_live_in_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in [n for n in os.environ if n.startswith("CELLBOX_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "cellbox").mkdir()
    (tmp_path / "cellbox" / "config.toml").write_text('inline_max = "500"\n')
    files = [artifact(f"/mnt/data/f{i}.bin", bytes(400)) for i in range(3)]
    assert ArtifactGallery(files)._repr_html_().count("download='") == 1
    monkeypatch.setenv("CELLBOX_INLINE_MAX", "2kB")  # the environment comes first, as for every setting
    assert ArtifactGallery(files)._repr_html_().count("download='") == 3
