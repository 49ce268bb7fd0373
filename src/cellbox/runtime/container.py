"""cellbox's runtime inside the container. Uploaded as a file and run by a one-line loader; not imported by cellbox.

It must work with the standard library, pandas and pyarrow only (CSV plus a dtype record when pyarrow is
missing), in whatever Python kernel the container runs. State lives in the kernel's user namespace, so variables
persist between runs like notebook cells.

A run is described by a JSON request file and leaves a JSON result file plus output files beside it:

    request: {"run_id", "code", "result_path", "out_dir", "private_dir", "watch": "/mnt/data",
              "place": [{"from": stored path, "to": wanted path}],
              "inputs": [{"name", "path", "format", "kind", ...}], "outputs": ["name", ...]}
    result:  {"run_id", "ok", "stdout", "stderr", "error": {"ename", "evalue", "traceback"} | null,
              "value": {...} | null, "outputs": {"name": {...}}, "figures": [path], "changed": [path],
              "sizes": {path: bytes}, "inline": {path: base64}, "notes": [text], "duration": seconds}

A run starts at most once: its folder gets a `started` marker created exclusively, and a second start of the same
run (a model that runs the loader again) prints `REFUSED_MARKER` and does nothing. Uploads land where the service
puts them (OpenAI's example: `/mnt/data/<hex>-<name>`); `place` moves each where cellbox said it would be before
the code runs. Small output files travel inside the result record (`inline`), saving the client a download.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import shutil
import sys
import time
import traceback
from typing import Any

RUNTIME_VERSION = 2
MAX_TEXT = 2_000_000  # characters of stdout/stderr kept in the result record; the rest is summarised
MAX_REPR = 100_000
MAX_VALUE_ROWS = 100_000  # rows of a frame sent back for display as a cell's last value
CELL_FILENAME = "<cell>"
RESULT_MARKER = "cellbox-result: "
REFUSED_MARKER = "cellbox-refused: "
MAX_LOGGED_RESULT = 200_000
MAX_INLINE_FILE = 64 * 1024  # output files this small travel inside the result record …
MAX_INLINE_TOTAL = 128 * 1024  # … up to this much in all
STARTED = "started"


def _user_namespace() -> dict[str, Any]:
    try:
        shell = get_ipython()  # type: ignore[name-defined]
        return shell.user_ns
    except NameError:
        import __main__

        return __main__.__dict__


# A scan of /mnt/data stops this deep and after this many entries, whatever the code left there.
SNAPSHOT_MAX_DEPTH = 64
SNAPSHOT_MAX_ENTRIES = 200_000


def _snapshot(root: str, skip: str) -> dict[str, tuple[int, int]]:
    """(size, mtime) of the files under root; iterative and bounded (os.walk recurses, and a folder chain a few
    thousand deep would end every later run in RecursionError)."""
    files: dict[str, tuple[int, int]] = {}
    pending = [(root, 0)]
    seen = 0
    while pending and seen < SNAPSHOT_MAX_ENTRIES:
        folder, depth = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > SNAPSHOT_MAX_ENTRIES:
                        break
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            wanted = entry.path != skip and not entry.name.startswith(".ipython")
                            if wanted and depth + 1 < SNAPSHOT_MAX_DEPTH:
                                pending.append((entry.path, depth + 1))
                            continue
                        st = entry.stat()
                    except OSError:
                        continue
                    files[entry.path] = (st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return files


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


# --- values in and out ----------------------------------------------------------------------------------------


def _dtype_record(frame: Any) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for col, dtype in frame.dtypes.items():
        if str(dtype) == "category":  # the categories and their order don't survive CSV by themselves
            categories = [c.item() if hasattr(c, "item") else c for c in dtype.categories]
            record[str(col)] = {"dtype": "category", "categories": categories, "ordered": bool(dtype.ordered)}
        else:
            record[str(col)] = str(dtype)
    return record


def _write_frame(frame: Any, path_stem: str, kind: str) -> dict[str, Any]:
    import pandas as pd

    if kind == "series":
        name = frame.name
        frame = frame.to_frame(name="__series__" if name is None else name)
    else:
        name = None
    info: dict[str, Any] = {"kind": kind, "rows": len(frame), "columns": [str(c) for c in frame.columns]}
    if kind == "series":
        info["series_name"] = None if name is None else str(name)
    if _has_pyarrow():
        path = path_stem + ".parquet"
        frame.to_parquet(path)
        info.update(format="parquet", path=path)
    else:
        path = path_stem + ".csv"
        frame.to_csv(path, index=True)
        info.update(format="csv", path=path, dtypes=_dtype_record(frame), index_name=frame.index.name)
    del pd
    return info


def _read_frame(spec: dict[str, Any]) -> Any:
    import pandas as pd

    if spec["format"] == "parquet":
        frame = pd.read_parquet(spec["path"])
    else:
        frame = pd.read_csv(spec["path"], index_col=0)
        frame = _apply_dtypes(frame, spec.get("dtypes") or {})
    if spec.get("kind") == "series":
        series = frame.iloc[:, 0]
        series.name = spec.get("series_name")
        return series
    return frame


def _apply_dtypes(frame: Any, dtypes: dict[str, str]) -> Any:
    import pandas as pd

    for col, dtype in dtypes.items():
        if col not in frame.columns:
            continue
        if isinstance(dtype, dict):
            frame[col] = frame[col].astype(pd.CategoricalDtype(dtype["categories"], ordered=dtype["ordered"]))
        elif dtype.startswith("datetime64"):
            tz = dtype[dtype.index(",") + 1 : -1].strip() if "," in dtype else None
            values = pd.to_datetime(frame[col], utc=tz is not None)
            frame[col] = values.dt.tz_convert(tz) if tz else values
        else:
            frame[col] = frame[col].astype(dtype)
    return frame


def _is_json_value(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _kind_of(value: Any) -> str | None:
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return "dataframe"
        if isinstance(value, pd.Series):
            return "series"
    return None


def _export(value: Any, path_stem: str, name: str) -> dict[str, Any]:
    kind = _kind_of(value)
    if kind is not None:
        return _write_frame(value, path_stem, kind)
    if _is_json_value(value):
        path = path_stem + ".json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(value, f)
        return {"kind": "json", "format": "json", "path": path}
    raise TypeError(
        f"{name} is a {type(value).__module__}.{type(value).__qualname__}; -o brings back DataFrames, Series "
        "and JSON values (numbers, strings, booleans, None, lists and dicts of them). Convert it first, "
        f"e.g. {name} = pd.DataFrame(...) or {name} = str(...)."
    )


def _import(spec: dict[str, Any]) -> Any:
    if spec["format"] == "json":
        with open(spec["path"], encoding="utf-8") as f:
            return json.load(f)
    return _read_frame(spec)


def _describe_value(value: Any, out_dir: str) -> dict[str, Any]:
    """The last expression, in the richest form the notebook can show."""
    kind = _kind_of(value)
    described: dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    if kind is not None:
        shown = value
        if len(value) > MAX_VALUE_ROWS:  # to be displayed, not kept: -o brings a whole frame back
            shown = value.head(MAX_VALUE_ROWS)
            described["truncated_from"] = len(value)
        try:
            described.update(_write_frame(shown, os.path.join(out_dir, "value"), kind))
            return described
        except Exception:  # e.g. a Series of dtype objects, which Parquet can't hold: shown as pandas shows it
            described.pop("truncated_from", None)
    if _is_figure(value):
        path = os.path.join(out_dir, "value.png")
        value.savefig(path, format="png", bbox_inches="tight")
        described.update(kind="image", path=path)
        return described
    plain = _plain_scalar(value)
    if _is_json_value(plain) and len(json.dumps(plain)) <= MAX_REPR:
        value = plain
        described.update(kind="json", json=value)
    else:
        described["kind"] = "repr"
    described["repr"] = _limited(repr(value), MAX_REPR)
    html = getattr(value, "_repr_html_", None)
    if callable(html):
        try:
            text = html()
        except Exception:  # a broken _repr_html_ must not fail the run
            text = None
        if isinstance(text, str):
            described["html"] = _limited(text, MAX_REPR)
    return described


def _plain_scalar(value: Any) -> Any:
    """numpy scalars (what `frame.x.sum()` gives) as the Python numbers they stand for."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    return value


def _is_figure(value: Any) -> bool:
    figure = sys.modules.get("matplotlib.figure")
    return figure is not None and isinstance(value, figure.Figure)


def _save_figures(out_dir: str) -> list[str]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    paths = []
    for number in plt.get_fignums():
        path = os.path.join(out_dir, f"figure-{number}.png")
        plt.figure(number).savefig(path, format="png", bbox_inches="tight")
        paths.append(path)
    plt.close("all")
    return paths


def _limited(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit} more characters not shown]"


# --- running --------------------------------------------------------------------------------------------------


class _Capture(io.TextIOBase):
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def writable(self) -> bool:
        return True

    def value(self) -> str:
        return _limited("".join(self.parts), MAX_TEXT)


def _split_last_expression(source: str) -> tuple[ast.Module, ast.Expression | None]:
    tree = ast.parse(source, CELL_FILENAME)
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop()
        return tree, ast.Expression(body=last.value)  # type: ignore[attr-defined]
    return tree, None


def _format_error(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop the runtime's own frames: the user wants to see their cell, not the machinery around it.
    keep = [f for f in frames if f.filename != __file__]
    lines = ["Traceback (most recent call last):\n"] if keep else []
    lines += traceback.format_list(keep)
    lines += traceback.format_exception_only(type(exc), exc)
    return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": "".join(lines)}


def run(request_path: str) -> None:
    """Run one request and print a one-line summary; the result file is written whatever the cell does.
    A run already started (the loader run a second time) is refused: nothing runs again."""
    result = execute(request_path)
    if result is None:
        return
    state = "ok" if result["ok"] else f"error {result['error']['ename']}"
    print(f"cellbox run {result['run_id']}: {state} in {result['duration']:.3f}s")
    record = json.dumps(result, default=str)
    if len(record) <= MAX_LOGGED_RESULT:
        # Saves the client a listing and a download; larger records are fetched from the result file.
        print(RESULT_MARKER + record)


def _forget_earlier_runs(runs_dir: str, keep: str) -> None:
    """Earlier runs' records have been read by the client: dropping them keeps /mnt/data from growing run by run
    (the server scans it after every execution)."""
    try:
        names = os.listdir(runs_dir)
    except OSError:
        return
    for name in names:
        path = os.path.join(runs_dir, name)
        if path != keep and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


def _start(run_dir: str) -> bool:
    """Mark the run started; False when it already was (the marker is created exclusively, once)."""
    os.makedirs(run_dir, exist_ok=True)
    try:
        os.close(os.open(os.path.join(run_dir, STARTED), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def _place(moves: list[dict[str, str]]) -> list[str]:
    """Move uploads from where the service stored them to where cellbox said they would be; notes on failures."""
    notes = []
    for move in moves:
        source, target = move["from"], move["to"]
        if source == target:
            continue
        try:
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            os.replace(source, target)
        except FileNotFoundError:
            if not os.path.exists(target):
                notes.append(f"the upload for {target} was not found at {source}; the file is missing")
        except OSError as exc:
            notes.append(f"could not move the upload {source} to {target}: {exc}")
    return notes


def _inline(paths: list[str]) -> dict[str, str]:
    """The small files among `paths`, base64, within MAX_INLINE_TOTAL."""
    inline: dict[str, str] = {}
    total = 0
    for path in paths:
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        if size > MAX_INLINE_FILE or total + size > MAX_INLINE_TOTAL:
            continue
        with open(path, "rb") as f:
            inline[path] = base64.b64encode(f.read()).decode("ascii")
        total += size
    return inline


def execute(request_path: str) -> dict[str, Any] | None:
    """Run one request; always writes the result file, whatever the cell does. None, doing nothing, when the
    run was started before."""
    started = time.time()
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    out_dir = request["out_dir"]
    run_dir = os.path.dirname(out_dir)
    if not _start(run_dir):
        print(f"{REFUSED_MARKER}run {request['run_id']} was started before; not running it again")
        return None
    _forget_earlier_runs(os.path.dirname(run_dir), keep=run_dir)
    os.makedirs(out_dir, exist_ok=True)
    notes = _place(request.get("place") or [])
    watch = request.get("watch") or os.getcwd()
    skip = request.get("private_dir") or os.path.dirname(out_dir)  # cellbox's own files are not artifacts
    before = _snapshot(watch, skip)
    result: dict[str, Any] = {"run_id": request["run_id"], "ok": True, "error": None, "value": None}
    result.update(outputs={}, figures=[], changed=[], runtime_version=RUNTIME_VERSION, notes=notes)
    namespace = _user_namespace()
    stdout, stderr = _Capture(), _Capture()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr
    try:
        for spec in request.get("inputs", []):
            namespace[spec["name"]] = _import(spec)
        source = request["code"]
        body, last = _split_last_expression(source)
        exec(compile(body, CELL_FILENAME, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, CELL_FILENAME, "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                result["value"] = _describe_value(value, out_dir)
    except BaseException as exc:  # KeyboardInterrupt too: the run was stopped, and the record must say so
        result["ok"] = False
        result["error"] = _format_error(exc)
    finally:
        sys.stdout, sys.stderr = saved
    if result["ok"]:
        for name in request.get("outputs", []):
            if name not in namespace:
                result["ok"] = False
                result["error"] = {
                    "ename": "NameError",
                    "evalue": f"-o {name}: no variable {name!r} in the container after the cell ran",
                    "traceback": "",
                }
                break
            try:
                result["outputs"][name] = _export(namespace[name], os.path.join(out_dir, "out-" + name), name)
            except Exception as exc:
                result["ok"] = False
                result["error"] = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": ""}
                break
    try:
        result["figures"] = _save_figures(out_dir)
    except Exception as exc:  # a figure that can't render is reported, not fatal
        stderr.write(f"cellbox: could not save a figure: {exc}\n")
    after = _snapshot(watch, skip)
    result["changed"] = sorted(p for p, sig in after.items() if before.get(p) != sig)
    result["sizes"] = {p: after[p][0] for p in result["changed"]}
    value = result["value"] or {}
    small = [spec["path"] for spec in result["outputs"].values() if spec.get("path")]
    small += [value["path"]] if value.get("path") else []
    result["inline"] = _inline(small + result["figures"])
    result["stdout"], result["stderr"] = stdout.value(), stderr.value()
    result["duration"] = round(time.time() - started, 6)
    temp = request["result_path"] + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    os.replace(temp, request["result_path"])
    return result


if __name__ == "<run_path>":
    # Loaded by the loader line: stay loaded in this kernel, so later loader lines skip compiling this file.
    sys.__dict__.setdefault("cellbox_runtimes", {})[__file__] = globals()
