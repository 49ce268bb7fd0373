"""Memory on the notebook's side against what a container sends back (issue 21, item 5): the artifact gallery's
previews and HTML, the live output's partial line and `-o` frames are bounded whatever a file claims.

Files are real bytes: a Parquet dictionary bomb is written here as an attacker in a container would (by hand,
Thrift compact structs and zstd pages, so its footer can say anything), and pyarrow itself is shown to decode it
whole. Memory is measured in a fresh subprocess (growth of its peak resident set, VmHWM, around the preview), so
nothing this process did before counts; against the real local server, where code in the container writes the
hostile files, as this process's peak resident set, reset before the gallery is drawn.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import re
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import cellbox
from cellbox.api import ContainerFile
from cellbox.local.testing import RunningServer
from cellbox.notebook import previews, views
from cellbox.session import frames
from cellbox.session.protocol import LiveOutput
from cellbox.session.results import Artifact

MB = 1 << 20
X = "\N{MULTIPLICATION SIGN}"  # as pandas writes a frame's size in HTML
ENTRY = 64 * MB  # what each column's one dictionary entry decodes to
BOMB_COLUMNS = 300  # 300 x 64 MiB declared in about 0.6 MB


# --- a Parquet file written by hand --------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _struct(*fields: tuple[int, str, object]) -> bytes:
    """A Thrift compact struct: (id, kind, value) with kind i32, i64, bin, struct (bytes), list_i32, list_bin,
    list_struct."""
    out = bytearray()
    last = 0
    types = {"i32": 5, "i64": 6, "bin": 8, "struct": 12}
    for fid, kind, value in fields:
        code = 9 if kind.startswith("list") else types[kind]
        out.append(((fid - last) << 4) | code)
        last = fid
        if kind in ("i32", "i64"):
            out += _zigzag(value)  # type: ignore[arg-type]
        elif kind == "bin":
            data = value.encode() if isinstance(value, str) else value
            out += _varint(len(data)) + data  # type: ignore[arg-type]
        elif kind == "struct":
            out += value  # type: ignore[operator]
        else:
            items = list(value)  # type: ignore[call-overload]
            element = {"list_i32": 5, "list_bin": 8, "list_struct": 12}[kind]
            out.append((len(items) << 4 | element) if len(items) < 15 else 0xF0 | element)
            if len(items) >= 15:
                out += _varint(len(items))
            for item in items:
                if kind == "list_i32":
                    out += _zigzag(item)
                elif kind == "list_bin":
                    data = item.encode() if isinstance(item, str) else item
                    out += _varint(len(data)) + data
                else:
                    out += item
    out.append(0)
    return bytes(out)


def dictionary_bomb(columns: int = BOMB_COLUMNS, entry: int = ENTRY, footer_says: int | None = None) -> bytes:
    """A Parquet file of one row whose every string column's value is its dictionary's one `entry`-byte entry,
    zstd-compressed; `footer_says` makes the footer claim that many uncompressed bytes per column instead."""
    plain = len(b"a" * entry).to_bytes(4, "little") + b"a" * entry  # PLAIN: a length, then the bytes
    dictionary_page = pa.compress(plain, "zstd", asbytes=True)
    indices = pa.compress(b"\x00\x02", "zstd", asbytes=True)  # bit width 0, an RLE run of one index 0
    out = bytearray(b"PAR1")
    chunks, schema = [], [_struct((4, "bin", "schema"), (5, "i32", columns))]
    for c in range(columns):
        name = f"c{c}"
        schema.append(_struct((1, "i32", 6), (3, "i32", 0), (4, "bin", name), (6, "i32", 0)))  # UTF8 BYTE_ARRAY
        dictionary_offset = len(out)
        header = _struct(
            (1, "i32", 2),
            (2, "i32", len(plain)),
            (3, "i32", len(dictionary_page)),
            (7, "struct", _struct((1, "i32", 1), (2, "i32", 0))),
        )
        out += header + dictionary_page
        data_offset = len(out)
        header = _struct(
            (1, "i32", 0),
            (2, "i32", 2),
            (3, "i32", len(indices)),
            (5, "struct", _struct((1, "i32", 1), (2, "i32", 8), (3, "i32", 3), (4, "i32", 3))),
        )
        out += header + indices
        size = len(out) - dictionary_offset
        claimed = len(plain) + 2 if footer_says is None else footer_says
        meta = _struct(
            (1, "i32", 6),
            (2, "list_i32", [0, 3, 8]),
            (3, "list_bin", [name]),
            (4, "i32", 6),  # ZSTD
            (5, "i64", 1),
            (6, "i64", claimed),
            (7, "i64", size),
            (9, "i64", data_offset),
            (11, "i64", dictionary_offset),
        )
        chunks.append(_struct((2, "i64", dictionary_offset), (3, "struct", meta)))
    group = _struct((1, "list_struct", chunks), (2, "i64", columns * (claimed)), (3, "i64", 1))
    footer = _struct((1, "i32", 1), (2, "list_struct", schema), (3, "i64", 1), (4, "list_struct", [group]))
    return bytes(out + footer + len(footer).to_bytes(4, "little") + b"PAR1")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.parquet"
    path.write_bytes(dictionary_bomb())
    return path


# --- measured in a fresh process -----------------------------------------------------------------------------------

MEASURE = """
import json, sys, time
import pandas, pyarrow, pyarrow.parquet  # imported before anything is measured, as in a notebook showing tables
from cellbox.notebook import views
from cellbox.api import ContainerFile
from cellbox.session.results import Artifact


def peak():
    # This process's own peak resident set (VmHWM starts again at exec; ru_maxrss keeps the parent's at fork).
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


path = sys.argv[1]
data = open(path, "rb").read()
record = ContainerFile(id="f", container_id="c", path="/mnt/data/" + path.rsplit("/", 1)[-1], bytes=len(data))
gallery = views.ArtifactGallery([Artifact(record, lambda f: data, lambda f, target: target)])
before = peak()
started = time.perf_counter()
{what}
elapsed = time.perf_counter() - started
grown = peak() - before
print(json.dumps({{"grown": grown, "seconds": elapsed, "out": out}}))
"""


def measure(path: Path, what: str = "out = gallery._repr_html_()") -> dict[str, object]:
    """What drawing the gallery of one file cost a fresh process: peak RSS growth, seconds, and its result."""
    script = textwrap.dedent(MEASURE).format(what=what)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_bomb_is_one_and_pyarrow_decodes_it_whole(bomb: Path) -> None:
    """Without the bounds, reading the first row of a single column of it takes its 64 MiB entry and more."""
    assert 0.4 * MB < bomb.stat().st_size < 0.8 * MB
    first = "next(pq.ParquetFile(path).iter_batches(columns=['c0']))"
    read = f"import pyarrow.parquet as pq\nout = len({first}.column(0)[0].as_py())"
    found = measure(bomb, read)
    assert found["out"] == ENTRY
    assert found["grown"] > 2 * ENTRY  # the entry decompressed, then copied into the row: x300 columns is 40 GB


def test_a_dictionary_bomb_is_not_decoded(bomb: Path) -> None:
    found = measure(bomb)
    page = str(found["out"])
    assert found["grown"] < 100 * MB, f"the preview grew the process by {found['grown'] >> 20} MiB"  # type: ignore[operator]
    assert "no preview: reading its first rows would take over 8.0 MB" in page
    assert len(page) < 5 * MB  # the download link is the only large part: the file is 0.6 MB


def test_a_footer_that_understates_its_sizes_changes_nothing(tmp_path: Path) -> None:
    lying = tmp_path / "lying.parquet"
    lying.write_bytes(dictionary_bomb(columns=40, footer_says=100))
    found = measure(lying)
    assert found["grown"] < 100 * MB and "no preview: reading its first rows" in str(found["out"])  # type: ignore[operator]


def test_columns_past_the_budget_are_left_out_and_named(tmp_path: Path) -> None:
    """A cheap column beside bombs is shown; each bomb is named as left out."""
    huge = pa.array(["b" * (12 * MB)] + ["c"] * 29)
    table = pa.table({"ok": range(30), "blob": huge, "after": ["x"] * 30})
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path, compression="zstd")
    preview, said = previews.parquet(path.read_bytes())
    assert list(preview.columns) == ["ok", "after"] and preview.ok.tolist() == list(range(20))
    assert f"first 20 of 30 rows {X} 3 columns" in said and "left out" in said and "blob" in said


@pytest.mark.slow
def test_a_long_entry_is_cut_once_not_copied_into_every_row(tmp_path: Path) -> None:
    """A 2 MiB string that every row repeats (one dictionary entry) is previewed, each cell cut to a cell's length:
    copied into 20 rows and shown whole, it took 242 MiB and 40 MB of HTML."""
    path = tmp_path / "repeated.parquet"
    table = pa.table({"s": ["z" * (2 * MB)] * 1000})
    pq.write_table(table, path, compression="zstd", dictionary_pagesize_limit=8 * MB)
    found = measure(path)
    page = str(found["out"])
    assert found["grown"] < 80 * MB  # type: ignore[operator]
    assert page.count("z" * (previews.CELL_CHARS - 1) + "\N{HORIZONTAL ELLIPSIS}") == previews.PREVIEW_ROWS
    assert "z" * previews.CELL_CHARS not in page


def test_a_wide_parquet_file_shows_its_first_columns_and_says_how_many_more(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [i] * 30 for i in range(2000)}), path)
    preview, said = previews.parquet(path.read_bytes())
    assert list(preview.columns) == [f"c{i}" for i in range(50)]
    assert said == f"first 20 of 30 rows {X} 2,000 columns; the first 50 columns shown, and 1,950 more columns"


def test_a_pandas_index_is_kept_and_metadata_past_its_bound_gets_no_preview(tmp_path: Path) -> None:
    frame = pd.DataFrame({"v": range(25)}, index=pd.Index([f"row{i}" for i in range(25)], name="key"))
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    preview, said = previews.parquet(buffer.getvalue())
    assert preview.index.name == "key" and preview.index[:2].tolist() == ["row0", "row1"]
    assert said == f"first 20 of 25 rows {X} 1 columns"
    wide = pa.table({("n" * 200) + str(i): [0] for i in range(6000)})  # names alone pass 1 MB of metadata
    buffer = io.BytesIO()
    pq.write_table(wide, buffer)
    with pytest.raises(previews.NoPreview, match=r"its metadata is over 1\.0 MB"):
        previews.parquet(buffer.getvalue())


def test_nested_values_bytes_and_long_names_are_cut_in_the_table(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    name = "n" * 500
    table = pa.table({name: [list(range(10_000))] * 30, "raw": [b"\x00" * 5000] * 30, "ok": range(30)})
    pq.write_table(table, path)
    gallery = views.ArtifactGallery([artifact("/mnt/data/nested.parquet", path.read_bytes())])
    page = gallery._repr_html_()
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert len(cells) == 3 * previews.PREVIEW_ROWS and max(len(c) for c in cells) <= previews.CELL_CHARS * 6
    assert "n" * previews.CELL_CHARS not in page and page.count("..., 9997, 9998, 9999]") == previews.PREVIEW_ROWS
    assert "\\x00" in page and "\\x00" * 100 not in page


def test_page_headers_are_read_within_their_bytes_whatever_they_hold() -> None:
    """Real headers, cut short and with bytes changed (seeded): a page is read or refused, never read past."""
    from cellbox.session import parquet_pages

    buffer = io.BytesIO()
    pd.DataFrame({"s": ["a", "b"] * 50, "x": range(100), "l": [[1, 2]] * 100}).to_parquet(buffer)
    data = buffer.getvalue()
    meta = pq.read_metadata(io.BytesIO(data))
    starts = []
    for c in range(meta.num_columns):
        chunk = meta.row_group(0).column(c)
        starts.append(chunk.dictionary_page_offset or chunk.data_page_offset)
    assert all(parquet_pages.read_page(data, start, len(data)).uncompressed > 0 for start in starts)
    rng = np.random.default_rng(21)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(3000):
        start = int(rng.choice(starts))
        mutated = bytearray(data[start : start + 80])
        for at in rng.integers(0, len(mutated), int(rng.integers(1, 4))):
            mutated[at] = int(rng.integers(0, 256))
        end = int(rng.integers(1, len(mutated) + 1))
        try:
            page = parquet_pages.read_page(bytes(mutated), 0, end)
        except parquet_pages.Unreadable:
            outcomes["refused"] += 1
        else:
            assert page.header <= end
            outcomes["read"] += 1
    assert outcomes["read"] > 100 and outcomes["refused"] > 100


# --- CSV, TSV, text ------------------------------------------------------------------------------------------------


def wide_csv(columns: int = 100_000, rows: int = 2) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns)) + "\n"
    return (header + "".join(",".join(str(r) for _ in range(columns)) + "\n" for r in range(rows))).encode()


def test_a_100k_column_csv_preview_is_small_and_quick(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes(wide_csv())
    assert 1_000_000 < path.stat().st_size < 1_100_000  # 1 MB: its first MiB is read
    found = measure(path)
    page = str(found["out"])
    assert found["seconds"] < 10, f"the preview took {found['seconds']:.1f}s"  # 20 s before it was bounded
    assert found["grown"] < 100 * MB  # type: ignore[operator]
    table = page.split("<table", 1)[1].split("</table>", 1)[0]
    assert len(table) < 200_000  # 5 MB of HTML before
    assert table.count("<th>c") == previews.PREVIEW_COLUMNS and "<th>c49</th>" in table and "c50<" not in table
    assert f"first 1 row {X} 100,000 columns of a 1.1 MB file" in page
    assert "the first 50 columns shown, and 99,950 more columns" in page


def test_csv_cells_and_names_are_cut_and_escaped() -> None:
    data = ("name,<b>" + "h" * 500 + "\n" + "x" * 10_000 + ",<script>\n").encode()
    gallery = views.ArtifactGallery([artifact("/mnt/data/long.csv", data)])
    page = gallery._repr_html_()
    assert "x" * previews.CELL_CHARS not in page and "x" * (previews.CELL_CHARS - 1) + "\N{HORIZONTAL ELLIPSIS}" in page
    assert "h" * previews.CELL_CHARS not in page and "&lt;script&gt;" in page and "<script>" not in page
    assert f"1 row {X} 2 columns" in page


def test_a_tsv_is_a_table_too() -> None:
    data = b"a\tb\n" + b"".join(b"%d\t%d\n" % (i, i * 2) for i in range(30))
    gallery = views.ArtifactGallery([artifact("/mnt/data/t.tsv", data)])
    assert gallery.kind(gallery.items[0]) == "table"
    assert gallery.preview(gallery.items[0]).b.tolist() == [i * 2 for i in range(20)]
    assert f"first 20 of 30 rows {X} 2 columns" in gallery._repr_html_()


def test_text_and_json_show_their_first_lines_cut() -> None:
    lines = b"".join(b"line %d " % i + b"y" * 1000 + b"\n" for i in range(500))
    one_line_json = json.dumps({"k": "v" * 5_000_000}).encode()
    gallery = views.ArtifactGallery(
        [artifact("/mnt/data/log.txt", lines), artifact("/mnt/data/blob.json", one_line_json)]
    )
    page = gallery._repr_html_()
    log = page.split("log.txt", 1)[1].split("cellbox-artifact", 1)[0]
    assert "line 19 " in log and "line 20 " not in log and "y" * previews.TEXT_LINE_CHARS not in log
    assert "first 20 lines of a 504.9 kB file" in log
    blob = page.split("blob.json", 1)[1]
    assert "{&quot;k&quot;: &quot;vvv" in blob and "v" * previews.TEXT_LINE_CHARS not in blob
    assert "first 1 line of a 5.0 MB file" in blob
    short = views.ArtifactGallery([artifact("/mnt/data/a.md", b"# title\n\x00bell\x07\n")])._repr_html_()
    assert "2 lines" in short and "\x00" not in short and "\x07" not in short


# --- the gallery as a whole ----------------------------------------------------------------------------------------

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def artifact(path: str, data: bytes) -> Artifact:
    record = ContainerFile(id="cfile_1", container_id="cntr_1", path=path, bytes=len(data), source="assistant")
    return Artifact(record, lambda f: data, lambda f, target: target)


def test_a_gallery_shows_its_first_100_files_and_says_how_many_more() -> None:
    files = [artifact(f"/mnt/data/f{i}.bin", b"x") for i in range(20_000)]
    gallery = views.ArtifactGallery(files)
    started = time.monotonic()
    page = gallery._repr_html_()
    assert time.monotonic() - started < 10
    assert page.count("class='cellbox-artifact'") == views.MAX_ITEMS
    assert "20000 file(s) from the container" in page and "and 19,900 more file(s)" in page
    assert "f99.bin" in page and "f100.bin" not in page
    text = repr(gallery)
    assert len(text.splitlines()) == views.MAX_ITEMS + 2
    assert text.endswith("and 19,900 more: %container files lists them")


def test_a_gallery_of_hostile_files_stays_within_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many big images, wide tables and long names: the HTML is bounded by the gallery's budgets."""
    monkeypatch.setenv("CELLBOX_INLINE_MAX", "1MB")
    image = PNG + b"\0" * (9 * MB)  # under the per-image limit, each
    cells = ",".join(["w" * 300] * 60) + "\n"
    table = wide_csv(columns=60, rows=0) + (cells * 30).encode()  # each preview near the most one can be
    files = [artifact(f"/mnt/data/{'n' * 5000}{i}.png", image) for i in range(10)]
    files += [artifact(f"/mnt/data/t{i}.csv", table) for i in range(60)]
    page = views.ArtifactGallery(files)._repr_html_()
    images = page.count("<img ")
    assert images == views.IMAGES_MAX // len(image)  # two fit in 20 MB: the rest are pulled
    assert page.count("%container pull " + "n" * 50) >= 10 - images
    assert "no preview: this output's previews reached 2.0 MB" in page
    bound = views.IMAGES_MAX * 4 // 3 + 1_000_000 * 4 // 3 + views.PREVIEWS_MAX + 600_000 + 2_000 * len(files)
    assert len(page) < bound and "n" * (views.PATH_CHARS + 1) not in page


# --- the live output's partial line --------------------------------------------------------------------------------


def stream(text: str) -> dict[str, Any]:
    return {"type": "stream", "name": "stdout", "text": text}


def line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


NOTE = "cellbox: the cell wrote a line of output longer than 1 MiB"


def test_a_line_that_never_ends_keeps_memory_flat() -> None:
    """100 MiB of one line, in the pieces a poll reads: what is kept never passes the cap, and it is said once."""
    events: list[dict[str, Any]] = []
    live = LiveOutput(events.append)
    live.feed(line(stream("before\n")) + b'{"type": "stream", "name": "stdout", "text": "')
    tracemalloc.start()
    longest = 0
    piece = b"a" * (64 << 10)
    for _ in range(1600):
        live.feed(piece)
        longest = max(longest, len(live._partial))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert longest <= LiveOutput.LINE_LIMIT and peak < 4 * MB, f"{longest=} {peak=}"
    assert live.offset == len(line(stream("before\n"))) + 46 + 1600 * len(piece)
    assert [e["text"] for e in events[:1]] == ["before\n"] and len(events) == 2
    assert events[1]["name"] == "stderr" and events[1]["text"].startswith(NOTE)
    assert live.held  # what the file adds need not be read any more
    live.feed(b'"}\n' + line(stream("after\n")))  # the line ends at last: nothing more is shown live
    assert len(events) == 2
    live.finish([stream("before\n"), stream("a" * 10), stream("after\n")])  # the record, once the cell ends
    assert [e["text"] for e in events[2:]] == ["a" * 10, "after\n"]  # in order, none twice


def test_a_long_complete_line_stops_live_output_and_the_record_keeps_the_order() -> None:
    events: list[dict[str, Any]] = []
    live = LiveOutput(events.append)
    long = stream("x" * (LiveOutput.LINE_LIMIT + 10))
    live.feed(line(stream("1")) + line(long) + line(stream("3")))
    assert [e["text"][:20] for e in events] == ["1", NOTE[:20]]
    live.finish([stream("1"), long, stream("3")])
    assert [e["text"][:1] for e in events[2:]] == ["x", "3"]
    quiet = LiveOutput(events.append)  # lines under the cap go on as before
    quiet.feed(line(stream("y" * (LiveOutput.LINE_LIMIT - 100))))
    assert quiet.delivered == 1 and quiet._partial == b"" and not quiet.held


# --- -o frames -----------------------------------------------------------------------------------------------------


def zeros(path: Path, rows: int) -> Path:
    """A frame of `rows` int64 zeros: tiny on disk (one dictionary entry), rows x 8 bytes in memory."""
    pq.write_table(pa.table({"x": np.zeros(rows, dtype=np.int64)}), path)
    return path


def test_a_frame_larger_than_free_memory_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = zeros(tmp_path / "big.parquet", 5_000_000)
    assert path.stat().st_size < 200_000
    spec = {"kind": "dataframe", "format": "parquet", "rows": 5_000_000, "columns": ["x"]}

    def never(spec: dict[str, Any]) -> Any:
        raise AssertionError("the file was read")

    monkeypatch.setattr(frames, "available_memory", lambda: 50_000_000)
    monkeypatch.setattr(frames.runtime, "read_value", never)
    with pytest.raises(frames.TooLarge) as caught:
        frames.read(spec, path, name="sales")
    said = str(caught.value)
    assert "\n" not in said
    assert said.startswith(
        f"-o sales is too large to bring back: reading it would take about 100.0 MB (5,000,000 rows {X} 1"
    )
    assert "and this machine has 50.0 MB free" in said
    assert "`sample = sales.sample(100_000)` and -o sample" in said and "`%container pull sales.parquet`" in said
    monkeypatch.undo()
    assert len(frames.read(spec, path, name="sales")) == 5_000_000  # with the memory there, it is read


def test_pages_are_charged_what_their_headers_say_whatever_the_footer_claims(tmp_path: Path) -> None:
    """The footer says 100 bytes a column; the pages, which Arrow decompresses, 64 MiB: a -o read is charged those."""
    lying = tmp_path / "lying.parquet"
    lying.write_bytes(dictionary_bomb(columns=40, footer_says=100))
    needed, said = frames.declared_size({"format": "parquet"}, lying, 1 << 30)
    assert needed > 1 << 30 and said.startswith(f"1 rows {X} 40 columns, ") and said.endswith("uncompressed or more")


def test_a_footer_declaring_petabytes_is_refused_before_reading(tmp_path: Path) -> None:
    """The real free memory, whatever it is here: no machine has 3 PB."""
    path = tmp_path / "claims.parquet"
    path.write_bytes(dictionary_bomb(columns=300, footer_says=10**13))
    assert frames.available_memory() is not None  # Linux: /proc/meminfo at least
    with pytest.raises(frames.TooLarge, match=r"^-o claims is too large to bring back: reading it would take about"):
        frames.read({"kind": "dataframe", "format": "parquet"}, path, name="claims")


def test_other_formats_are_checked_by_what_they_declare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    array = tmp_path / "a.npy"
    with array.open("wb") as f:  # a header declaring 10^12 float64s, and no data
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    assert frames.declared_size({"format": "npy"}, array)[0] == 8 * 10**12
    text_file = tmp_path / "v.json"
    text_file.write_text("[" + "0," * 1000 + "0]")
    size = text_file.stat().st_size  # one list, 1,000 commas and its text: what Python makes of them at the most
    expected = frames.JSON_CONTAINER + 1000 * frames.JSON_ITEM + size * frames.JSON_BYTE
    assert frames.declared_size({"format": "json"}, text_file)[0] == expected
    monkeypatch.setattr(frames, "available_memory", lambda: 1_000_000_000)
    with pytest.raises(
        frames.TooLarge, match=r"^-o big is too large .* \(its file is 2\.0 GB\), and this machine has 1"
    ):
        frames.check_declared("big", 2_000_000_000)  # before a download, from the size the listing declares
    frames.check_declared("big", 900_000_000)


def test_free_memory_is_what_linux_says_or_less() -> None:
    said = int(re.search(r"MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) * 1024  # type: ignore[union-attr]
    free = frames.available_memory()
    assert free is not None and 0 < free <= said * 1.2  # it moves between the two readings


# --- against the real local server ---------------------------------------------------------------------------------


def _peak_rss() -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024  # type: ignore[union-attr]


@pytest.fixture
def sandbox(use_local_server: RunningServer) -> Iterator[cellbox.Sandbox]:
    sb = cellbox.Sandbox.create(name="test-notebook-memory")
    yield sb
    sb.delete()


def test_a_bomb_written_in_the_container_is_previewed_within_bounds(sandbox: cellbox.Sandbox) -> None:
    source = "\n".join(inspect.getsource(f) for f in (_varint, _zigzag, _struct, dictionary_bomb))
    code = (
        f"import pyarrow as pa\nMB = {MB}\nENTRY = {ENTRY}\nBOMB_COLUMNS = {BOMB_COLUMNS}\n{source}\n"
        "open('/mnt/data/bomb.parquet', 'wb').write(dictionary_bomb())\n"
        "header = b','.join(b'c%d' % i for i in range(100_000))\n"
        "open('/mnt/data/wide.csv', 'wb').write(header + b'\\n' + b'1,' * 99_999 + b'1\\n')"
    )
    run = sandbox.run(code)
    assert run.ok, run.error
    found = {a.name: a for a in run.artifacts}
    assert set(found) == {"bomb.parquet", "wide.csv"}, run.notes
    assert 0.4 * MB < (found["bomb.parquet"].size or 0) < 0.8 * MB
    gallery = views.ArtifactGallery(list(found.values()))
    Path("/proc/self/clear_refs").write_text("5")  # the peak resident set starts again from here
    before = _peak_rss()
    page = gallery._repr_html_()
    grown = _peak_rss() - before
    assert grown < 100 * MB, f"the gallery grew the notebook by {grown >> 20} MiB"
    assert "no preview: reading its first rows would take over 8.0 MB" in page
    assert "the first 50 columns shown, and 99,950 more columns" in page and len(page) < 3 * MB


LONG_LINE = """
import glob, os, time
print("before", flush=True)
live = max(glob.glob("/mnt/data/.cellbox/runs/*.request.json"), key=os.path.getmtime)
with open(live, "ab") as f:  # the run's live output, one line that goes on for 8 s (40 MiB)
    for _ in range(160):
        f.write(b"x" * (256 << 10))
        f.flush()
        time.sleep(0.05)
print("after")
"""


def test_a_line_the_container_never_ends_is_dropped_live(sandbox: cellbox.Sandbox) -> None:
    events: list[dict[str, Any]] = []
    live = LiveOutput(events.append)
    longest = [0]
    feed = live.feed

    def watched(data: bytes) -> None:
        feed(data)
        longest[0] = max(longest[0], len(live._partial))

    live.feed = watched  # type: ignore[method-assign]
    run = sandbox.run(LONG_LINE, live=live)
    assert run.ok, run.error
    assert longest[0] <= LiveOutput.LINE_LIMIT  # however much of the line a look read
    live.finish(run.events)
    texts = [e.get("text", "") for e in events]
    assert texts[0] == "before\n" and texts[1].startswith(NOTE) and texts[2:] == ["after\n"]


def test_a_frame_too_large_for_the_notebook_fails_and_stays_in_the_container(
    sandbox: cellbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "available_memory", lambda: 50_000_000)
    with pytest.raises(frames.TooLarge) as caught:
        sandbox.run("import numpy as np, pandas as pd\nbig = pd.DataFrame({'x': np.zeros(5_000_000)})", outputs=["big"])
    said = str(caught.value)
    assert "\n" not in said and "is too large to bring back: reading it would take about 100.0 MB" in said
    assert "this machine has 50.0 MB free" in said
    monkeypatch.undo()
    assert sandbox.run("len(big)").value == 5_000_000  # the cell ran: its variable is there to sample
