"""cellbox's runtime inside the container. Uploaded as a file and run by a one-line loader; not imported by cellbox.

It must work with the standard library, pandas and pyarrow only (CSV plus a dtype map when pyarrow is
missing), in whatever Python kernel the container runs. State lives in the kernel's user namespace, so variables
persist between runs like notebook cells. Its modules are uploaded beside it, named alike: `cell.py` (how the
cell's code runs, as IPython runs a cell), `capture.py` (what a cell shows) and `values.py` (inputs, `-o` outputs
and the last value, to and from files).

A run is described by a JSON request file and leaves a JSON result file plus output files beside it:

    request: {"run_id", "code", "result_path", "out_dir", "started", "private_dir", "watch": "/mnt/data",
              "place": [{"from": stored path, "to": wanted path}],
              "inputs": [{"name", "path", "format", "kind", ...}], "outputs": ["name", ...],
              "restore": [input spec, ...], "log_limit": characters, "execution_count": the notebook cell's N}
    result:  {"run_id", "ok", "events": [event], "error": {"ename", "evalue", "traceback",
              "traceback_lines"} | null, "value": {...} | null, "outputs": {"name": {...}}, "figures": [path],
              "changed": [path], "sizes": {path: bytes}, "inline": {path: base64}, "notes": [text],
              "state_lost": bool, "restored": [name], "duration": seconds}

Everything the loader prints is read by the model (the call's logs are its tool output, billed as input), so it
prints one short line, plus the result record only when that is small (`log_limit`, MAX_LOGGED_RESULT unless the
request says otherwise): whatever the cell prints or returns, the logs stay under 1 kB. The record, the cell's
streams (`events`; stdout and stderr are their stream events joined, so they are not written twice) and its
displays travel as the result file, which cellbox downloads. What the cell writes to file descriptors 1 and 2
(subprocesses, C libraries, `sys.__stdout__`) is captured into its streams too, since the kernel would otherwise
send it to the logs.

What the cell shows is captured by `capture.py` (uploaded beside this file) as IPython would show it: `events`
in order, the last value's mimebundle in `value["bundle"]`. The request file (one line) is also the run's live
output: each event is appended to it as a JSON line while the run goes on, and cellbox, which uploaded it and so
knows its id, reads it during the run. A runtime freshly loaded into a kernel for a container that ran cells
before knows the kernel was restarted: it says so (`state_lost`) and loads the `restore` values again.

A run starts at most once: a `started` marker beside its request is created exclusively, and a second start of the
same run (a model that runs the loader again) prints `REFUSED_MARKER` and does nothing. Where the service keeps
upload names, cellbox uploads the request while the model is asked to run it, so the runtime may start first: a
request in the runs folder not there yet, for a run that has not started, is waited for. Uploads land where the
service puts them (OpenAI's example: `/mnt/data/<hex>-<name>`); `place` moves each where cellbox said it would be
before the code runs. Small output files travel inside the result record (`inline`), saving the client a download.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import sys
import time
import types
from typing import Any

MAX_TEXT = 2_000_000  # characters of stdout/stderr kept in the result record; the rest is summarised
RESULT_MARKER = "cellbox-result: "
REFUSED_MARKER = "cellbox-refused: "
# Characters of the record printed into the logs: with the summary line, under 1 kB. A record this small saves the
# client a download; a larger one is only the result file.
MAX_LOGGED_RESULT = 900
MAX_ENAME = 60  # characters of an exception's name in the summary line
MAX_INLINE_FILE = 64 * 1024  # output files this small travel inside the result record …
MAX_INLINE_TOTAL = 128 * 1024  # … up to this much in all
# A run's files sit side by side in the runs folder, named for the run: a folder made and removed every run would
# cost inotify watches added and torn down (slow), here and on the server. The output folder is made only when the
# run writes output files.
RUNS_FOLDER = "runs"  # in the private folder
REQUEST_SUFFIX = ".request.json"  # <run id>.request.json (protocol.Request.filename)
STARTED_SUFFIX = ".started"  # <run id>.started: made once, when the run starts
OUT_SUFFIX = ".out"  # <run id>.out/: the run's output files
REQUEST_WAIT = 60.0  # seconds a request still on its way is waited for
RAN_BEFORE = "kernel-ran"  # in the private folder: some run happened in this container
_NEW_KERNEL = not sys.__dict__.get("cellbox_runtimes")  # no runtime was loaded in this kernel before this one


def _sibling(here: str, module: str) -> str | None:
    """The file of a module uploaded beside the runtime (`capture`, `values`): named alike, though a service may
    have put its own prefix on each (OpenAI stores uploads as /mnt/data/<hex>-<name>, a different <hex> for each)."""
    name = os.path.basename(here)
    if "cellbox_runtime_" not in name:
        return None
    own = f"cellbox_{module}_"
    wanted = name[name.index("cellbox_runtime_") :].replace("cellbox_runtime_", own)
    folder = os.path.dirname(here)
    exact = os.path.join(folder, name.replace("cellbox_runtime_", own))
    if os.path.exists(exact):
        return exact
    try:
        found = sorted(n for n in os.listdir(folder) if n == wanted or n.endswith("-" + wanted))
    except OSError:
        return None
    return os.path.join(folder, found[-1]) if found else None


_siblings: dict[str, Any] = {}  # by module name, made once per kernel: a run uses four


def _sibling_module(module: str) -> Any:
    """A module of the runtime's: uploaded beside this file (named alike), or imported in cellbox's own tests.
    Once loaded it is kept, so a runtime loaded in the kernel runs on when code removes its files."""
    made = _siblings.get(module)
    if made is not None:
        return made
    here = globals().get("__file__") or ""
    sibling = _sibling(here, module)
    if sibling is not None:
        loaded = sys.__dict__.setdefault("cellbox_runtimes", {}).get(sibling)
        if loaded is None:
            import runpy

            loaded = runpy.run_path(sibling)
            sys.__dict__.setdefault("cellbox_runtimes", {})[sibling] = loaded
        public = {k: v for k, v in loaded.items() if not k.startswith("__")}
        made = _siblings[module] = types.SimpleNamespace(**public, __file__=sibling)
        return made
    import importlib

    return importlib.import_module(f"cellbox.runtime.{module}")


values = _sibling_module("values")  # only after _NEW_KERNEL was set: loading it registers it in the kernel


def _user_namespace() -> dict[str, Any]:
    try:
        shell = get_ipython()  # type: ignore[name-defined]
        return shell.user_ns
    except NameError:
        import __main__

        return __main__.__dict__


def _save_figures(out_dir: str) -> list[str]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or not plt.get_fignums():
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for number in plt.get_fignums():
        path = os.path.join(out_dir, f"figure-{number}.png")
        plt.figure(number).savefig(path, format="png", bbox_inches="tight")
        paths.append(path)
    plt.close("all")
    return paths


# --- running --------------------------------------------------------------------------------------------------


def run(request_path: str) -> None:
    """Run one request and print a one-line summary (and the record, when it is small); the result file is
    written whatever the cell does. A run already started (the loader run a second time) is refused: nothing runs
    again."""
    request = _read_request(request_path)
    ran = _execute(request_path, request)
    if ran is None or request is None:
        return
    result, record = ran
    state = "ok" if result["ok"] else f"error {str(result['error']['ename'])[:MAX_ENAME]}"
    summary = f"cellbox run {result['run_id']}: {state} in {result['duration']:.3f}s"
    # The record as written to its file (one line of ASCII JSON), in the same write as the summary when it fits.
    if len(record) <= request.get("log_limit", MAX_LOGGED_RESULT):
        summary += "\n" + RESULT_MARKER + record
    print(summary)


def _run_of(name: str) -> str:
    """The run a file of the runs folder belongs to."""
    return name[len("result-") :].split(".", 1)[0] if name.startswith("result-") else name.split(".", 1)[0]


def _forget_earlier_runs(runs_dir: str, keep: str) -> None:
    """Earlier runs' files have been read by the client: dropping them keeps /mnt/data from growing run by run. A
    request of a run not started yet (another session's, on its way) is left to its run, unless it is stale."""
    try:
        names = os.listdir(runs_dir)
    except OSError:
        return
    started = {name[: -len(STARTED_SUFFIX)] for name in names if name.endswith(STARTED_SUFFIX)}
    for name in names:
        run_id = _run_of(name)
        path = os.path.join(runs_dir, name)
        if run_id == keep:
            continue
        if name.endswith(REQUEST_SUFFIX) and run_id not in started:
            with contextlib.suppress(OSError):
                if time.time() - os.stat(path).st_mtime < 2 * REQUEST_WAIT:
                    continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


def _start(marker: str) -> bool:
    """Mark the run started; False when it already was (the marker is created exclusively, once)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    try:
        try:
            made = os.open(marker, flags, 0o600)
        except FileNotFoundError:  # the runs folder is there already, nearly always (the run's upload made it)
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            made = os.open(marker, flags, 0o600)
    except FileExistsError:
        return False
    os.close(made)
    return True


def _marker_of(request_path: str) -> str | None:
    """The started marker beside a request in the runs folder; None for a request elsewhere (a service that
    stores uploads under names of its own put it there: it was uploaded before the run was asked for)."""
    in_runs = os.path.basename(os.path.dirname(request_path)) == RUNS_FOLDER
    if not in_runs or not request_path.endswith(REQUEST_SUFFIX):
        return None
    return request_path[: -len(REQUEST_SUFFIX)] + STARTED_SUFFIX


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


def _on_its_way(request_path: str) -> bool:
    """A request in the runs folder, for a run not started: it may be on its way."""
    marker = _marker_of(request_path)
    return marker is not None and not os.path.exists(marker)


def _read_request(request_path: str) -> dict[str, Any] | None:
    """The request: the file's first line (the run's live output is appended after it). A request in the runs
    folder whose run has not started may still be on its way (cellbox uploads it while the model is asked to run
    it): it is waited for, up to REQUEST_WAIT seconds, a whole first line at a time."""
    on_its_way = _on_its_way(request_path)
    deadline = time.monotonic() + (REQUEST_WAIT if on_its_way else 0.0)
    # Woken by the upload landing where inotify can be had; else looked for often at first (an upload lands
    # within milliseconds of the run, usually), then less.
    landing = None
    if on_its_way:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(request_path), exist_ok=True)  # to be watched before the upload makes it
        landing = _sibling_module("changes").arrivals(os.path.dirname(request_path))
    pause = 0.0002
    while True:
        if landing is not None:
            landing.forget()  # what is written from here on wakes the wait below
        try:
            with open(request_path, encoding="utf-8") as f:
                request = json.loads(f.readline())
            return request if isinstance(request, dict) and "run_id" in request else None
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                return None
        if landing is not None:
            landing.wait(min(0.05, deadline - time.monotonic()))  # and a look now and then, whatever it says
        else:
            time.sleep(pause)
            pause = min(pause * 1.25, 0.05)


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


def _export(names: list[str], namespace: dict[str, Any], out_dir: str, result: dict[str, Any], capture: Any) -> None:
    """Write every `-o` value that can travel into `result["outputs"]`; those that can't fail the run together,
    one line each, after the others are written (the client delivers them all the same)."""
    failed: list[tuple[str, str]] = []  # (exception name, what it says)
    for name in names:
        if name not in namespace:
            failed.append(("NameError", f"-o {name}: no variable {name!r} in the container after the cell ran"))
            continue
        try:
            result["outputs"][name] = values.write_value(namespace[name], os.path.join(out_dir, "out-" + name), name)
        except Exception as exc:
            said = capture.said_by(exc)
            failed.append((type(exc).__name__, said if said.startswith(f"-o {name}") else f"-o {name}: {said}"))
    if not failed:
        return
    lines = [said for _, said in failed]
    if result["outputs"]:
        lines.append(f"(brought back all the same: {', '.join(result['outputs'])})")
    ename, evalue = failed[0][0], "\n".join(lines)
    result["ok"] = False
    result["error"] = {"ename": ename, "evalue": evalue, "traceback": f"{ename}: {evalue}", "traceback_lines": []}


def execute(request_path: str, request: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Run one request (read from its file unless given); always writes the result file, whatever the cell does.
    None, doing nothing, when the run was started before."""
    ran = _execute(request_path, request)
    return None if ran is None else ran[0]


def _execute(request_path: str, request: dict[str, Any] | None) -> tuple[dict[str, Any], str] | None:
    """`execute`, and the record as written to the result file."""
    started = time.time()
    if request is None:
        request = _read_request(request_path)
    if request is None and _on_its_way(request_path):
        print(f"{REFUSED_MARKER}the run's request ({request_path}) never arrived; nothing ran")
        return None
    if request is None or not _start(request["started"]):
        run_id = request["run_id"] if request else _run_of(os.path.basename(request_path))
        print(f"{REFUSED_MARKER}run {run_id} was started before; not running it again")
        return None
    out_dir = request["out_dir"]
    _forget_earlier_runs(os.path.dirname(request["started"]), keep=request["run_id"])
    notes = _place(request.get("place") or [])
    skip = request["private_dir"]  # cellbox's own files are not artifacts
    changes = _sibling_module("changes").tracker(request["watch"], skip)
    changes.start()
    result: dict[str, Any] = {"run_id": request["run_id"], "ok": True, "error": None, "value": None}
    last: Any = None  # the cell's last value
    result.update(outputs={}, figures=[], changed=[], notes=notes)
    result.update(state_lost=_state_lost(skip), restored=[])
    namespace = _user_namespace()
    capture = _sibling_module("capture")
    cell = _sibling_module("cell")
    filename = cell.CELL_FILENAME  # until the cell's own is made (an input that fails to load comes first)
    output = capture.Output(request_path)
    saved = sys.stdout, sys.stderr
    figures = capture.saved_figures()
    with output, capture.displays(output) as shown, _sibling_module("descriptors").capture(output), figures:
        sys.stdout, sys.stderr = output.stream("stdout"), output.stream("stderr")
        try:
            inputs = list(request.get("inputs", []))
            if result["state_lost"]:
                names = {spec["name"] for spec in inputs}
                again = [spec for spec in request.get("restore") or [] if spec["name"] not in names]
                inputs[:0] = again
                # Everything pushed is there again: the values loaded again, and those pushed for this cell.
                result["restored"] = [spec["name"] for spec in request.get("restore") or []]
                output.add({"type": "state_lost", "restored": result["restored"]})  # said first, and live
            for spec in inputs:
                namespace[spec["name"]] = values.read_value(spec)
            filename = cell.filename(request["run_id"], request.get("execution_count"), capture.shell())
            capture.remember_source(filename, request["code"])
            value = last = cell.run(request["code"], namespace, capture.shell(), filename)
            if value is not None:
                namespace["_"] = value
                result["value"] = values.describe_value(value, out_dir, capture)
                output.add({"type": "execute_result"})
        except BaseException as exc:  # KeyboardInterrupt too: the run was stopped, and the record must say so
            result["ok"] = False
            try:
                result["error"] = capture.format_error(exc, __file__, values.__file__, cell=filename)
            except Exception:  # whatever the exception does when shown, the run's record is written
                ename = type(exc).__name__
                result["error"] = {"ename": ename, "evalue": "", "traceback": ename, "traceback_lines": [ename]}
        try:
            if capture.shell() is not None:
                capture.flush_figures()  # after the value, as the inline backend does after a cell
            else:
                figures.open_ones_shown()
                result["figures"] = _save_figures(out_dir)
        except Exception as exc:  # a figure that can't render is reported, not fatal
            output.write("stderr", f"cellbox: could not show a figure: {exc}\n")
        finally:
            sys.stdout, sys.stderr = saved
    if result["ok"] and shown.error is not None:  # an error the shell showed without raising it fails the cell
        result["ok"], result["error"] = False, shown.error
    if result["ok"]:
        _export(request.get("outputs", []), namespace, out_dir, result, capture)
    if result["ok"] and (result["value"] or {}).get("path") and not (result["value"] or {}).get("truncated_from"):
        # The last value is an -o variable itself (`-o out` ending in `out`): the client reads it once, as that
        # variable, and counts its rows once.
        result["value"]["same_as"] = next((name for name in result["outputs"] if namespace.get(name) is last), None)
    written = changes.changed()
    own = {os.path.abspath(request_path), os.path.abspath(globals().get("__file__") or "")}
    result["changed"] = sorted(p for p in written if os.path.abspath(p) not in own)
    result["sizes"] = {p: written[p] for p in result["changed"]}
    result["shown_figures"] = [p for p in figures.paths if p in result["sizes"]]  # saved and shown: shown once
    value = result["value"] or {}
    small = [spec["path"] for spec in result["outputs"].values() if spec.get("path")]
    small += [value["path"]] if value.get("path") and not value.get("same_as") else []
    result["inline"] = _inline(small + result["figures"])
    result["events"] = output.events
    result["duration"] = round(time.time() - started, 6)
    record = json.dumps(result, default=str)
    os.makedirs(os.path.dirname(request["result_path"]), exist_ok=True)  # the cell may have removed cellbox's folder
    temp = request["result_path"] + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(record)
    os.replace(temp, request["result_path"])
    # Read at the start, and by the client while the cell ran; nobody needs it now (so the client needn't delete it).
    with contextlib.suppress(OSError):
        os.remove(request_path)
    return result, record


if __name__ == "<run_path>":
    # Loaded by the loader line: stay loaded in this kernel, so later loader lines skip compiling this file.
    sys.__dict__.setdefault("cellbox_runtimes", {})[__file__] = globals()
