"""The run protocol in-process against the real runtime, no server: the request file, the loader line run as the
model would run it, the check of the code it ran, and the result record read back into a `Run`."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cellbox.api import CodeInterpreterCall, Response
from cellbox.boundary import DisplayPolicy
from cellbox.runtime.container import REFUSED_MARKER
from cellbox.session import frames, protocol
from cellbox.session.errors import LoaderMismatch
from cellbox.session.result_record import Result
from cellbox.session.results import Usage, add_usage


class InProcessContainer:
    """A data folder in tmp_path and a kernel namespace of its own; `execute` runs code as the tool would."""

    def __init__(self, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.data_dir = data_dir
        self.namespace = types.ModuleType("__main__")  # the runtime's user namespace outside IPython
        monkeypatch.setitem(sys.modules, "__main__", self.namespace)
        monkeypatch.setattr(sys, "cellbox_runtimes", {}, raising=False)
        monkeypatch.chdir(data_dir)
        name, source, _ = protocol.runtime_file()
        self.runtime_path = self.put(name, source)

    def put(self, name: str, content: bytes) -> str:
        path = self.data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)

    def execute(self, code: str) -> CodeInterpreterCall:
        logs = io.StringIO()
        with contextlib.redirect_stdout(logs):
            exec(code, {})
        return CodeInterpreterCall.from_dict(
            {"id": "ci_1", "code": code, "status": "completed", "outputs": [{"type": "logs", "logs": logs.getvalue()}]}
        )

    def loaded_runtime(self) -> dict[str, Any]:
        """The runtime's globals as the loader line finds them in the kernel (loading it first)."""
        self.execute(f"import runpy; runpy.run_path({self.runtime_path!r})")
        runtimes: dict[str, dict[str, Any]] = sys.cellbox_runtimes  # type: ignore[attr-defined]
        return runtimes[self.runtime_path]

    def run(self, request: protocol.Request) -> Result:
        loader = protocol.loader_line(self.runtime_path, self.put(request.filename, request.body()))
        assert loader in protocol.run_prompt(loader)
        call = self.execute(loader)
        assert len(call.logs.encode()) <= 1000  # what the model reads: one short line, the record only when small
        reading = protocol.read_calls([call], loader)
        assert reading.started and not reading.foreign
        written = json.loads(Path(request.result_path).read_text())
        assert reading.record in (None, written)
        return Result.accept(written, request, DisplayPolicy())


def read_values(result: Result) -> list[Any]:
    return [frames.read(spec, Path(spec["path"])) for spec in result.frame_specs]


def test_a_run_travels_through_the_protocol_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = InProcessContainer(tmp_path, monkeypatch)
    sales = pd.DataFrame({"region": ["a", "b", "a"], "price": [1.0, 2.0, 3.0]})
    (tmp_path / ".cellbox" / "inputs").mkdir(parents=True)
    spec = frames.write(sales, tmp_path / ".cellbox" / "inputs" / "sales")
    spec["name"] = "sales"
    request = protocol.Request.new(
        "sales['twice'] = sales.price * 2\nprint('rows', len(sales))\ntotals = sales.groupby('region').price.sum()\n"
        "sales.price.sum()",
        inputs=[spec],
        variables=["sales", "totals"],
        data_dir=str(tmp_path),
    )
    result = box.run(request)
    assert result.run_id == request.run_id and result.error is None
    run = result.to_run(read_values(result), [], [])
    assert run.ok and run.stdout == "rows 3\n" and run.value == 6.0
    assert run.variables["sales"]["twice"].tolist() == [2.0, 4.0, 6.0]
    pd.testing.assert_series_equal(run.variables["totals"], sales.groupby("region").price.sum())
    assert box.namespace.totals is not None  # state stays in the kernel's namespace for the next run

    # A second run reuses the loaded runtime and the state the first one left.
    again = box.run(protocol.Request.new("totals.max()", data_dir=str(tmp_path)))
    assert again.to_run([], [], []).value == 4.0
    assert list(sys.cellbox_runtimes) == [box.runtime_path]  # type: ignore[attr-defined]


def test_a_frame_value_and_an_error_come_back_as_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = InProcessContainer(tmp_path, monkeypatch)
    monkeypatch.setattr(box.loaded_runtime()["values"], "MAX_VALUE_ROWS", 10)
    result = box.run(
        protocol.Request.new("import pandas as pd\npd.DataFrame({'v': range(25)})", data_dir=str(tmp_path))
    )
    run = result.to_run(read_values(result), [], [])
    assert run.value["v"].tolist() == list(range(10))
    assert "run.value holds the first 10 of 25 rows" in " ".join(run.notes)
    failed = box.run(protocol.Request.new("def f():\n    return 1 / 0\nf()", data_dir=str(tmp_path)))
    run = failed.to_run([], [], [])
    assert run.error is not None and run.error.ename == "ZeroDivisionError" and run.error.run_id == failed.run_id
    # Only the cell's frames: the runtime, uploaded under its content-named file, is not shown.
    assert run.error.traceback.startswith('Traceback (most recent call last):\n  File "<cell>", line 3, in <module>')
    assert 'File "<cell>", line 2, in f' in run.error.traceback
    assert Path(box.runtime_path).name.startswith("cellbox_runtime_") and box.runtime_path not in run.error.traceback


LOADER = protocol.loader_line("/mnt/data/.cellbox/rt.py", "/mnt/data/.cellbox/runs/x/request.json")


def call(code: str | None, status: str = "completed", logs: str | None = None) -> CodeInterpreterCall:
    outputs = None if logs is None else [{"type": "logs", "logs": logs}]
    item = {"type": "code_interpreter_call", "id": "ci_1", "code": code, "status": status, "outputs": outputs}
    return CodeInterpreterCall.from_dict(item)


def test_the_loader_reformatted_is_the_loader_and_anything_else_is_foreign() -> None:
    assert "\n" not in LOADER
    reformatted = LOADER.replace("'", '"').replace("(", "( ").replace(", ", " ,  ") + "  # run it\n"
    assert reformatted != LOADER and protocol.same_code(reformatted, LOADER)
    assert protocol.same_code(f"\n{LOADER}\n", LOADER)
    assert not protocol.same_code(LOADER.replace("'run'", "'execute'"), LOADER)
    assert not protocol.same_code(LOADER + "\nprint(1)", LOADER)
    assert not protocol.same_code("print('something else')", LOADER)
    assert not protocol.same_code("this is ( not python", LOADER) and not protocol.same_code(None, LOADER)
    reading = protocol.read_calls([call(reformatted, logs="ran\n"), call("print('something else')")], LOADER)
    assert reading.started and reading.foreign == ["print('something else')"] and not reading.retry
    error = protocol.deviation(reading.foreign, "m", reading.started)
    message = str(error)
    assert isinstance(error, LoaderMismatch) and "something else" in message
    assert "state is uncertain" in message and "%container new --fresh" in message and "revive()" in message
    assert "in your container" in message and "That code has run (and its response was billed)" in message


def test_what_a_reply_says_about_the_run() -> None:
    record = {"run_id": "x", "stdout": "", "stderr": ""}
    logs = "cellbox run x: ok\n" + protocol.RESULT_MARKER + json.dumps(record) + "\n"
    assert protocol.read_calls([call(LOADER, logs=logs)], LOADER).record == record
    # A completed call with no outputs (a backend that sends none): the run started, its record is a file.
    quiet = protocol.read_calls([call(LOADER)], LOADER)
    assert quiet.started and quiet.record is None and not quiet.retry
    # The loader run a second time: the runtime refused, so the run had started before.
    refused = protocol.read_calls(
        [call(LOADER, "incomplete", logs=f"{REFUSED_MARKER}run x was started before")], LOADER
    )
    assert refused.started and not refused.retry
    # Nothing started: no call at all, or a call that ended incomplete without running anything.
    assert protocol.read_calls([], LOADER).retry
    never = protocol.read_calls([call(LOADER, "incomplete")], LOADER)
    assert never.retry and never.problems == ["the model's call ended incomplete"]
    assert protocol.read_calls([call("", "incomplete")], LOADER).retry


def response(status: str, output: list, **fields: object) -> Response:
    return Response.from_dict({"id": "resp_1", "status": status, "output": output, **fields})


def test_statuses_and_errors_are_said_in_words() -> None:
    failed = response("failed", [], error={"code": "rate_limit_exceeded", "message": "Slow down."})
    assert protocol.read_response(failed, LOADER).problems == [
        "the response failed: rate_limit_exceeded: Slow down.",
        "the model replied without calling the python tool",
    ]
    cut = response(
        "incomplete", [call(LOADER, "incomplete").to_dict()], incomplete_details={"reason": "max_output_tokens"}
    )
    assert protocol.read_response(cut, LOADER).problems == [
        "the response ended incomplete: max_output_tokens",
        "the model's call ended incomplete",
    ]
    chat = [{"type": "message", "content": [{"type": "output_text", "text": "I would rather   not."}]}]
    assert protocol.read_response(response("completed", chat), LOADER).problems == [
        "the model replied without calling the python tool: 'I would rather not.'"
    ]


def test_response_options_bound_the_model() -> None:
    options = protocol.response_options(reasoning_effort="low")
    assert options["tool_choice"] == {"type": "code_interpreter"}
    assert options["max_tool_calls"] == 1 and options["parallel_tool_calls"] is False
    assert options["instructions"] == protocol.INSTRUCTIONS and "exactly once" in protocol.INSTRUCTIONS
    assert options["background"] is True and options["store"] is True  # polling needs a stored response
    assert options["reasoning_effort"] == "low"
    assert options["extra_body"] == {"max_output_tokens": protocol.MAX_OUTPUT_TOKENS}
    assert {"reasoning", "max_output_tokens"} <= set(options["optional"])  # a backend may refuse either
    foreground = protocol.response_options(background=False)
    assert "background" not in foreground and foreground["store"] is False
    assert foreground["reasoning_effort"] == "low"  # unless the user set an effort: every reasoning model takes it
    for effort in ("high", "xhigh", "max"):
        assert protocol.response_options(reasoning_effort=effort)["extra_body"]["max_output_tokens"] >= 32768
    assert "extra_body" not in protocol.response_options(bounded=False)


def test_the_model_reads_and_writes_the_same_whatever_the_cell() -> None:
    # The prompt and instructions are fixed: the loader names content-addressed paths of a fixed length.
    short = protocol.Request.new("pass")
    long = protocol.Request.new("print('x' * 5_000_000)\n" * 100)
    prompts = {
        len(protocol.run_prompt(protocol.loader_line(protocol.runtime_file()[0], f"/mnt/data/{r.filename}")))
        for r in (short, long)
    }
    assert len(prompts) == 1 and prompts.pop() + len(protocol.INSTRUCTIONS) < 1000


def test_a_loader_call_cut_by_the_bound_never_ran_and_may_be_asked_again() -> None:
    cut = response(
        "incomplete",
        [call(LOADER[:40], "incomplete").to_dict()],
        incomplete_details={"reason": "max_output_tokens"},
    )
    reading = protocol.read_response(cut, LOADER)
    assert not reading.foreign and reading.retry and reading.cut_short
    # Cut after the run: it started, so it is not asked again.
    ran = response(
        "incomplete",
        [call(LOADER, logs="cellbox run x: ok\n").to_dict()],
        incomplete_details={"reason": "max_output_tokens"},
    )
    assert protocol.read_response(ran, LOADER).started and not protocol.read_response(ran, LOADER).cut_short
    # Other code cut short is still code the model wrote of its own.
    other = response("incomplete", [call("import os; os.remove(", "incomplete").to_dict()])
    assert protocol.read_response(other, LOADER).foreign


def test_the_record_file_is_found_by_the_citation_that_names_it() -> None:
    request = protocol.Request.new("pass")
    name = request.result_path.rsplit("/", 1)[-1]
    assert request.run_id in name  # a user's result.json can't be taken for it

    def cite(file_id: str, filename: str) -> dict:
        return {"type": "container_file_citation", "container_id": "c", "file_id": file_id, "filename": filename}

    text = {
        "type": "output_text",
        "text": "done",
        "annotations": [cite("cfile_1", "result.json"), cite("cfile_2", name)],
    }
    cited = response("completed", [{"type": "message", "content": [text]}])
    assert protocol.cited_file(cited, request.result_path) == "cfile_2"
    assert protocol.cited_file(response("completed", []), request.result_path) is None


def test_usage_sums_what_each_response_billed() -> None:
    one = Usage.of(
        {
            "input_tokens": 200,
            "output_tokens": 90,
            "total_tokens": 290,
            "input_tokens_details": {"cached_tokens": 128},
            "output_tokens_details": {"reasoning_tokens": 10},
        }
    )
    assert one == Usage(200, 90, 290, 128, 10, 1)
    assert Usage.of(None) is None and Usage.of({"input_tokens": "many"}) == Usage(responses=1)
    both = add_usage(add_usage(None, one), Usage.of({"input_tokens": 5, "output_tokens": 1}))
    assert both == Usage(205, 91, 296, 128, 10, 2)
    assert str(both) == "296 tokens (205 in, 91 out, 128 cached, 10 reasoning) over 2 responses"
    assert add_usage(None, None) is None and add_usage(one, None) == one


def test_a_run_starts_at_most_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = InProcessContainer(tmp_path, monkeypatch)
    request = protocol.Request.new("ran = globals().get('ran', 0) + 1\nran", data_dir=str(tmp_path))
    loader = protocol.loader_line(box.runtime_path, box.put(request.filename, request.body()))
    first = protocol.read_calls([box.execute(loader)], loader)
    assert first.record is not None and first.record["value"]["json"] == 1
    again = box.execute(loader)  # the model runs the loader again (a rerun after an error, or a retry)
    assert again.logs == f"{REFUSED_MARKER}run {request.run_id} was started before; not running it again\n"
    assert box.namespace.ran == 1
    assert protocol.read_calls([again], loader).started


def test_uploads_are_placed_before_the_code_and_small_outputs_travel_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = InProcessContainer(tmp_path, monkeypatch)
    stored = box.put("88e12fa445d32636f190a0b33daed6cb-c.txt", b"nested")  # where the service put it
    wanted = str(tmp_path / "data" / "sub" / "c.txt")  # where push said it would be
    request = protocol.Request.new(
        "import pandas as pd, pathlib\nsmall = pd.DataFrame({'v': [1, 2]})\npathlib.Path(WANTED).read_text()".replace(
            "WANTED", repr(wanted)
        ),
        variables=["small"],
        data_dir=str(tmp_path),
        place=[
            {"from": stored, "to": wanted},
            {"from": str(tmp_path / "nowhere.txt"), "to": str(tmp_path / "lost.txt")},
        ],
    )
    result = box.run(request)
    assert result.error is None and result.value["json"] == "nested"
    assert not Path(stored).exists() and Path(wanted).read_bytes() == b"nested"
    assert wanted not in result.changed  # placed before the code ran: not the code's doing
    assert result.notes == [
        f"the upload for {tmp_path / 'lost.txt'} was not found at {tmp_path / 'nowhere.txt'}; the file is missing"
    ]
    path = result.variables["small"]["path"]
    assert result.inline[path] == Path(path).read_bytes()  # no download needed
    assert frames.read(result.variables["small"], Path(path))["v"].tolist() == [1, 2]


def test_variable_names_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(protocol.CellboxError, match="not a valid Python variable name"):
        protocol.Request.new("1", variables=["ok", "not-a-name"])


def test_live_output_is_bounded_in_events_and_bytes() -> None:
    shown: list[dict[str, Any]] = []
    live = protocol.LiveOutput(shown.append)
    live.EVENT_LIMIT = 5
    event = json.dumps({"type": "stream", "name": "stdout", "text": "x\n"}).encode() + b"\n"
    live.feed(event * 20)
    assert [e["text"] for e in shown[:5]] == ["x\n"] * 5
    assert "more than 5 outputs" in shown[5]["text"] and len(shown) == 6 and live.held
    live.feed(event * 1000)  # held: nothing more is parsed or shown
    assert len(shown) == 6

    shown.clear()
    live = protocol.LiveOutput(shown.append)
    live.BYTE_LIMIT = 1000
    for _ in range(100):
        live.feed(event * 10)
    assert live.held and "more than 1.0 kB of output; live output stops" in shown[-1]["text"]
    assert sum(len(e["text"]) for e in shown[:-1]) <= 1000
