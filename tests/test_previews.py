"""The artifact gallery reads a bounded prefix of a file, whatever size the file claims: a sparse 2 GiB CSV made
in a container is previewed from its first bytes, without the notebook's memory growing with the claim.

Against the real local server. Memory is the process's peak resident set (`VmHWM`), reset before the gallery
is drawn (`/proc/self/clear_refs`), so the figure is what drawing it cost."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas  # noqa: F401  # imported before anything is measured, as in a notebook that shows tables
import pytest

import cellbox
from cellbox.local.testing import RunningServer
from cellbox.notebook import views
from cellbox.session.results import Artifact

SPARSE = 2 << 30  # what the files claim: 2 GiB, of which a few KB are on disk
MAX_GROWTH = 50 << 20
MAX_SECONDS = 5.0

MAKE_FILES = f"""
rows = b"region,total\\n" + b"".join(b"r%d,%d\\n" % (i, i * 10) for i in range(100))
for name in ("big.csv", "big.parquet", "big.png"):
    with open("/mnt/data/" + name, "wb") as f:
        f.truncate({SPARSE})
        f.write(rows)
"""


def _peak_rss() -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024  # type: ignore[union-attr]


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


@pytest.fixture
def sandbox(use_local_server: RunningServer) -> Iterator[cellbox.Sandbox]:
    sb = cellbox.Sandbox.create(name="test-previews")
    yield sb
    sb.delete()


@pytest.fixture
def sparse_files(sandbox: cellbox.Sandbox) -> dict[str, Artifact]:
    run = sandbox.run(MAKE_FILES)
    assert run.ok, run.error
    found = {a.name: a for a in run.artifacts}
    assert set(found) == {"big.csv", "big.parquet", "big.png"}, run.notes
    assert all(a.size == SPARSE for a in found.values())
    return found


def test_a_sparse_2gib_csv_is_previewed_from_its_first_rows(sparse_files: dict[str, Artifact]) -> None:
    gallery = views.ArtifactGallery(list(sparse_files.values()))
    try:
        _reset_peak_rss()
    except OSError:
        pytest.skip("this kernel can't reset the peak resident set size")
    before = _peak_rss()
    started = time.monotonic()
    page = gallery._repr_html_()
    elapsed = time.monotonic() - started
    grown = _peak_rss() - before

    assert elapsed < MAX_SECONDS, f"drawing the gallery took {elapsed:.1f}s"
    assert grown < MAX_GROWTH, f"the notebook grew by {grown >> 20} MiB"
    csv = page.split("big.csv", 1)[1].split("cellbox-artifact", 1)[0]
    assert "<table" in csv and "region" in csv and "r0" in csv and "r19" in csv and "r20" not in csv
    assert "%container pull big.csv" in csv and "first 20 rows" in csv  # too large to embed as a download
    parquet = page.split("big.parquet", 1)[1].split("cellbox-artifact", 1)[0]
    assert "no preview" in parquet and "too large" in parquet and "%container pull big.parquet" in parquet
    png = page.split("big.png", 1)[1].split("cellbox-artifact", 1)[0]
    assert "<img" not in png and "%container pull big.png" in png
    preview = gallery.preview(sparse_files["big.csv"])
    assert preview.region.tolist()[:3] == ["r0", "r1", "r2"] and len(preview) == views.PREVIEW_ROWS


def test_a_prefix_read_stops_where_it_is_asked_to(sparse_files: dict[str, Artifact]) -> None:
    big = sparse_files["big.csv"]
    started = time.monotonic()
    assert big.head(13) == b"region,total\n"
    assert big.head(5) == b"regio"  # from what was read already
    head = big.head(1 << 20)
    assert len(head) == 1 << 20 and head.startswith(b"region,total\nr0,0\n") and head.endswith(b"\0")
    assert time.monotonic() - started < MAX_SECONDS


# --- what the gallery asks for, whatever the listing claims ------------------------------------------------------


class Endless:
    """A file that is as long as anyone reads (its listing may claim anything): records what is asked for."""

    def __init__(self, start: bytes) -> None:
        self.start = start
        self.asked: list[int] = []

    def head(self, _file: object, limit: int) -> bytes:
        self.asked.append(limit)
        return (self.start + b"\0" * limit)[:limit]

    def whole(self, _file: object) -> bytes:
        raise AssertionError("the whole file was read")


def _artifact(path: str, claimed: int | None, source: Endless) -> Artifact:
    from cellbox.api import ContainerFile

    record = ContainerFile(id="cfile_1", container_id="cntr_1", path=path, bytes=claimed, source="assistant")
    return Artifact(record, source.whole, lambda f, target: target, _head=source.head)


@pytest.mark.parametrize("claimed", [None, 10, SPARSE])
def test_previews_ask_for_a_bounded_prefix_whatever_the_file_claims(claimed: int | None) -> None:
    rows = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(30)) + b"31,3"  # the last line cut
    files = {name: Endless(rows) for name in ("t.csv", "p.png", "x.bin", "q.parquet")}
    gallery = views.ArtifactGallery([_artifact(f"/mnt/data/{name}", claimed, source) for name, source in files.items()])
    page = gallery._repr_html_()
    limits = {views.CSV_PREVIEW_BYTES + 1, views.INLINE_IMAGE_LIMIT + 1, views.INLINE_MAX + 1}
    limits.add(views.PARQUET_PREVIEW_LIMIT + 1)
    assert all(limit in limits for source in files.values() for limit in source.asked)
    assert gallery.preview(gallery.items[0]).a.tolist() == list(range(20))
    for name in ("p.png", "x.bin", "q.parquet"):  # longer than any cap: not embedded, pull offered
        assert f"%container pull {name}" in page
    assert "<img" not in page and "no preview" in page


def test_a_csv_whose_first_line_never_ends_gets_no_preview() -> None:
    gallery = views.ArtifactGallery([_artifact("/mnt/data/wide.csv", SPARSE, Endless(b"a" * (2 << 20)))])
    assert "no preview: no complete line in its first" in gallery._repr_html_()
