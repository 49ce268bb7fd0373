"""The runtime's result record, accepted or refused before anything on the notebook's side acts on it.

The runtime runs in the cell's own Python process, so the cell's code can write any record it likes: a record is
what the container claims, nothing more. It is accepted only when

- it is small enough to read (`MAX_RECORD_BYTES`, and `MAX_ITEMS` JSON values, counted before parsing, so a
  hostile record can't make the notebook's kernel build gigabytes of Python objects);
- it has the runtime's shape (`SCHEMA`, JSON Schema, checked whole);
- it answers this request: its `run_id` is the request's, and every path it names is where this run's files go
  (values and figures in the run's own output folder, changed files in the data folder, nothing of cellbox's own);
- the variables it brings back are the ones the user asked for (`-o`): others are left out and said in one line.

What it displays is cleaned by the sandbox's `DisplayPolicy`. Nothing on the host is ever named after a record's
string: local copies of its files get names cellbox makes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import Any

import fastjsonschema

from ..api import CellboxError

MAX_RECORD_BYTES = 32 << 20  # a record past this is refused unread (a legitimate one is a few MB at most)
MAX_ITEMS = 1_000_000  # JSON values in a record (",", ":", "[", "{" counted): bounds the objects parsing makes
MAX_EVENTS = 20_000  # output events shown from one run; the rest are counted and said
MAX_NOTES = 50
MAX_NOTE = 2_000

VALUE_KINDS = ("dataframe", "series", "json", "repr", "image")
PART_KINDS = ("dataframe", "series", "ndarray", "json")
OUTPUT_KINDS = (*PART_KINDS, "bundle")
PART_FORMATS = ("parquet", "csv", "npy", "json")
FORMATS = (*PART_FORMATS, "bundle")
MAX_PARTS = 10_000  # frames and arrays in one value (runtime.values.MAX_PARTS), and the JSON around them
EVENT_TYPES = ("stream", "display_data", "clear_output", "state_lost", "execute_result")

_STRINGS = {"type": "array", "items": {"type": "string"}}
_BUNDLE = {
    "type": "object",
    "properties": {"data": {"type": "object"}, "metadata": {"type": "object"}},
}
# What a CSV value's dtype record may name: the dtypes the runtime writes (runtime.values.DTYPES: numbers,
# booleans, strings, objects and time), a time zone only by its name, and categories as a dict. `astype` of any
# other name could allocate what the record likes ('S100000000' is 100 MB a row) or open a path ('dateutil/...').
DTYPE_NAMES = sorted(
    ["bool", "object", "str", "string", "boolean"]
    + [f"{kind}{bits}" for kind in ("int", "uint", "Int", "UInt") for bits in (8, 16, 32, 64)]
    + [f"float{bits}" for bits in (16, 32, 64, 128)]
    + ["Float32", "Float64", "complex64", "complex128", "complex256"]
    + [f"{kind}64[{unit}]" for kind in ("datetime", "timedelta") for unit in ("s", "ms", "us", "ns")]
)
TIME_ZONE = r"(?!dateutil/)[A-Za-z][A-Za-z0-9_+:-]{0,63}(?:/[A-Za-z0-9_+-]{1,64}){0,3}"  # a name, never a path
_DTYPE = {
    "anyOf": [
        {"enum": DTYPE_NAMES},
        {"type": "string", "pattern": r"^datetime64\[(?:s|ms|us|ns), " + TIME_ZONE + r"\]\Z"},
        {
            "type": "object",
            "required": ["dtype", "categories", "ordered"],
            "additionalProperties": False,
            "properties": {
                "dtype": {"const": "category"},
                "categories": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
                "ordered": {"type": "boolean"},
            },
        },
    ]
}
_DTYPES = {"type": "object", "additionalProperties": _DTYPE}
# What the runtime says of a value's file: where it is and, for a frame, its shape and how to read it back (its
# object columns and index as their values' JSON, its labels as JSON: decoded by the runtime's own reader).
_FRAME: dict[str, Any] = {
    "path": {"type": "string"},
    "rows": {"type": "integer", "minimum": 0},
    "columns": _STRINGS,
    "series_name": {"type": ["string", "null"]},
    "dtypes": _DTYPES,
    "index_name": {"type": ["string", "null"]},
    "truncated_from": {"type": "integer", "minimum": 0},
    "json_columns": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "json_index": {"type": "boolean"},
    "complex_columns": {"type": "object", "additionalProperties": {"enum": ["complex64", "complex128"]}},
    "labels": {"type": "array"},
}
# A bundle: one file, its parts end to end (the JSON around its frames and arrays first), each read as its spec says.
_PART = {
    "type": "object",
    "required": ["kind", "format", "offset", "length"],
    "properties": {
        "kind": {"enum": list(PART_KINDS)},
        "format": {"enum": list(PART_FORMATS)},
        "offset": {"type": "integer", "minimum": 0},
        "length": {"type": "integer", "minimum": 0},
        **{key: rule for key, rule in _FRAME.items() if key not in ("path", "truncated_from")},
    },
}
_FILE_SPEC = {
    "type": "object",
    "required": ["kind", "format", "path"],
    "properties": {
        "kind": {"enum": list(OUTPUT_KINDS)},
        "format": {"enum": list(FORMATS)},
        "parts": {"type": "array", "minItems": 1, "maxItems": MAX_PARTS, "items": _PART},
        **_FRAME,
    },
}
EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": list(EVENT_TYPES)},
        "name": {"enum": ["stdout", "stderr"]},
        "text": {"type": "string"},
        "data": {"type": "object"},
        "metadata": {"type": "object"},
        "transient": {"type": "object"},
        "update": {"type": "boolean"},
        "wait": {"type": "boolean"},
        "restored": _STRINGS,
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["run_id"],
    "properties": {
        "run_id": {"type": "string"},
        "ok": {"type": "boolean"},
        "runtime_version": {"type": "integer"},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "error": {
            "type": ["object", "null"],
            "required": ["ename", "evalue", "traceback"],
            "properties": {
                "ename": {"type": "string", "maxLength": 200},
                "evalue": {"type": "string"},
                "traceback": {"type": "string"},
                "traceback_lines": _STRINGS,
            },
        },
        "value": {
            "type": ["object", "null"],
            "properties": {
                "kind": {"enum": list(VALUE_KINDS)},
                "type": {"type": "string"},
                "bundle": _BUNDLE,
                "repr": {"type": "string"},
                "repr_error": {"type": "string"},
                "format": {"enum": list(FORMATS)},
                "same_as": {"type": ["string", "null"]},
                **_FRAME,
            },
        },
        "outputs": {"type": "object", "additionalProperties": _FILE_SPEC},
        "figures": _STRINGS,
        "changed": _STRINGS,
        "shown_figures": _STRINGS,
        "sizes": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "inline": {"type": "object", "additionalProperties": {"type": "string"}},
        "notes": _STRINGS,
        "events": {"type": "array", "items": EVENT},
        "state_lost": {"type": "boolean"},
        "restored": _STRINGS,
        "duration": {"type": ["number", "null"], "minimum": 0},
    },
}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What could make one note look like several, or read backwards: line and paragraph breaks, tabs, bidi controls.
_LINE_BREAKING = re.compile(r"[\t\n\r\x0b\x0c\x85\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class RecordRefused(CellboxError):
    """The container sent a result record cellbox does not accept (too big, malformed, or not this run's). The
    cell's code may have run; nothing it claims was used."""


@functools.cache
def _validator() -> Callable[[Any], Any]:
    return fastjsonschema.compile(SCHEMA)  # compiled once, when the first record arrives


@functools.cache
def _event_validator() -> Callable[[Any], Any]:
    return fastjsonschema.compile(EVENT)


def live_event(event: Any) -> dict[str, Any] | None:
    """An event from the run's live output when it has the runtime's shape, else None (left out: the record,
    checked whole, says what the run showed)."""
    try:
        _event_validator()(event)
    except fastjsonschema.JsonSchemaException:
        return None
    checked: dict[str, Any] = event
    return checked


def parse(raw: bytes | str) -> dict[str, Any]:
    """The record's JSON, within its bounds; `RecordRefused` otherwise."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_RECORD_BYTES:
        raise refused(f"it is larger than {MAX_RECORD_BYTES >> 20} MiB")
    items = data.count(b",") + data.count(b":") + data.count(b"[") + data.count(b"{")
    if items > MAX_ITEMS:
        raise refused(f"it holds more than {MAX_ITEMS:,} values")
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        raise refused("it is not valid JSON") from None
    if not isinstance(record, dict):
        raise refused("it is not a JSON object")
    return record


def refused(why: str) -> RecordRefused:
    return RecordRefused(
        f"the container's result record was refused: {why}. Code in the cell may have replaced cellbox's runtime "
        "or written the record itself; nothing it claims was used. Run the cell again; if it happens again, the "
        "container's state is suspect: `%container new --fresh` starts clean."
    )


def check(record: dict[str, Any], *, run_id: str, data_dir: str, out_dir: str, private_dir: str) -> None:
    """`RecordRefused` unless the record has the runtime's shape and answers run `run_id` (whose values and figures
    go in `out_dir`, under `data_dir`)."""
    try:
        _validator()(record)
    except fastjsonschema.JsonSchemaException as exc:
        raise refused(f"it does not have the runtime's shape ({str(exc)[:200]})") from None
    if record["run_id"] != run_id:
        raise refused(f"it answers another run ({_shown(record['run_id'])}, not {run_id})")
    value = record.get("value") or {}
    own = [spec["path"] for spec in (record.get("outputs") or {}).values()]
    own += [value["path"]] if value.get("path") else []
    own += list(record.get("figures") or [])
    for path in own:
        if not _under(path, out_dir):
            raise refused(f"it names a value or figure outside this run's folder: {_shown(path)}")
    changed = record.get("changed") or []
    for path in changed:
        if not _under(path, data_dir) or _under(path, private_dir) or path == private_dir:
            raise refused(f"it names a changed file outside {data_dir}: {_shown(path)}")
    if not set(record.get("sizes") or {}) <= set(changed):
        raise refused("it gives sizes of files it does not say changed")
    inline = record.get("inline") or {}
    if not set(inline) <= set(own):
        raise refused("it carries files that are not this run's values or figures")
    for data in inline.values():
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise refused("a file inside it is not base64") from None


def asked_variables(record: dict[str, Any], asked: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The record's `-o` values that were asked for, in the order asked; the names it gave that were not."""
    outputs = record.get("outputs") or {}
    kept = {name: outputs[name] for name in asked if name in outputs}
    extra = [name for name in outputs if name not in kept]
    return kept, extra


def json_value(encoded: Any) -> Any:
    """A value the runtime sent as tagged JSON (tuples, sets, dates … as `{"__cellbox__": kind, …}`), decoded; a
    tag that does not decode is the container's forgery, refused in one line."""
    from ..runtime.values import from_json

    try:
        return from_json(encoded)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise refused(f"a value in it does not decode ({type(exc).__name__})") from None


def clean_note(note: str) -> str:
    """A runtime note as one line of text (no terminal control sequences, breaks or bidi controls), bounded."""
    return _CONTROL.sub("", _LINE_BREAKING.sub(" ", note))[:MAX_NOTE]


def _under(path: str, folder: str) -> bool:
    return (
        "\x00" not in path
        and path.startswith(folder.rstrip("/") + "/")
        and posixpath.normpath(path) == path
        and "\\" not in path
    )


def _shown(text: str) -> str:
    return repr(_CONTROL.sub("?", text[:120]))
