"""`-o` values a hostile container sends back: a file of a few hundred bytes must not take the notebook's memory.

Code in the container can write the result record itself (FORGE, as tests/test_attack_notebook.py does), so a
value's file and its spec say whatever it likes. Three ways a tiny file took gigabytes, each fixed:

- a Parquet string column whose one 4 MiB dictionary entry 300 rows name (390 bytes, 2.3 GB read): a read is now
  charged every row's copy of the entry it names, from the page headers and the dictionary itself;
- a CSV whose spec's `dtypes` said 'S100000000' (43 bytes, 1 GB): only the dtypes the runtime writes are read,
  in the record's schema and in the runtime's reader;
- JSON of empty lists (60 MB allowed as 457 MiB, 2.7 GB read): lists, dicts and values are counted in the file.

And one found on the way: a CSV whose lines are short (pandas fills each to the header's width), now charged by
its lines times its header's fields. The end-to-end tests run the hostile cells against the real local server from
a fresh process told it has 1 GiB free, and measure that process's peak resident set (VmHWM, reset before each
value); ordinary values come back through the same process.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kernelhelp import FORGE

from cellbox.boundary import record
from cellbox.local.testing import RunningServer
from cellbox.runtime import values
from cellbox.session import frames, parquet_pages

MB = 1 << 20
GIB = 1 << 30
GROWN = 200 * MB  # what reading a refused value may cost the notebook, at the most (each bomb took 1-2.7 GB)


# --- the dtypes a CSV's record may name ----------------------------------------------------------------------------


def every_dtype() -> pd.DataFrame:
    """A frame of every kind of column pandas makes, read or not."""
    import datetime

    when = pd.to_datetime(["2024-03-01 12:00"])
    return pd.DataFrame(
        {
            "i": [1],
            "u8": np.array([1], dtype="uint8"),
            "f32": np.array([1.5], dtype="float32"),
            "c": [1 + 2j],
            "b": [True],
            "s": ["x"],
            "o": pd.Series([b"x"], dtype=object),
            "n": pd.array([1], dtype="Int64"),
            "nb": pd.array([True], dtype="boolean"),
            "ns": pd.array(["x"], dtype="string"),
            "cat": pd.Categorical(["x"], categories=["y", "x"], ordered=True),
            "t": when,
            "paris": when.tz_localize("Europe/Paris"),
            "offset": when.tz_localize(datetime.timezone(datetime.timedelta(hours=2))),
            "file_tz": when.tz_localize("dateutil/Europe/Paris"),
            "d": pd.to_timedelta([5], "s"),
            "p": pd.period_range("2024", periods=1, freq="D"),
            "iv": pd.interval_range(0, 1),
            "arrow": pd.array([1], dtype="int64[pyarrow]"),
            "sparse": pd.arrays.SparseArray([0.0]),
        }
    )


def a_record(tmp_path: Path, spec: dict[str, Any]) -> None:
    """`record.check` of a record bringing back `spec` as `-o x`."""
    out = tmp_path / "runs" / "r1.out"
    spec = {"kind": "dataframe", "format": "csv", "path": f"{out}/x.csv", **spec}
    record.check(
        {"run_id": "r1", "outputs": {"x": spec}},
        run_id="r1",
        data_dir=str(tmp_path),
        out_dir=str(out),
        private_dir=str(tmp_path / "runs"),
    )


def test_the_schema_and_the_reader_allow_the_same_dtypes() -> None:
    assert set(record.DTYPE_NAMES) == values.DTYPES and record.TIME_ZONE == values.TIME_ZONE


def test_the_schema_allows_every_kind_and_format_the_runtime_writes() -> None:
    assert record.OUTPUT_KINDS == values.KINDS and record.FORMATS == values.FORMATS
    assert set(values.LAST_VALUE_KINDS) <= set(record.VALUE_KINDS)


def test_a_dtype_map_names_only_what_is_read_and_passes_the_schema(tmp_path: Path) -> None:
    frame = every_dtype()
    written = values.dtype_map(frame)
    assert written["file_tz"] == "datetime64[us, UTC]"  # its zone is a file's: the same instants, in UTC
    assert written["offset"] == "datetime64[us, UTC+02:00]" and written["paris"] == "datetime64[us, Europe/Paris]"
    assert written["cat"] == {"dtype": "category", "categories": ["y", "x"], "ordered": True}
    assert not {"p", "iv", "arrow", "sparse"} & set(written)  # read back as CSV gives them, untyped
    for dtype in written.values():
        values.check_dtype(dtype)
    a_record(tmp_path, {"dtypes": written})


def test_a_csv_written_without_pyarrow_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns of dtypes not read come back as CSV gives them; a zone known by its file, as the same instants."""
    monkeypatch.setattr(values, "_has_pyarrow", lambda: False)
    frame = every_dtype()[["i", "paris", "offset", "file_tz", "p", "cat"]]
    spec = values.write_frame(frame, str(tmp_path / "f"), "dataframe")
    back = values.read_value(spec)
    pd.testing.assert_frame_equal(back[["i", "paris", "offset", "cat"]], frame[["i", "paris", "offset", "cat"]])
    assert back["file_tz"].iloc[0] == frame["file_tz"].iloc[0] and str(back["file_tz"].dt.tz) == "UTC"
    assert back["p"].tolist() == ["2024-01-01"]


BAD_DTYPES: list[Any] = [
    "S100000000",  # the bomb: 100 MB a row
    "U100000000",
    "V100000000",
    "(100000,)f8",
    "a100000000",
    "category",  # the runtime writes a category as a dict
    "int64\n",
    " int64",
    "datetime64[ns, dateutil//etc/passwd]",  # a path opened on the host
    "datetime64[ns, dateutil/Europe/Paris]",
    "datetime64[ns, /etc/localtime]",
    "datetime64[ns, Europe/../../etc/passwd]",
    "datetime64[ns, tzfile('/usr/share/zoneinfo/UTC')]",
    "datetime64[ns, " + "A" * 70 + "]",
    "datetime64[D]",
    "period[D]",
    "interval[int64, right]",
    "Sparse[float64, nan]",
    "int64[pyarrow]",
    7,
    None,
    ["int64"],
    {"dtype": "category", "categories": [[1]], "ordered": False},
    {"dtype": "category", "categories": ["x"]},
    {"dtype": "category", "categories": ["x"], "ordered": False, "more": 1},
    {"dtype": "S100", "categories": [], "ordered": False},
]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=[repr(d)[:40] for d in BAD_DTYPES])
def test_any_other_dtype_is_refused_by_the_schema_and_the_reader(
    dtype: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(record.RecordRefused, match=r"^the container's result record was refused: it does not"):
        a_record(tmp_path, {"dtypes": {"a": dtype}})
    path = tmp_path / "x.csv"
    path.write_text(",a\n0,x\n")
    with pytest.raises(values.BadDtype):  # a value pushed from the notebook is read this way in the container
        values.read_value({"kind": "dataframe", "format": "csv", "path": str(path), "dtypes": {"a": dtype}})

    def unread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file was read")

    monkeypatch.setattr(frames, "available_memory", lambda: None)  # no size check: the reader refuses it alone
    monkeypatch.setattr(pd, "read_csv", unread)
    spec = {"kind": "dataframe", "format": "csv", "rows": 1, "columns": ["a"], "dtypes": {"a": dtype}}
    with pytest.raises(record.RecordRefused) as refused:
        frames.read(spec, path, name="x")
    said = str(refused.value)
    assert "\n" not in said and said.startswith("the container's result record was refused: -o x names a dtype")


def test_time_zones_are_names_never_paths() -> None:
    for zone in ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC+01:00", "EST5EDT"):
        values.check_dtype(f"datetime64[ns, {zone}]")
    for zone in ("dateutil/UTC", "/etc/localtime", "../UTC", "Europe/./Paris", "Europe//Paris", "a/b/c/d/e", ""):
        with pytest.raises(values.BadDtype):
            values.check_dtype(f"datetime64[ns, {zone}]")


# --- what reading a file is charged, against what it takes -------------------------------------------------------

PEAK = """
import gc, json, sys
import numpy, pandas, pyarrow, pyarrow.parquet
from cellbox.runtime import values

def peak():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024

spec = json.loads(sys.argv[1])
values.read_value(dict(spec, path=spec["warm"]))  # Arrow's and pandas' first use is not the file's
gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here
before = peak()
value = values.read_value(spec)
print(json.dumps({"grown": peak() - before}))
"""


def read_peak(spec: dict[str, Any], warm: Path) -> int:
    """How much reading a value's file grew a fresh process's peak resident set."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, json.dumps({**spec, "warm": str(warm)})], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown: int = json.loads(done.stdout.splitlines()[-1])["grown"]
    return grown


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("warm")
    pd.DataFrame({"a": ["x", "y"], "b": [1, 2]}).to_parquet(folder / "w.parquet")
    (folder / "w.csv").write_text(",a\n0,x\n")
    (folder / "w.json").write_text("[1]")
    return {"parquet": folder / "w.parquet", "csv": folder / "w.csv", "json": folder / "w.json"}


def parquet_cases(folder: Path) -> Iterator[tuple[str, Path]]:
    n = 300_000
    frames_ = {
        "numbers": pd.DataFrame({f"c{i}": np.arange(n) for i in range(6)}),
        "strings": pd.DataFrame(
            {"repeated": [f"user{i % 5000}" for i in range(n)], "unique": list(map(str, range(n)))}
        ),
        "categories": pd.DataFrame(
            {"c": pd.Categorical.from_codes(np.arange(n) % 50, [f"k{i}" * 200 for i in range(50)])}
        ),
        "nullable": pd.DataFrame({"b": pd.array([True, None, False] * (n // 3)), "i": pd.array([1, None] * (n // 2))}),
        "lists": pd.DataFrame(
            {"l": [list(range(i % 7)) for i in range(n)], "w": [["a", f"b{i % 9}"] for i in range(n)]}
        ),
        "a long entry among short ones": pd.DataFrame({"r": ["z" * 4000] * 2000 + ["y"] * n}),
    }
    for name, frame in frames_.items():
        path = folder / f"{name}.parquet"
        frame.to_parquet(path)
        yield name, path
    path = folder / "decimals.parquet"
    import decimal

    pq.write_table(pa.table({"d": pa.array([decimal.Decimal(i % 999) for i in range(n)], pa.decimal128(9, 2))}), path)
    yield "decimals", path


def test_a_parquet_read_is_charged_at_least_what_it_takes(tmp_path: Path, warm: dict[str, Path]) -> None:
    for name, path in parquet_cases(tmp_path):
        charged = frames.declared_size({"format": "parquet"}, path)[0]
        grown = read_peak({"kind": "dataframe", "format": "parquet", "path": str(path)}, warm["parquet"])
        assert grown <= charged, f"{name}: read took {grown >> 20} MiB, charged {charged >> 20} MiB"


def the_bomb(path: Path, rows: int = 300) -> Path:
    """The attack's file: one 4 MiB dictionary entry, named by every row (no pandas schema, zstd)."""
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["A" * (4 << 20)]))
    pq.write_table(pa.table({"s": column}), path, store_schema=False, compression="zstd")
    return path


def test_every_row_is_charged_the_dictionary_entry_it_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = the_bomb(tmp_path / "bomb.parquet")
    assert bomb.stat().st_size < 1_000
    needed, said = frames.declared_size({"format": "parquet"}, bomb, GIB)
    assert needed > 300 * 4 * MB and said.endswith("1.3 GB of strings decoded")
    monkeypatch.setattr(frames, "available_memory", lambda: GIB)
    monkeypatch.setattr(frames.runtime, "read_value", lambda spec: pytest.fail("the file was read"))
    with pytest.raises(frames.TooLarge, match=r"^-o s is too large to bring back: reading it would take about 3\."):
        frames.read({"kind": "dataframe", "format": "parquet"}, bomb, name="s")


def test_a_rare_long_entry_is_charged_by_the_rows_that_name_it(tmp_path: Path) -> None:
    """Rows times the longest entry would be 4 GB here: looked up row by row where that doesn't fit, it is 9 MB."""
    path = tmp_path / "rare.parquet"
    pd.DataFrame({"r": ["z" * 4000] * 2000 + ["y"] * 1_000_000}).to_parquet(path)
    needed, said = frames.declared_size({"format": "parquet"}, path, GIB)
    assert needed < 200 * MB and said.endswith("9.0 MB of strings decoded")


def test_a_page_encoded_beyond_what_its_header_bounds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "delta.parquet"
    pq.write_table(
        pa.table({"s": ["a", "b"] * 10}), path, use_dictionary=False, column_encoding={"s": "DELTA_BYTE_ARRAY"}
    )
    with pytest.raises(record.RecordRefused, match=r"-o d's file can't be checked before it is read: a page encoded"):
        frames.read({"kind": "dataframe", "format": "parquet"}, path, name="d")


@pytest.mark.parametrize("codec", ["none", "snappy", "gzip", "brotli", "zstd", "lz4"])
def test_a_dictionary_is_decoded_for_its_longest_entry(codec: str, tmp_path: Path) -> None:
    words = [f"{i}:" + "w" * (i % 37) for i in range(3000)]
    path = tmp_path / f"{codec}.parquet"
    pq.write_table(pa.table({"s": words * 3}), path, compression=codec)
    meta = pq.read_metadata(path)
    chunk = meta.row_group(0).column(0)
    data = path.read_bytes()
    pages = parquet_pages.chunk_pages(data, chunk, parquet_pages.Limits())
    assert pages.dictionary is not None and pages.dictionary.values == 3000 and pages.indexed == 9000
    assert parquet_pages.longest_entry(data, pages, chunk.compression) == max(map(len, words))


def json_cases() -> dict[str, str]:
    n = 100_000
    return {
        "lists": "[" + ",".join(["[]"] * n) + "]",
        "dicts": "[" + ",".join(['{"":0}'] * n) + "]",
        "keys": "{" + ",".join(f'"{i:x}":0' for i in range(n)) + "}",
        "numbers": "[" + ",".join(f"{i}.5" for i in range(n)) + "]",
        "wide text": json.dumps("\N{GRINNING FACE}" + "a" * 5_000_000, ensure_ascii=False),
        "tuples": "[" + ",".join(['{"__cellbox__": "tuple", "items": []}'] * n) + "]",
        "ordinary": json.dumps({"runs": [{"name": f"run {i}", "score": i / 7, "ok": True} for i in range(n)]}),
    }


def test_json_is_charged_at_least_what_reading_it_takes(tmp_path: Path) -> None:
    for name, content in json_cases().items():
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        path.write_text(content, encoding="utf-8")
        charged = frames.declared_size({"format": "json"}, path)[0]
        tracemalloc.start()
        values.read_value({"format": "json", "path": str(path)})
        took = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert took <= charged, f"{name}: read took {took >> 20} MiB, charged {charged >> 20} MiB"
        if name == "ordinary":
            assert charged < 4 * took  # ordinary JSON isn't charged many times what it takes


def test_the_empty_list_bomb_is_charged_what_it_takes(tmp_path: Path) -> None:
    path = tmp_path / "lists.json"
    path.write_text("[" + ",".join(["[]"] * 20_000_000) + "]")  # 60 MB: allowed as 457 MiB before, took 2.7 GB
    needed, said = frames.declared_size({"format": "json"}, path)
    assert needed > 2.7e9 and said == "a 60.0 MB JSON file of 20,000,001 lists and dicts"


def test_a_csv_header_is_as_wide_as_pandas_reads_it() -> None:
    """Short random CSVs of commas, quotes and line ends: pandas' frame is never wider than the header width found,
    and one, nor longer than the file's lines; a first record cut short is said to be unknown."""
    rng = random.Random(21)
    pieces = [b",", b'"', b"\n", b"\r", b" ", b"a", b"\t", b"\r\n", b"b,c", b'""']
    compared = 0
    for _ in range(3000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        try:
            frame = pd.read_csv(io.BytesIO(data), index_col=0)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        cut = rng.randint(1, len(data))
        for head, whole in ((data, True), (data[:cut], cut == len(data))):
            width = frames.csv_header_width(head, whole)
            if width is None:
                continue
            compared += 1
            assert len(frame.columns) <= width and len(frame) <= data.count(b"\n") + data.count(b"\r") + 1, data
    assert compared > 1000


def test_a_csv_is_charged_at_least_what_reading_it_takes(tmp_path: Path, warm: dict[str, Path]) -> None:
    cases = {
        "short lines": (",".join(f"c{i}" for i in range(300)) + "\n" + "0\n" * 20_000, {}),
        "wide": (",".join(f"c{i}" for i in range(20_000)) + "\n" + ",".join(["1"] * 20_000) + "\n", {}),
        "numbers made text": (",a\n" + "".join(f",{i}.5\n" for i in range(300_000)), {"a": "str"}),
        "empty made objects": (",a,b\n" + ",,\n" * 300_000, {"a": "object", "b": "object"}),
    }
    for name, (content, dtypes) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.csv"
        path.write_text(content)
        charged = frames.declared_size({"format": "csv"}, path)[0]
        spec = {"kind": "dataframe", "format": "csv", "path": str(path), "dtypes": dtypes}
        grown = read_peak(spec, warm["csv"])
        assert grown <= charged, f"{name}: read took {grown >> 20} MiB, charged {charged >> 20} MiB"


# --- against the real local server ---------------------------------------------------------------------------------

CHILD = """
import gc, json, sys
import numpy, pandas, pyarrow, pyarrow.parquet  # imported before anything is measured, as in a notebook
import cellbox
from cellbox.session import frames

frames.available_memory = lambda: {free}  # this notebook has 1 GiB free, whatever the machine has


def peak():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024


cases = json.loads(sys.stdin.read())
found = {{}}
sandbox = cellbox.Sandbox.create(name="test-value-bombs")
try:
    sandbox.run("1")  # the first run's own costs are not a value's
    for name, (code, summary) in cases.items():
        gc.collect()
        open("/proc/self/clear_refs", "w").write("5")  # the peak resident set starts again from here
        before = peak()
        try:
            x = sandbox.run(code, outputs=["x"]).variables["x"]
            result = {{"summary": eval(summary)}}
        except Exception as exc:
            result = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
        result["grown"] = peak() - before
        x = None
        found[name] = result
    found["after"] = sandbox.run("6 * 7").value
finally:
    sandbox.delete()
print(json.dumps(found))
"""

BOMBS = {
    "parquet": """
import pandas as pd, pyarrow as pa, pyarrow.parquet as pq
x = pd.DataFrame({'a': [1]})
def forge(r):
    path = r['outputs']['x']['path']
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 300, pa.int32()), pa.array(['A' * (4 << 20)]))
    pq.write_table(pa.table({'s': column}), path, store_schema=False, compression='zstd')
    r['outputs']['x'].update(rows=300, columns=['s'])
    r.get('inline', {}).pop(path, None)
    return r
""",
    "csv dtype": """
import pandas as pd
x = pd.DataFrame({'a': [1]})
def forge(r):
    path = r['outputs']['x']['path'].rsplit('.', 1)[0] + '.csv'
    with open(path, 'w') as f:
        f.write(',a\\n' + ''.join(f'{i},x\\n' for i in range(10)))
    r['outputs']['x'] = {'kind': 'dataframe', 'format': 'csv', 'path': path, 'rows': 1, 'columns': ['a'],
                         'dtypes': {'a': 'S100000000'}}
    r.get('inline', {}).clear()
    return r
""",
    "json": """
x = [1]
def forge(r):
    path = r['outputs']['x']['path']
    with open(path, 'w') as f:
        f.write('[' + ','.join(['[]'] * 10_000_000) + ']')
    r.get('inline', {}).pop(path, None)
    return r
""",
    "csv short lines": """
import pandas as pd
x = pd.DataFrame({'a': [1]})
def forge(r):
    path = r['outputs']['x']['path'].rsplit('.', 1)[0] + '.csv'
    with open(path, 'w') as f:
        f.write(','.join(f'c{i}' for i in range(2000)) + '\\n' + '0\\n' * 100_000)
    r['outputs']['x'] = {'kind': 'dataframe', 'format': 'csv', 'path': path, 'rows': 1, 'columns': ['c1']}
    r.get('inline', {}).clear()
    return r
""",
}
ORDINARY = {
    "frame": (
        "import numpy as np, pandas as pd\n"
        "n = 1_000_000\n"
        "colours = pd.Categorical(np.array(['red', 'green', 'blue'])[np.arange(n) % 3])\n"
        "x = pd.DataFrame({'i': np.arange(n), 'f': np.arange(n) / 7, 'name': [f'user{i % 50_000}' for i in range(n)],"
        " 'id': [f'{i:08x}' for i in range(n)], 'colour': colours,"
        " 'when': pd.date_range('2024', periods=n, freq='s')})",
        "[list(x.shape), {k: str(v) for k, v in x.dtypes.items()}, x['name'].iloc[-1], x['id'].iloc[-1],"
        " x['colour'].cat.categories.tolist()]",
    ),
    "json": (
        "x = {'runs': [{'name': f'run {i}', 'score': i / 8, 'tags': ['a', 'b'], 'ok': i % 2 == 0}"
        " for i in range(100_000)], 'n': 100_000}",
        "[x['n'], len(x['runs']), x['runs'][-1]]",
    ),
}


@pytest.fixture(scope="module")
def brought_back(local_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each hostile and ordinary `-o x` through Sandbox.run, from one fresh process with 1 GiB free."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLBOX_", "OCI_"))}
    home = tmp_path_factory.mktemp("bombs-home")
    env.update(
        CELLBOX_BASE_URL=local_server.base_url,
        CELLBOX_API_KEY=local_server.token,
        CELLBOX_MODEL="cellbox-local",
        CELLBOX_STATE_DIR=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
    )
    cases = {name: (FORGE + textwrap.dedent(code), "None") for name, code in BOMBS.items()}
    cases.update({f"ordinary {name}": case for name, case in ORDINARY.items()})
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD).format(free=GIB)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert found["after"] == 42  # the sandbox goes on
    return found


TOO_LARGE = r"^TooLarge: -o x is too large to bring back: reading it would take about "


@pytest.mark.parametrize(
    ("bomb", "said"),
    [
        ("parquet", TOO_LARGE + r"3\.\d GB \(300 rows .* 1\.3 GB of strings decoded\)"),
        ("csv dtype", r"^RecordRefused: the container's result record was refused: it does not have the runtime's"),
        ("json", TOO_LARGE + r".* \(a 30\.0 MB JSON file of 10,000,001 lists and dicts\)"),
        ("csv short lines", TOO_LARGE + r".* \(a [\d.]+ kB CSV file of 100,001 lines .* 2,000 fields\)"),
    ],
)
def test_a_tiny_hostile_value_is_refused_in_one_line_before_it_takes_memory(
    brought_back: dict[str, Any], bomb: str, said: str
) -> None:
    found = brought_back[bomb]
    assert "error" in found, found
    assert "\n" not in found["error"]
    assert re.match(said, found["error"]), found["error"]
    assert found["grown"] < GROWN, f"refusing it grew the notebook by {found['grown'] >> 20} MiB"
    print(f"{bomb}: refused, the notebook grew by {found['grown'] / MB:.0f} MiB: {found['error'][:160]}")


def test_ordinary_values_still_come_back(brought_back: dict[str, Any]) -> None:
    frame, payload = brought_back["ordinary frame"], brought_back["ordinary json"]
    assert "error" not in frame and "error" not in payload, (frame, payload)
    shape, dtypes, name, ident, colours = frame["summary"]
    assert shape == [1_000_000, 6] and name == "user49999" and ident == "000f423f"
    assert dtypes["colour"] == "category" and dtypes["when"].startswith("datetime64") and colours == sorted(colours)
    assert payload["summary"] == [
        100_000,
        100_000,
        {"name": "run 99999", "score": 99999 / 8, "tags": ["a", "b"], "ok": False},
    ]
