"""The encoding of values both ends share (`runtime/values.py`), as a user's values meet it and as a hostile
container forges it: everything pandas holds comes back equal as Python values, types included; a forged spec or
file is refused in one line before it takes memory."""

from __future__ import annotations

import cmath
import datetime
import decimal
import json
import math
import tracemalloc
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cellbox.boundary import record
from cellbox.runtime import values
from cellbox.session import frames

PARIS = zoneinfo.ZoneInfo("Europe/Paris")

SCALARS: list[Any] = [
    float("nan"),
    float("-inf"),
    1 + 2j,
    b"\x00bytes",
    bytearray(b"ba"),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
    datetime.datetime(2024, 7, 1, 12, tzinfo=PARIS),
    datetime.datetime(2024, 7, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))),
    datetime.date(2024, 1, 2),
    datetime.time(3, 4, 5, 6),
    datetime.timedelta(days=-1, seconds=5, microseconds=7),
    decimal.Decimal("1.10"),
    decimal.Decimal("-Infinity"),
    np.int8(-5),
    np.uint64(2**64 - 1),
    np.float32(1.5),
    np.float64("nan"),
    np.complex64(1 - 1j),
    np.bool_(True),
    np.datetime64("2024-01-02T03:04", "m"),
    np.datetime64("NaT"),
    np.timedelta64(5, "ns"),
    pd.Timestamp("2024-01-02 03:04:05.000000001"),
    pd.Timestamp("2024-07-01 12:00", tz="Europe/Paris"),
    pd.Timedelta(7, unit="ns"),
    pd.NaT,
    pd.NA,
]


def same(a: Any, b: Any) -> bool:
    """Equal as Python values, of the same type: NaN is NaN, None is None, and 1 is not "1" nor 1.0."""
    if type(a) is not type(b):
        return False
    if a is pd.NA or a is pd.NaT:
        return a is b
    if isinstance(a, (np.datetime64, np.timedelta64)):
        return a.dtype == b.dtype and ((bool(np.isnat(a)) and bool(np.isnat(b))) or a == b)
    if isinstance(a, (float, np.floating)) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, complex) and cmath.isnan(a):
        return repr(a) == repr(b)
    if isinstance(a, decimal.Decimal) and a.is_nan():
        return b.is_nan()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a == b
    if isinstance(a, datetime.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def round_trip(value: Any, tmp_path: Path, name: str = "v") -> tuple[dict[str, Any], Any]:
    spec = values.write_value(value, str(tmp_path / name), name)
    return spec, values.read_value(spec)


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_each_scalar_comes_back_as_itself(value: Any, tmp_path: Path) -> None:
    spec, back = round_trip([value, {"in": (value,)}], tmp_path)
    assert spec["kind"] == "json"
    assert same(back[0], value) and same(back[1]["in"][0], value), (value, back)


def test_a_named_time_zone_comes_back_by_name(tmp_path: Path) -> None:
    _, back = round_trip(datetime.datetime(2024, 7, 1, 12, tzinfo=PARIS), tmp_path)
    assert back.tzinfo == PARIS and back.utcoffset() == datetime.timedelta(hours=2)


def dirty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "code": [101, "A7", None],
            "score": pd.Series([1.5, float("nan"), None], dtype=object),
            "tags": [["a"], {"k": (1, 2)}, {3: "int key"}],
            "mixed": [decimal.Decimal("2.5"), datetime.date(2024, 1, 2), b"raw"],
            "z": [1 + 1j, 2j, complex("nan+1j")],
            "text": ["plain", "strings", "only"],
            "n": [1, 2, 3],
        }
    )


def frames_same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return (
        list(a.columns) == list(b.columns)
        and list(a.index) == list(b.index)
        and all(same(x, y) for i in range(a.shape[1]) for x, y in zip(a.iloc[:, i], b.iloc[:, i], strict=True))
    )


@pytest.mark.parametrize("pyarrow", [True, False], ids=["parquet", "csv"])
def test_a_dirty_frame_comes_back_equal_as_python_values(
    pyarrow: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pyarrow:
        monkeypatch.setattr(values, "_has_pyarrow", lambda: False)
    frame = dirty()
    spec, back = round_trip(frame, tmp_path)
    assert spec["json_columns"] == [0, 1, 2, 3, 4]  # neither the strings' column nor the numbers'
    assert frames_same(back, frame), back
    assert [type(v) for v in back.code] == [int, str, type(None)]
    assert back.score[1] is not None and math.isnan(back.score[1]) and back.score[2] is None
    assert back.n.dtype == np.int64 and back.text.tolist() == ["plain", "strings", "only"]


def test_an_ordinary_frame_is_written_as_before(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(3), "s": ["x", "y", "z"], "o": pd.Series(["p", "q", "r"], dtype=object)})
    ready, extras = values.arrow_ready(frame)
    assert ready is frame and extras == {}  # not copied, nothing said besides
    spec, back = round_trip(frame, tmp_path)
    assert set(spec) == {"kind", "rows", "columns", "format", "path"}
    assert back.o.tolist() == ["p", "q", "r"]


@pytest.mark.parametrize(
    "columns",
    [[1, "a"], ["a", "a"], [("x", 1), "y"], [None, 2.5]],
    ids=["ints", "duplicates", "tuples", "none-and-float"],
)
def test_column_labels_come_back_as_they_were(columns: list[Any], tmp_path: Path) -> None:
    frame = pd.DataFrame([[1, "A7"]], columns=pd.Index(columns, dtype=object, tupleize_cols=False))
    _, back = round_trip(frame, tmp_path)
    assert list(back.columns) == columns and back.iloc[0, 1] == "A7"


def test_multiindexes_and_an_object_index_come_back(tmp_path: Path) -> None:
    multi = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    assert round_trip(multi, tmp_path)[1].equals(multi)
    mixed = pd.DataFrame({"v": [1, 2, 3]}, index=pd.Index([1, "x", None], dtype=object, name="key"))
    back = round_trip(mixed, tmp_path, "m")[1]
    assert list(back.index) == [1, "x", None] and back.index.name == "key"


def test_a_series_keeps_its_name_and_its_values(tmp_path: Path) -> None:
    series = pd.Series([1, "a", None], name=5)
    back = round_trip(series, tmp_path)[1]
    assert back.name == 5 and back.tolist() == [1, "a", None]


def test_arrays_in_cells_as_parquet_gives_lists_back_come_back(tmp_path: Path) -> None:
    listed = pd.DataFrame({"l": [[1, 2], [], None]})
    listed.to_parquet(tmp_path / "lists.parquet")
    frame = pd.read_parquet(tmp_path / "lists.parquet")  # its lists are numpy arrays now
    frame["t"] = [np.array(["2024-01-02"], dtype="datetime64[D]"), np.eye(2), np.array([np.nan])]
    back = round_trip(frame, tmp_path)[1]
    for column in frame:
        for a, b in zip(frame[column], back[column], strict=True):
            assert (a is None and b is None) or (a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)), (a, b)


def test_a_sparse_column_comes_back_dense_and_parquet_refusals_say_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sparse = pd.DataFrame({"s": pd.arrays.SparseArray([0, 1, 0])})
    assert round_trip(sparse, tmp_path)[1].s.tolist() == [0, 1, 0]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("Conversion failed for column amount with type thing", "and more")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", refuse)
    with pytest.raises(TypeError) as caught:
        values.write_value(pd.DataFrame({"amount": [1]}), str(tmp_path / "t"), "t")
    assert str(caught.value) == (
        "-o t: column amount of t can't be written as Parquet (Conversion failed for column amount with type thing);"
        " convert it first, e.g. t['amount'] = t['amount'].astype(object)"
    )


def test_a_cell_that_cannot_travel_is_named_by_column_and_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"c": [1, object()]}, index=["r0", "r1"])
    with pytest.raises(TypeError) as caught:
        values.write_value(frame, str(tmp_path / "df"), "df")
    said = str(caught.value)
    assert said.startswith("-o df: df['c'] at row 'r1' is a builtins.object, which can't travel")
    assert "\n" not in said


def test_dicts_and_lists_of_arrays_and_frames_travel_as_one_bundle(tmp_path: Path) -> None:
    value = {
        "weights": np.arange(6.0).reshape(2, 3),
        "frames": [dirty(), pd.Series([1.5], name="s")],
        "meta": {"when": datetime.date(2024, 1, 2), "grid": np.eye(2, dtype="int8")},
        "objects": np.array([1, "a", None], dtype=object),
    }
    spec, back = round_trip(value, tmp_path)
    assert spec["kind"] == spec["format"] == "bundle" and len(spec["parts"]) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.bundle"]  # its parts' files are gone
    assert np.array_equal(back["weights"], value["weights"]) and back["meta"]["grid"].dtype == np.int8
    assert frames_same(back["frames"][0], value["frames"][0]) and back["frames"][1].name == "s"
    assert back["objects"].dtype == object and back["objects"].tolist() == [1, "a", None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.bundle"]  # nor are they left after reading


def test_an_entry_that_cannot_travel_is_named_by_its_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^-i data: data\['runs'\]\[1\]\['model'\] is a builtins.object"):
        values.write_value({"runs": [1, {"model": object()}]}, str(tmp_path / "d"), "data", flag="-i")
    with pytest.raises(TypeError, match="push the file"):
        values.write_value(object(), str(tmp_path / "d"), "data", flag="-i")


def test_values_too_deep_or_with_too_many_parts_are_refused_in_one_line(tmp_path: Path) -> None:
    deep: Any = []
    for _ in range(values.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(TypeError, match=f"nested more than {values.MAX_DEPTH} levels"):
        values.write_value(deep, str(tmp_path / "deep"), "deep")
    many = [np.zeros(1)] * values.MAX_PARTS
    with pytest.raises(TypeError, match=f"more than {values.MAX_PARTS - 1:,} frames and arrays"):
        values.write_value(many, str(tmp_path / "many"), "many")


# --- what a container may forge ---------------------------------------------------------------------------------


def bundle(tmp_path: Path) -> dict[str, Any]:
    return values.write_value({"a": np.arange(3), "b": [1]}, str(tmp_path / "b"), "b")


@pytest.mark.parametrize(
    "forge",
    [
        lambda spec: spec["parts"].clear(),
        lambda spec: spec["parts"].extend([spec["parts"][1]] * values.MAX_PARTS),
        lambda spec: spec["parts"][1].update(offset=10**9),
        lambda spec: spec["parts"][1].update(length=-1),
        lambda spec: spec["parts"][1].update(format="bundle"),
        lambda spec: spec["parts"][0].update(kind="ndarray", format="npy"),
        lambda spec: spec.update(parts="nope"),
        lambda spec: spec["parts"].extend([{**spec["parts"][1], "offset": 0}] * 100),
    ],
    ids=["none", "too-many", "outside", "negative", "nested-bundle", "no-json-first", "not-a-list", "overlapping"],
)
def test_a_forged_bundle_is_refused_before_a_byte_is_copied(forge: Any, tmp_path: Path) -> None:
    spec = bundle(tmp_path)
    forge(spec)
    with pytest.raises(values.BadValue):
        values.split_bundle(spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle"]
    with pytest.raises(record.RecordRefused, match="the container's result record was refused"):
        frames.read(spec, Path(spec["path"]), "b")


@pytest.mark.parametrize(
    "encoded",
    [
        {values.TAG: "part", "index": 7},
        {values.TAG: "numpy", "dtype": "S100000000", "value": 1},
        {values.TAG: "numpy", "dtype": "int8", "value": 1000},
        {values.TAG: "datetime", "iso": "2024-01-01T00:00+00:00", "zone": "dateutil//etc/passwd"},
        {values.TAG: "datetime", "iso": "2024-01-01T00:00+00:00", "zone": "../../etc/passwd"},
        {values.TAG: "decimal", "value": "not a number"},
        {values.TAG: "float", "value": "1e308"},
        {values.TAG: "objects", "shape": [10**6, 10**6], "items": []},
        {values.TAG: "ndarray", "dtype": "int8", "shape": [2], "items": [1]},
        {values.TAG: "ndarray", "dtype": "V100000000", "shape": [1], "items": [1]},
        {values.TAG: "ndarray", "dtype": "float64", "shape": [1], "items": ["x"]},
        {values.TAG: "bytes", "base64": "!!"},
        {values.TAG: "nonsense"},
    ],
    ids=[
        "part",
        "dtype",
        "overflow",
        "dateutil",
        "zone-path",
        "decimal",
        "float",
        "shape",
        "array-shape",
        "array-dtype",
        "array-items",
        "base64",
        "tag",
    ],
)
def test_a_forged_tag_is_refused_in_one_line(encoded: Any) -> None:
    with pytest.raises(record.RecordRefused, match="a value in it does not decode"):
        record.json_value([encoded])


def test_deep_json_from_a_container_is_refused(tmp_path: Path) -> None:
    deep: Any = 1
    for _ in range(values.MAX_DEPTH + 5):
        deep = {"k": deep}
    with pytest.raises(record.RecordRefused):
        record.json_value(deep)


@pytest.mark.parametrize(
    "forge",
    [{"json_columns": [9]}, {"json_columns": [0, 0]}, {"labels": ["one", "two", "too many"]}, {"json_columns": [1]}],
    ids=["outside", "twice", "labels", "not-json"],
)
def test_a_forged_frame_spec_is_refused(forge: dict[str, Any], tmp_path: Path) -> None:
    spec = values.write_value(pd.DataFrame({"a": ["x"], "b": ["{not json"]}), str(tmp_path / "f"), "f")
    spec.update(forge)
    with pytest.raises(record.RecordRefused):
        frames.read(spec, Path(spec["path"]), "f")


def test_the_schema_bounds_a_bundle_as_the_reader_does() -> None:
    assert record.MAX_PARTS == values.MAX_PARTS
    part = {"kind": "ndarray", "format": "npy", "offset": 0, "length": 1}
    spec = {"kind": "bundle", "format": "bundle", "path": "/mnt/data/.cellbox/runs/r/out-b.bundle"}
    ok = {"run_id": "r", "outputs": {"b": {**spec, "parts": [part]}}}
    record.check(ok, run_id="r", data_dir="/mnt/data", out_dir="/mnt/data/.cellbox/runs/r", private_dir="/x")
    for parts in ([part] * (values.MAX_PARTS + 1), [{**part, "kind": "bundle"}], [{**part, "offset": -1}]):
        forged = {"run_id": "r", "outputs": {"b": {**spec, "parts": parts}}}
        with pytest.raises(record.RecordRefused, match="shape"):
            record.check(
                forged, run_id="r", data_dir="/mnt/data", out_dir="/mnt/data/.cellbox/runs/r", private_dir="/x"
            )


# --- memory -------------------------------------------------------------------------------------------------------


def test_decoding_object_columns_is_charged_at_least_what_it_takes(tmp_path: Path) -> None:
    rows = 50_000
    frame = pd.DataFrame({"c": [[i, {"k": str(i)}] if i % 2 else i for i in range(rows)]})
    spec = values.write_value(frame, str(tmp_path / "f"), "f")
    charged: list[int] = []
    read = frames.declared_size(spec, Path(spec["path"]))[0]
    tracemalloc.start()
    values.read_value(spec, lambda c, i, b: charged.append(frames._json_cost(c, i, b)))
    took = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert charged and took <= read + charged[0], f"took {took >> 20} MiB, charged {(read + charged[0]) >> 20} MiB"


def test_a_value_whose_decoding_would_not_fit_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"c": [[[[]]]] * 200_000})
    spec = values.write_value(frame, str(tmp_path / "f"), "f")
    parquet = frames.declared_size(spec, Path(spec["path"]))[0]
    monkeypatch.setattr(frames, "available_memory", lambda: parquet + 1_000_000)
    with pytest.raises(frames.TooLarge, match="object columns' values"):
        frames.read(spec, Path(spec["path"]), "f")


def test_a_bundle_is_charged_all_its_parts_before_any_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = values.write_value([np.zeros((1000, 1000))] * 3, str(tmp_path / "b"), "b")
    monkeypatch.setattr(frames, "available_memory", lambda: 20_000_000)  # each part fits: 8 MB; all three don't
    with pytest.raises(frames.TooLarge, match="3 frames and arrays"):
        frames.read(spec, Path(spec["path"]), "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle"]


def test_the_client_fingerprints_what_travels(tmp_path: Path) -> None:
    a = {"w": np.arange(4), "f": dirty()}
    b = {"w": np.arange(4), "f": dirty()}
    assert frames.fingerprint(a) == frames.fingerprint(b)
    b["f"].loc[0, "code"] = "101"  # the string, not the number
    assert frames.fingerprint(a) != frames.fingerprint(b)
    assert frames.fingerprint(np.arange(4)) != frames.fingerprint(np.arange(4).astype("int32"))
    assert frames.kind_of(a) == "bundle" and frames.kind_of(np.arange(2)) == "ndarray"
    assert frames.size_in_memory(a) >= 32 and frames.kind_of({"x": object()}) is None
    assert json.loads(json.dumps(values.to_json(SCALARS))) == values.to_json(SCALARS)
