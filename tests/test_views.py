"""How runs, files and containers look: the views hold what they show, and degrade to text."""

from __future__ import annotations

import base64
import io
import time

import pandas as pd
import pytest

from cellbox.api import Container, ContainerFile
from cellbox.results import Artifact, RemoteError
from cellbox.views import ArtifactGallery, ContainerTable, FileTable, StatusView, TransferProgress

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
    bar = TransferProgress("push to demo", 10_000_000)
    bar.update(4_000_000)
    bar.update(6_000_000)
    bar.close()
    assert bar.done == bar.total and bar.closed
    err = capsys.readouterr().err
    assert err.endswith("\n") and "push to demo: 10.0 MB of 10.0 MB" in err and "done" in err
    assert "<progress value='10000000' max='10000000'" in bar._repr_html_()


def test_remote_error_renders_the_remote_traceback() -> None:
    error = RemoteError("KeyError", "'price'", 'Traceback (most recent call last):\n  File "<cell>", line 3\nKeyError')
    lines = error._render_traceback_()
    # As a local IPython traceback looks: the remote one as the container's IPython formatted it, no header of ours.
    assert lines[0] == "Traceback (most recent call last):" and lines[-1] == "KeyError"
