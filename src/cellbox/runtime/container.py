"""cellbox's runtime inside the container. Uploaded as a file and run by a one-line loader; not imported by cellbox.

It must work with the standard library, pandas and pyarrow only (CSV plus a dtype record when pyarrow is
missing), in whatever Python kernel the container runs. State lives in the kernel's user namespace, so variables
persist between runs like notebook cells.

A run is described by a JSON request file and leaves a JSON result file plus output files beside it:

    request: {"run_id", "code", "result_path", "out_dir", "private_dir", "watch": "/mnt/data",
              "place": [{"from": stored path, "to": wanted path}],
              "inputs": [{"name", "path", "format", "kind", ...}], "outputs": ["name", ...],
              "restore": [input spec, ...]}
    result:  {"run_id", "ok", "stdout", "stderr", "events": [event], "error": {"ename", "evalue", "traceback",
              "traceback_lines"} | null, "value": {...} | null, "outputs": {"name": {...}}, "figures": [path],
              "changed": [path], "sizes": {path: bytes}, "inline": {path: base64}, "notes": [text],
              "state_lost": bool, "restored": [name], "duration": seconds}

What the cell shows is captured by `capture.py` (uploaded beside this file) as IPython would show it: `events`
in order, the last value's mimebundle in `value["bundle"]`. The request file (one line) is also the run's live
output: each event is appended to it as a JSON line while the run goes on, and cellbox, which uploaded it and so
knows its id, reads it during the run. A runtime freshly loaded into a kernel for a container that ran cells
before knows the kernel was restarted: it says so (`state_lost`) and loads the `restore` values again.

A run starts at most once: its folder gets a `started` marker created exclusively, and a second start of the same
run (a model that runs the loader again) prints `REFUSED_MARKER` and does nothing. Uploads land where the service
puts them (OpenAI's example: `/mnt/data/<hex>-<name>`); `place` moves each where cellbox said it would be before
the code runs. Small output files travel inside the result record (`inline`), saving the client a download.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil
import sys
import time
import types
from typing import Any

RUNTIME_VERSION = 3
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
RAN_BEFORE = "kernel-ran"  # in the private folder: some run happened in this container
_NEW_KERNEL = not sys.__dict__.get("cellbox_runtimes")  # no runtime was loaded in this kernel before this one


def _sibling(here: str) -> str | None:
    """The capture module uploaded beside the runtime: named alike, though a service may have put its own prefix
    on each (OpenAI stores uploads as /mnt/data/<hex>-<name>, a different <hex> for each)."""
    name = os.path.basename(here)
    if "cellbox_runtime_" not in name:
        return None
    wanted = name[name.index("cellbox_runtime_") :].replace("cellbox_runtime_", "cellbox_capture_")
    folder = os.path.dirname(here)
    exact = os.path.join(folder, name.replace("cellbox_runtime_", "cellbox_capture_"))
    if os.path.exists(exact):
        return exact
    try:
        found = sorted(n for n in os.listdir(folder) if n == wanted or n.endswith("-" + wanted))
    except OSError:
        return None
    return os.path.join(folder, found[-1]) if found else None


def _capture() -> Any:
    """The display-capture module: uploaded beside this file (named alike), or imported in cellbox's own tests."""
    here = globals().get("__file__") or ""
    sibling = _sibling(here)
    if sibling is not None:
        module = sys.__dict__.setdefault("cellbox_runtimes", {}).get(sibling)
        if module is None:
            import runpy

            module = runpy.run_path(sibling)
            sys.__dict__.setdefault("cellbox_runtimes", {})[sibling] = module
        return types.SimpleNamespace(**{k: v for k, v in module.items() if not k.startswith("__")})
    from cellbox.runtime import capture

    return capture


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
        _to_json(value)
    except (TypeError, ValueError):
        return False
    return True


TAG = "__cellbox__"


def _to_json(value: Any) -> Any:
    """A value as JSON that keeps what JSON alone loses: tuples, sets and dict keys that aren't strings are
    tagged ({"__cellbox__": "tuple", "items": [...]}); anything else that isn't JSON is a TypeError."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity are not JSON")
        return value
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [_to_json(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        kind = "set" if isinstance(value, set) else "frozenset"
        return {TAG: kind, "items": [_to_json(v) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: _to_json(v) for k, v in value.items()}
        return {TAG: "dict", "items": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
    raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} is not a JSON value")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {k: _from_json(v) for k, v in value.items()}
        items = value["items"]
        if tag == "dict":
            return {_from_json(k): _from_json(v) for k, v in items}
        made = {"tuple": tuple, "set": set, "frozenset": frozenset}[tag]
        return made(_from_json(v) for v in items)
    return value


def _is_array(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray) and value.dtype.kind not in "OV"


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
    if _is_array(value):
        import numpy

        path = path_stem + ".npy"
        numpy.save(path, value, allow_pickle=False)
        return {"kind": "ndarray", "format": "npy", "path": path}
    value = _plain_scalar(value)
    try:
        encoded = _to_json(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"-o {name}: {name} is a {type(value).__module__}.{type(value).__qualname__}, which can't travel "
            "faithfully; -o brings back DataFrames, Series, numpy arrays and JSON values (numbers, strings, "
            "booleans, None, and lists, tuples, sets and dicts of them). Convert it first, e.g. "
            f"{name} = pd.DataFrame(...) or {name} = str({name}), or save it to a file and pull the file."
        ) from None
    path = path_stem + ".json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(encoded, f)
    return {"kind": "json", "format": "json", "path": path}


def _import(spec: dict[str, Any]) -> Any:
    if spec["format"] == "json":
        with open(spec["path"], encoding="utf-8") as f:
            return _from_json(json.load(f))
    if spec["format"] == "npy":
        import numpy

        return numpy.load(spec["path"], allow_pickle=False)
    return _read_frame(spec)


def _describe_value(value: Any, out_dir: str, capture: Any) -> dict[str, Any]:
    """The last expression: its mimebundle as the shell's displayhook makes it (`bundle`), and for the Python API
    the value itself where it travels (a frame, up to MAX_VALUE_ROWS rows; a JSON value), else its repr."""
    described: dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    try:
        described["bundle"] = capture.format_value(value)
    except Exception as exc:  # a broken _repr_*_ must not fail the run: IPython shows the plain repr then
        described["bundle"] = {"data": {"text/plain": _safe_repr(value)}, "metadata": {}}
        described["repr_error"] = f"{type(exc).__name__}: {exc}"
    kind = _kind_of(value)
    if kind is not None:
        shown = value
        if len(value) > MAX_VALUE_ROWS:  # to be displayed, not kept: -o brings a whole frame back
            shown = value.head(MAX_VALUE_ROWS)
            described["truncated_from"] = len(value)
        try:
            described.update(_write_frame(shown, os.path.join(out_dir, "value"), kind))
            return described
        except Exception:  # e.g. a Series of dtype objects, which Parquet can't hold: its repr stands
            described.pop("truncated_from", None)
    try:
        encoded = _to_json(_plain_scalar(value))
    except (TypeError, ValueError):
        encoded = None
    else:
        if len(json.dumps(encoded)) <= MAX_REPR:
            described.update(kind="json", json=encoded)
    described.setdefault("kind", "repr")
    described["repr"] = _limited(_safe_repr(value), MAX_REPR)
    return described


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__qualname__} object (repr failed: {exc})>"


def _plain_scalar(value: Any) -> Any:
    """numpy scalars (what `frame.x.sum()` gives) as the Python numbers they stand for."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    return value


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


def _split_last_expression(source: str) -> tuple[ast.Module, ast.Expression | None]:
    """The cell without its last expression, and that expression (None when the cell ends otherwise, or with
    `;`, which hides the value as in IPython)."""
    tree = ast.parse(source, CELL_FILENAME)
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(source):
        last = tree.body.pop()
        return tree, ast.Expression(body=last.value)  # type: ignore[attr-defined]
    return tree, None


def _ends_with_semicolon(source: str) -> bool:
    lines = [line.split("#", 1)[0].rstrip() for line in source.rstrip().splitlines()]
    code = [line for line in lines if line]
    return bool(code) and code[-1].endswith(";")


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


def _read_request(request_path: str) -> dict[str, Any] | None:
    """The request: the file's first line (the run's live output is appended after it)."""
    try:
        with open(request_path, encoding="utf-8") as f:
            request = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return request if isinstance(request, dict) and "run_id" in request else None


def _state_lost(private_dir: str) -> bool:
    """True for the first run in a new kernel of a container that ran cells before (its marker says so)."""
    global _NEW_KERNEL
    marker = os.path.join(private_dir, RAN_BEFORE)
    lost = _NEW_KERNEL and os.path.exists(marker)
    _NEW_KERNEL = False
    if not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8"):
            pass
    return lost


def _missing_output(name: str) -> dict[str, Any]:
    evalue = f"-o {name}: no variable {name!r} in the container after the cell ran"
    return {"ename": "NameError", "evalue": evalue, "traceback": f"NameError: {evalue}", "traceback_lines": []}


def execute(request_path: str) -> dict[str, Any] | None:
    """Run one request; always writes the result file, whatever the cell does. None, doing nothing, when the
    run was started before."""
    started = time.time()
    request = _read_request(request_path)
    if request is None or not _start(os.path.dirname(request["out_dir"])):
        run_id = request["run_id"] if request else os.path.basename(os.path.dirname(request_path))
        print(f"{REFUSED_MARKER}run {run_id} was started before; not running it again")
        return None
    out_dir = request["out_dir"]
    run_dir = os.path.dirname(out_dir)
    _forget_earlier_runs(os.path.dirname(run_dir), keep=run_dir)
    os.makedirs(out_dir, exist_ok=True)
    notes = _place(request.get("place") or [])
    watch = request.get("watch") or os.getcwd()
    skip = request.get("private_dir") or os.path.dirname(out_dir)  # cellbox's own files are not artifacts
    before = _snapshot(watch, skip)
    result: dict[str, Any] = {"run_id": request["run_id"], "ok": True, "error": None, "value": None}
    result.update(outputs={}, figures=[], changed=[], runtime_version=RUNTIME_VERSION, notes=notes)
    result.update(state_lost=_state_lost(skip), restored=[])
    namespace = _user_namespace()
    capture = _capture()
    output = capture.Output(request_path)
    saved = sys.stdout, sys.stderr
    with output, capture.displays(output):
        sys.stdout, sys.stderr = output.stream("stdout"), output.stream("stderr")
        try:
            inputs = list(request.get("inputs", []))
            if result["state_lost"]:
                names = {spec["name"] for spec in inputs}
                again = [spec for spec in request.get("restore") or [] if spec["name"] not in names]
                inputs[:0] = again
                result["restored"] = [spec["name"] for spec in again]
                output.add({"type": "state_lost", "restored": result["restored"]})  # said first, and live
            for spec in inputs:
                namespace[spec["name"]] = _import(spec)
            source = request["code"]
            capture.remember_source(CELL_FILENAME, source)
            body, last = _split_last_expression(source)
            exec(compile(body, CELL_FILENAME, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, CELL_FILENAME, "eval"), namespace)
                if value is not None:
                    namespace["_"] = value
                    result["value"] = _describe_value(value, out_dir, capture)
                    output.add({"type": "execute_result"})
        except BaseException as exc:  # KeyboardInterrupt too: the run was stopped, and the record must say so
            result["ok"] = False
            result["error"] = capture.format_error(exc, __file__)
        try:
            if capture.shell() is not None:
                capture.flush_figures()  # after the value, as the inline backend does after a cell
            else:
                result["figures"] = _save_figures(out_dir)
        except Exception as exc:  # a figure that can't render is reported, not fatal
            output.write("stderr", f"cellbox: could not show a figure: {exc}\n")
        finally:
            sys.stdout, sys.stderr = saved
    if result["ok"]:
        for name in request.get("outputs", []):
            if name not in namespace:
                result["ok"] = False
                result["error"] = _missing_output(name)
                break
            try:
                result["outputs"][name] = _export(namespace[name], os.path.join(out_dir, "out-" + name), name)
            except Exception as exc:
                result["ok"] = False
                text = f"{type(exc).__name__}: {exc}"
                result["error"] = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": text}
                break
    after = _snapshot(watch, skip)
    own = {os.path.abspath(request_path), os.path.abspath(globals().get("__file__") or "")}
    result["changed"] = sorted(p for p, sig in after.items() if before.get(p) != sig and os.path.abspath(p) not in own)
    result["sizes"] = {p: after[p][0] for p in result["changed"]}
    value = result["value"] or {}
    small = [spec["path"] for spec in result["outputs"].values() if spec.get("path")]
    small += [value["path"]] if value.get("path") else []
    result["inline"] = _inline(small + result["figures"])
    result["events"] = output.events
    result["stdout"], result["stderr"] = output.joined("stdout"), output.joined("stderr")
    result["duration"] = round(time.time() - started, 6)
    temp = request["result_path"] + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    os.replace(temp, request["result_path"])
    return result


if __name__ == "<run_path>":
    # Loaded by the loader line: stay loaded in this kernel, so later loader lines skip compiling this file.
    sys.__dict__.setdefault("cellbox_runtimes", {})[__file__] = globals()
