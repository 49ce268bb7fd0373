"""The run protocol: how a cell's code reaches cellbox's runtime in the container, and how its result comes back.

Code travels as a file (DESIGN.md). A `Request` is uploaded beside the runtime; the model is asked (`run_prompt`)
to run one fixed `loader_line`; the code it reports running is checked against that line (`checked_logs`), and
anything else is refused; the runtime's result record is read from the call's logs (`result_from_logs`, or from
its file when too big to log) and parsed into a `Result`, which makes the `Run` once its files are fetched.

Nothing here does I/O: `Sandbox` moves the bytes, and a test can drive the protocol in-process against the runtime.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from . import frames
from .api import CellboxError, CodeInterpreterCall
from .results import Artifact, RemoteError, RemoteValue, Run
from .runtime import container_runtime_source
from .runtime.container import RESULT_MARKER

DATA_DIR = "/mnt/data"
PRIVATE = ".cellbox"  # cellbox's own files inside the data folder: runtime, inputs, run records
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FRAME_KINDS = ("dataframe", "series")


class LoaderMismatch(CellboxError):
    """The model ran something other than cellbox's loader line; nothing it did is trusted."""


@functools.lru_cache(maxsize=1)
def runtime_file() -> tuple[str, bytes, str]:
    """The runtime as uploaded: its name under the data folder, its bytes and their fingerprint.

    Named by content: the kernel keeps a loaded runtime by path, so a new version is a new path."""
    source = container_runtime_source()
    fingerprint = frames.file_fingerprint_bytes(source)
    return f"{PRIVATE}/cellbox_runtime_{fingerprint[:12]}.py", source, fingerprint


@dataclasses.dataclass(frozen=True)
class Request:
    """One run as the runtime reads it: the code, the inputs to load first, the `-o` variables to export."""

    run_id: str
    code: str
    inputs: tuple[dict[str, Any], ...] = ()
    variables: tuple[str, ...] = ()
    data_dir: str = DATA_DIR

    @classmethod
    def new(
        cls,
        code: str,
        *,
        inputs: Iterable[dict[str, Any]] = (),
        variables: Sequence[str] = (),
        data_dir: str = DATA_DIR,
    ) -> Request:
        for name in variables:
            if not VARIABLE_NAME.match(name):
                raise CellboxError(f"-o {name!r} is not a valid Python variable name")
        return cls(uuid.uuid4().hex[:12], code, tuple(inputs), tuple(variables), data_dir)

    @property
    def filename(self) -> str:
        """Where the request is uploaded, relative to the data folder."""
        return f"{PRIVATE}/runs/{self.run_id}/request.json"

    @property
    def result_path(self) -> str:
        return f"{self.data_dir}/{PRIVATE}/runs/{self.run_id}/result.json"

    def body(self) -> bytes:
        run_dir = f"{self.data_dir}/{PRIVATE}/runs/{self.run_id}"
        request = {
            "run_id": self.run_id,
            "code": self.code,
            "result_path": self.result_path,
            "out_dir": f"{run_dir}/out",
            "private_dir": f"{self.data_dir}/{PRIVATE}",
            "watch": self.data_dir,
            "inputs": list(self.inputs),
            "outputs": list(self.variables),
        }
        return json.dumps(request).encode()


def loader_line(runtime_path: str, request_path: str) -> str:
    """The one line the model must run. Deterministic, so the code it reports running can be checked exactly.

    The runtime keeps itself loaded in the kernel (`sys.cellbox_runtimes`, keyed by its path, which names its
    content), so only the first run of a session pays for compiling it."""
    return (
        f"(getattr(__import__('sys'), 'cellbox_runtimes', {{}}).get({runtime_path!r}) "
        f"or __import__('runpy').run_path({runtime_path!r}))['run']({request_path!r})"
    )


def run_prompt(loader: str) -> str:
    return (
        "Call the python tool exactly once with exactly the code below, unchanged, then reply with the single word "
        f"done.\n\n```python\n{loader}\n```\n"
    )


def checked_logs(calls: Sequence[CodeInterpreterCall], loader: str, model: str) -> str:
    """The logs of the one call that ran exactly the loader; any other code, or more calls, is refused."""
    if len(calls) != 1 or (calls[0].code or "").strip() != loader:
        ran = "\n---\n".join(c.code or "" for c in calls) or "(no code)"
        raise LoaderMismatch(
            f"the model did not run cellbox's loader exactly; it ran:\n{ran}\nNothing from this run is used. "
            f"Check CELLBOX_MODEL ({model}) supports the code_interpreter tool and follows instructions."
        )
    return calls[0].logs


def result_from_logs(logs: str) -> dict[str, Any] | None:
    """The result record the runtime printed, or None when it was too big to print (then it is only a file)."""
    for line in logs.splitlines():
        if line.startswith(RESULT_MARKER):
            record: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return record
    return None


@dataclasses.dataclass
class Result:
    """The runtime's result record, read: what the run printed and raised, and the files holding the rest."""

    run_id: str
    stdout: str
    stderr: str
    error: RemoteError | None
    value: dict[str, Any]
    variables: dict[str, dict[str, Any]]  # name -> the runtime's spec of its exported file
    figures: list[str]  # paths of PNGs: the last value when it is a figure, then the figures left open
    changed: list[str]  # paths of the files in the data folder the run created or changed
    duration: float | None

    @classmethod
    def parse(cls, record: dict[str, Any]) -> Result:
        run_id = record["run_id"]
        error = record.get("error")
        value = record.get("value") or {}
        image = [value["path"]] if value.get("kind") == "image" and value.get("path") else []
        return cls(
            run_id=run_id,
            stdout=record.get("stdout", ""),
            stderr=record.get("stderr", ""),
            error=RemoteError(error["ename"], error["evalue"], error["traceback"], run_id=run_id) if error else None,
            value=value,
            variables=dict(record.get("outputs") or {}),
            figures=image + list(record.get("figures") or []),
            changed=list(record.get("changed") or []),
            duration=record.get("duration"),
        )

    @property
    def frame_specs(self) -> list[dict[str, Any]]:
        """The files to read as values: the `-o` variables in order, then the last value when it is a frame."""
        specs = list(self.variables.values())
        if self.value.get("kind") in FRAME_KINDS:
            specs.append(self.value)
        return specs

    def paths(self) -> list[str]:
        """Every file of the container this result refers to."""
        return [spec["path"] for spec in self.frame_specs] + self.figures + self.changed

    def to_run(self, values: Sequence[Any], figures: Sequence[Artifact], artifacts: Sequence[Artifact]) -> Run:
        """The `Run`, given the values read from `frame_specs` (in order) and the artifacts for `figures` and
        `changed`."""
        run = Run(
            id=self.run_id,
            stdout=self.stdout,
            stderr=self.stderr,
            error=self.error,
            variables=dict(zip(self.variables, values[: len(self.variables)], strict=True)),
            figures=list(figures),
            artifacts=list(artifacts),
            duration=self.duration,
        )
        kind = self.value.get("kind")
        if kind in FRAME_KINDS:
            run.value = values[len(self.variables)]
            if self.value.get("truncated_from"):
                run.stderr += (
                    f"cellbox: showing the first {len(run.value):,} of {self.value['truncated_from']:,} rows; "
                    "bring the whole frame back with -o NAME (outputs=[...]).\n"
                )
        elif kind == "json":
            run.value = self.value.get("json")
        elif kind == "repr":
            run.value = RemoteValue(self.value)
        return run
