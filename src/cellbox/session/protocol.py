"""The run protocol: how a cell's code reaches cellbox's runtime in the container, and how its result comes back.

Code travels as a file (docs/ARCHITECTURE.md, "One cell's journey"). A `Request` is uploaded beside the
runtime; the model is asked (`run_prompt`, with `INSTRUCTIONS` and the bounds of `response_options`) to run one fixed
`loader_line`; the calls it reports are read (`read_response`): a call whose code is the loader (the same syntax
tree: a model may reformat it) is the run, any other code is a deviation that leaves the container's state
uncertain, and a reply that never started the run may be asked again (the runtime refuses a second start, so a cell
runs at most once whatever the model does). The
runtime's result record is read from the call's logs when it is small, else from its file (found by the response's
citation of it, `cited_file`, or in the listing), and parsed into a `Result` (result_record.py), which makes the
`Run` once its files are fetched.

What the model reads and writes is billed, so its part of a cell is small and fixed whatever the cell does: the
prompt and instructions are constant, the loader prints one short line into the call's logs (plus the record when
that fits in `LOG_LIMIT` characters: under 1 kB in all), the reply is bounded (`max_output_tokens`) and asked for
with low reasoning effort where the backend takes it (`response_options`).

What the real services do, and where it is written down: docs/CLOUD.md. In short: a model
may call the tool more than once and rewrite failing code ([Doc] OpenAI's guide), so the request bounds it
(`tool_choice` naming the tool, `max_tool_calls: 1`, `parallel_tool_calls: false`) and the runtime refuses
reruns; `outputs` are null without `include` ([Obs]); only `background: true` responses can be polled and
cancelled ([Doc]), and polling needs them stored, so a background run is stored and deleted once read.

Nothing here does I/O: `Sandbox` moves the bytes, and a test can drive the protocol in-process against the runtime.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..api import CellboxError, CodeInterpreterCall, Response
from ..boundary import record as record_bounds
from ..common import text
from ..runtime import SIBLINGS, container_runtime_source, sibling_source
from ..runtime.container import (
    MAX_LOGGED_RESULT,
    OUT_SUFFIX,
    REFUSED_MARKER,
    REQUEST_SUFFIX,
    RESULT_MARKER,
    RUNS_FOLDER,
    STARTED_SUFFIX,
)
from . import frames
from .errors import LoaderMismatch

DATA_DIR = "/mnt/data"
RESULT_WAIT = 15.0  # seconds to wait for a result record's file to show in a lagging listing
PRIVATE = ".cellbox"  # cellbox's own files inside the data folder: runtime, inputs, run records
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOG_LIMIT = MAX_LOGGED_RESULT  # characters of the result record the loader may print into the logs
# Reasoning asked for where the backend takes `reasoning` (one that refuses it, or this value, gets the request
# again without it, and so does every later request on that model): running one given line needs little. `low`,
# the lowest effort every reasoning model takes with code_interpreter: gpt-5's `minimal` is refused with hosted
# tools, and later models have no `minimal` (gpt-5.1's lowest is `none`, which gpt-5 and the o-series refuse).
REASONING_EFFORT = "low"
# The reply's bound. The loader call is about 80 tokens and the reply one word, but a reasoning model's reasoning
# counts too: tens of tokens at minimal effort, rarely a thousand at a model's default for an instruction this
# plain. An effort the user set higher gets room to match. A reply cut by the bound before the run started is asked
# again without it (running.py).
MAX_OUTPUT_TOKENS = 4096
MAX_OUTPUT_TOKENS_HIGH_EFFORT = 32768  # for `high`, `xhigh` and `max`


START_CLEAN = (
    "To start clean: `%container new --fresh` (or `Sandbox.revive()`, which makes a new container and pushes your "
    "data again), or delete the container."
)


@functools.lru_cache(maxsize=1)
def runtime_file() -> tuple[str, bytes, str]:
    """The runtime as uploaded: its name under the data folder, its bytes and the fingerprint of the runtime's
    files (this one and its `runtime_siblings`).

    Named by content: the kernel keeps a loaded runtime by path, so a new version is a new path."""
    source = container_runtime_source()
    fingerprint = frames.file_fingerprint_bytes(b"\0".join([source, *map(sibling_source, SIBLINGS)]))
    return f"{PRIVATE}/cellbox_runtime_{fingerprint[:12]}.py", source, fingerprint


def runtime_siblings() -> list[tuple[str, bytes]]:
    """The runtime's modules as uploaded beside it, each named like it (the runtime finds them so): name, bytes."""
    name, _, _ = runtime_file()
    return [(name.replace("cellbox_runtime_", f"cellbox_{module}_"), sibling_source(module)) for module in SIBLINGS]


@dataclasses.dataclass(frozen=True)
class Request:
    """One run as the runtime reads it: the code, the inputs to load first, the `-o` variables to export."""

    run_id: str
    code: str
    inputs: tuple[dict[str, Any], ...] = ()
    variables: tuple[str, ...] = ()
    data_dir: str = DATA_DIR
    place: tuple[dict[str, str], ...] = ()  # {"from": where an upload was stored, "to": where it belongs}
    restore: tuple[dict[str, Any], ...] = ()  # every pushed value: loaded again if the kernel restarted
    log_limit: int = LOG_LIMIT  # the record is printed into the logs up to this many characters
    execution_count: int | None = None  # the notebook cell's number, In[N]: tracebacks name the cell by it

    @classmethod
    def new(
        cls,
        code: str,
        *,
        inputs: Iterable[dict[str, Any]] = (),
        variables: Sequence[str] = (),
        data_dir: str = DATA_DIR,
        place: Iterable[dict[str, str]] = (),
        restore: Iterable[dict[str, Any]] = (),
        log_limit: int = LOG_LIMIT,
        execution_count: int | None = None,
    ) -> Request:
        for name in variables:
            if not VARIABLE_NAME.match(name):
                raise CellboxError(f"-o {name!r} is not a valid Python variable name")
        run_id = uuid.uuid4().hex[:12]
        return cls(
            run_id, code, tuple(inputs), tuple(variables), data_dir, tuple(place), tuple(restore), log_limit,
            execution_count,
        )  # fmt: skip

    @property
    def filename(self) -> str:
        """Where the request is uploaded, relative to the data folder."""
        return f"{PRIVATE}/{RUNS_FOLDER}/{self.run_id}{REQUEST_SUFFIX}"

    @property
    def result_path(self) -> str:
        """Where the runtime writes the record; named for the run, so a citation's file name can tell it."""
        return f"{self.data_dir}/{PRIVATE}/{RUNS_FOLDER}/result-{self.run_id}.json"

    @property
    def private_dir(self) -> str:
        return f"{self.data_dir}/{PRIVATE}"

    @property
    def out_dir(self) -> str:
        """Where the runtime writes this run's values and figures (and where the record may say they are)."""
        return f"{self.private_dir}/{RUNS_FOLDER}/{self.run_id}{OUT_SUFFIX}"

    @property
    def pushed(self) -> set[str]:
        """The names of every value pushed to the container: what a restarted kernel may load again."""
        return {spec["name"] for spec in (*self.restore, *self.inputs) if "name" in spec}

    def body(self) -> bytes:
        run = f"{self.data_dir}/{PRIVATE}/{RUNS_FOLDER}/{self.run_id}"  # the run's files: named for it, side by side
        request = {
            "run_id": self.run_id,
            "code": self.code,
            "result_path": self.result_path,
            "out_dir": self.out_dir,
            "started": f"{run}{STARTED_SUFFIX}",
            "private_dir": self.private_dir,
            "watch": self.data_dir,
            "place": list(self.place),
            "inputs": list(self.inputs),
            "outputs": list(self.variables),
            "restore": list(self.restore),
            "log_limit": self.log_limit,
        }
        if self.execution_count is not None:
            request["execution_count"] = self.execution_count
        return json.dumps(request).encode()


class LiveOutput:
    """The run's events as they arrive in its live file (JSON lines, read in pieces), handed to `on_event` once
    each; `finish` hands over the rest from the result record, so every event is delivered once, in order. The
    last value (`execute_result`) comes from the record only: events after it wait for `finish`.

    What arrives live is bounded as the record is: a line is kept while it arrives only up to `LINE_LIMIT` bytes (a
    cell printing a line that never ends must not grow the notebook's memory), and at most `EVENT_LIMIT` events and
    `BYTE_LIMIT` bytes are delivered live (a container writing displays without end must not flood the notebook or
    its saved file). Past a bound live output stops with one note saying so (`held`: the file is not even read
    then), and what follows comes from the record, whose own bounds apply, as it does after the last value."""

    LINE_LIMIT = 1 << 20
    EVENT_LIMIT = record_bounds.MAX_EVENTS
    BYTE_LIMIT = record_bounds.MAX_RECORD_BYTES

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        # What the container wrote is checked and its displays cleaned before anyone sees it (the runner sets it
        # to the sandbox's display policy); None from it leaves the event out.
        self.clean: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda event: event
        self.offset = 0  # bytes of the live file read so far
        self.delivered = 0  # events handed over so far
        self._partial = b""
        self._held = False  # nothing more is delivered live: the rest comes from the record

    @property
    def held(self) -> bool:
        """Nothing more is delivered live: reading the live file further would be wasted."""
        return self._held

    def feed(self, data: bytes) -> None:
        self.offset += len(data)
        if self._held:
            return  # nothing read now would be delivered: nothing is kept
        if self.offset > self.BYTE_LIMIT:
            return self._stop(f"more than {text.size(self.BYTE_LIMIT)} of output")
        *lines, partial = (self._partial + data).split(b"\n")
        self._partial = b""
        for line in lines:
            if len(line) > self.LINE_LIMIT:
                return self._stop(f"a line of output longer than {self.LINE_LIMIT >> 20} MiB")
            if self.delivered >= self.EVENT_LIMIT:
                return self._stop(f"more than {self.EVENT_LIMIT:,} outputs")
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not one of the runtime's lines (an older runtime): the record has it all
            if not isinstance(event, dict) or "type" not in event:
                continue
            if event["type"] == "execute_result":  # shown from the record: what follows waits for it
                self._held = True
                return
            self.delivered += 1
            cleaned = self.clean(event)
            if cleaned is not None:
                self.on_event(cleaned)
        if len(partial) > self.LINE_LIMIT:
            return self._stop(f"a line of output longer than {self.LINE_LIMIT >> 20} MiB")
        self._partial = partial

    def _stop(self, what: str) -> None:
        # Skipping what is too much and going on would deliver later events before it: the record keeps their order.
        self._held = True
        self._partial = b""
        self.on_event(
            {
                "type": "stream",
                "name": "stderr",
                "text": f"cellbox: the cell wrote {what}; live output stops here, and the rest is shown (within "
                "the result's bounds) when the cell ends\n",
            }
        )

    def finish(self, events: Sequence[dict[str, Any]]) -> None:
        for event in events[self.delivered :]:
            self.delivered += 1
            self.on_event(event)


def loader_line(runtime_path: str, request_path: str) -> str:
    """The one line the model must run. Deterministic, so the code it reports running can be checked exactly.

    The runtime keeps itself loaded in the kernel (`sys.cellbox_runtimes`, keyed by its path, which names its
    content), so only the first run of a session pays for compiling it."""
    return (
        f"(getattr(__import__('sys'), 'cellbox_runtimes', {{}}).get({runtime_path!r}) "
        f"or __import__('runpy').run_path({runtime_path!r}))['run']({request_path!r})"
    )


INSTRUCTIONS = (
    "You are a code runner. Call the python tool (code_interpreter) exactly once, with exactly the code in the "
    "user's message, unchanged. Do not run any other code. Do not run it again, even if it fails or prints an "
    "error: the error is the expected result. Then reply with the single word done."
)


def run_prompt(loader: str) -> str:
    return (
        "Call the python tool exactly once with exactly the code below, unchanged, then reply with the single word "
        f"done.\n\n```python\n{loader}\n```\n"
    )


def response_options(
    *,
    reasoning_effort: str | None = None,
    background: bool = True,
    bounded: bool = True,
    store: bool | None = None,
) -> dict[str, Any]:
    """The bounds of the request that runs a cell: one call of the code_interpreter tool and nothing else, a
    short reply (`max_output_tokens`, unless not `bounded`), reasoning at `reasoning_effort` (REASONING_EFFORT
    unless given).

    Each is optional to the backend (one that refuses it gets the request again without it). A background run
    must be stored for polling (`store: true`); it is deleted once read. Otherwise nothing is stored, unless
    `store` says so (a response a later one chains from must be)."""
    effort = reasoning_effort or REASONING_EFFORT
    options: dict[str, Any] = {
        "instructions": INSTRUCTIONS,
        "tool_choice": {"type": "code_interpreter"},
        "max_tool_calls": 1,
        "parallel_tool_calls": False,
        "store": background if store is None else store,
        "reasoning_effort": effort,
        "optional": (
            "tool_choice",
            "max_tool_calls",
            "parallel_tool_calls",
            "store",
            "background",
            "reasoning",
            "max_output_tokens",
        ),
    }
    if background:
        options["background"] = True
    if bounded:
        options["extra_body"] = {"max_output_tokens": output_bound(effort)}
    return options


def output_bound(effort: str | None) -> int:
    """`max_output_tokens` for a reply reasoning at this effort."""
    return MAX_OUTPUT_TOKENS_HIGH_EFFORT if effort in ("high", "xhigh", "max") else MAX_OUTPUT_TOKENS


def same_code(code: str | None, loader: str) -> bool:
    """Whether `code` is the loader: the same text, or the same syntax tree (quotes, spacing and line breaks a
    model may change); anything that parses to different code is not."""
    if not code:
        return False
    if code.strip() == loader:
        return True
    try:
        return ast.dump(ast.parse(code.strip())) == ast.dump(ast.parse(loader))
    except (SyntaxError, ValueError):
        return False


@dataclasses.dataclass
class Reading:
    """What one response says about the run."""

    record: dict[str, Any] | None  # the result record, when a call's logs carry it
    started: bool  # the run started (a completed loader call, or the runtime refusing a second start)
    foreign: list[str]  # code the model ran that is not the loader
    problems: list[str]  # the response's and the calls' statuses and errors, in words
    died: str | None = None  # the logs of a loader call that failed: the process running it died
    incomplete: str | None = None  # why the response ended incomplete (`max_output_tokens`, ...), if it did

    @property
    def retry(self) -> bool:
        """Nothing ran: asking again is safe."""
        return self.record is None and not self.started and not self.foreign

    @property
    def cut_short(self) -> bool:
        """The reply reached `max_output_tokens` before the run started: asked again without the bound, it may."""
        return self.retry and self.incomplete == "max_output_tokens"


def read_calls(calls: Sequence[CodeInterpreterCall], loader: str) -> Reading:
    """Sort the calls a model reports into the run (calls of the loader) and anything else it ran."""
    record: dict[str, Any] | None = None
    started = False
    foreign: list[str] = []
    problems: list[str] = []
    died: str | None = None
    for call in calls:
        if not same_code(call.code, loader):
            code = (call.code or "").strip()
            if code and not (call.status == "incomplete" and loader.startswith(code)):
                foreign.append(call.code or "")  # a call cut while it wrote the loader never ran: not foreign
            elif call.status not in (None, "completed"):
                problems.append(f"the model's call ended {call.status} before running any code")
            continue
        logs = call.logs
        found = result_from_logs(logs)
        if found is not None and record is None:
            record = found
        if found is not None or REFUSED_MARKER in logs or call.status in ("completed", "failed"):
            started = True  # a failed call of the loader ran it: the process died under it
        if call.status == "failed" and found is None:
            died = logs
        if call.status not in (None, "completed"):
            problems.append(f"the model's call ended {call.status}" + (f": {logs[-300:].strip()}" if logs else ""))
    return Reading(record, started, foreign, problems, died)


def runtime_missing(response: Response, runtime_path: str) -> bool:
    """The loader found no runtime at its path (Python's own words for it, in the call's logs)."""
    said = f"No such file or directory: {runtime_path!r}"
    return any(said in (call.logs or "") for call in response.code_interpreter_calls)


def runtime_unreachable(runtime_path: str) -> str:
    return (
        f"the container's Python can't open cellbox's runtime at {runtime_path}, uploaded to it twice: the files "
        f"the service says are in {DATA_DIR} are not there for the code. A local server started with "
        "--unsafe-no-isolation runs code without that folder, so cells need it started without that option "
        "(it needs bubblewrap)"
    )


def read_response(response: Response, loader: str) -> Reading:
    """`read_calls`, plus the response's own status and error in words."""
    reading = read_calls(response.code_interpreter_calls, loader)
    status = response.status
    if status == "failed":
        reading.problems.insert(0, f"the response failed: {describe_error(response.error)}")
    elif status == "incomplete":
        details = response.to_dict().get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        reading.incomplete = str(reason or "")
        reading.problems.insert(0, f"the response ended incomplete: {reason or 'no reason given'}")
    elif status == "cancelled":
        reading.problems.insert(0, "the response was cancelled")
    elif status not in (None, "completed"):
        reading.problems.insert(0, f"the response ended with status {status!r}")
    if not response.code_interpreter_calls:
        said = " ".join(response.output_text.split())[:300]
        reading.problems.append("the model replied without calling the python tool" + (f": {said!r}" if said else ""))
    return reading


def describe_error(error: Any) -> str:
    """A response's `error` ({code, message}) in words."""
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return ": ".join(str(part) for part in (code, message) if part) or "no detail given"
    return str(error) if error else "no detail given"


def deviation(foreign: Sequence[str], model: str, started: bool) -> LoaderMismatch:
    """The error for a model that ran code of its own: what it ran, and that the container's state is uncertain."""
    ran = "\n---\n".join(foreign)
    cell = "Your cell ran once, and then the model" if started else "The model"
    return LoaderMismatch(
        f"{cell} ran code other than cellbox's loader, in your container:\n{ran}\n"
        "That code has run (and its response was billed); nothing from the response is used, and the container's "
        "state is uncertain: that code may have changed "
        f"variables or files. {START_CLEAN} Check that CELLBOX_MODEL ({model}) supports the code_interpreter tool "
        "and follows instructions."
    )


def cited_file(response: Response, path: str) -> str | None:
    """The id of the file at `path` when the response cites it by name (a service may name cited files its own
    way instead: then None, and the file is looked for otherwise)."""
    name = path.rsplit("/", 1)[-1]
    found = [c.file_id for c in response.container_file_citations if c.filename == name and c.file_id]
    return found[-1] if found else None


def result_from_logs(logs: str) -> dict[str, Any] | None:
    """The result record the runtime printed, or None when it was too big to print (then it is only a file).
    What the logs carry is the container's word: parsed within the boundary's bounds (`RecordRefused` past them)."""
    for line in logs.splitlines():
        if line.startswith(RESULT_MARKER):
            return record_bounds.parse(line[len(RESULT_MARKER) :])
    return None
