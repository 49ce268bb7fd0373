"""The runtime's result record, read: what a run printed and raised, the files holding the rest (its `-o`
variables, its last value when that is a frame, its figures and the files it changed), and the `Run` it makes once
those files are fetched. The record's fields are the runtime's (runtime/container.py); a record is accepted only
through `cellbox.boundary` (it answers this request, has the runtime's shape, names only this run's files) and what
it displays is cleaned by the sandbox's display policy. Nothing here does I/O."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from typing import Any

from ..boundary import DisplayPolicy
from ..boundary import record as boundary
from .errors import RemoteError
from .protocol import Request
from .results import Artifact, Display, RemoteValue, Run

FRAME_KINDS = ("dataframe", "series")


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
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)  # bytes of each changed file, as written
    # changed files saved from a figure the run also displayed (`plt.savefig` then the inline backend): shown once
    shown_figures: list[str] = dataclasses.field(default_factory=list)
    inline: dict[str, bytes] = dataclasses.field(default_factory=dict)  # small output files, by path
    notes: list[str] = dataclasses.field(default_factory=list)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # streams, displays, value, in order
    state_lost: bool = False
    restored: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def accept(cls, record: dict[str, Any], request: Request, policy: DisplayPolicy) -> Result:
        """The record of `request`'s run, checked (`RecordRefused` otherwise), its `-o` values limited to those
        asked for and its displays cleaned by `policy`."""
        run_id = request.run_id
        boundary.check(
            record,
            run_id=run_id,
            data_dir=request.data_dir,
            out_dir=request.out_dir,
            private_dir=request.private_dir,
        )
        notes = [boundary.clean_note(note) for note in (record.get("notes") or [])[: boundary.MAX_NOTES]]
        variables, extra = boundary.asked_variables(record, request.variables)
        if extra:
            shown = ", ".join(repr(name[:40]) for name in extra[:5]) + (" …" if len(extra) > 5 else "")
            notes.append(f"the container's record named variables that were not asked for ({shown}): ignored")
        error = record.get("error")
        value = dict(record.get("value") or {})
        bundle = value.get("bundle")
        if bundle:
            data, metadata = policy.bundle(bundle.get("data"), bundle.get("metadata"))
            value["bundle"] = {"data": data, "metadata": metadata}
        image = [value["path"]] if value.get("kind") == "image" and value.get("path") else []
        events = list(record.get("events") or [])
        if len(events) > boundary.MAX_EVENTS:
            notes.append(f"the run's output had {len(events):,} parts; the first {boundary.MAX_EVENTS:,} are shown")
            del events[boundary.MAX_EVENTS :]
        values = [i for i, event in enumerate(events) if event["type"] == "execute_result"]
        for later in reversed(values[1:]):  # a cell has one last value: more would overwrite the notebook's `_`
            del events[later]
        events = [policy.event(event) for event in events]
        notes.extend(policy.notes())
        stdout, stderr = (_joined(events, n) for n in ("stdout", "stderr"))
        inline = record.get("inline") or {}
        return cls(
            run_id=run_id,
            stdout=stdout,
            stderr=stderr,
            error=RemoteError.of(
                error["ename"],
                error["evalue"],
                error["traceback"],
                run_id=run_id,
                lines=error.get("traceback_lines"),
            )
            if error
            else None,
            value=value,
            variables=variables,
            figures=image + list(record.get("figures") or []),
            changed=list(record.get("changed") or []),
            duration=record.get("duration"),
            sizes=dict(record.get("sizes") or {}),
            shown_figures=[p for p in record.get("shown_figures") or [] if p in (record.get("changed") or [])],
            inline={path: base64.b64decode(data) for path, data in inline.items()},
            notes=notes,
            events=events,
            state_lost=bool(record.get("state_lost")),
            restored=[name for name in record.get("restored") or [] if name in request.pushed],
        )

    @property
    def frame_specs(self) -> list[dict[str, Any]]:
        """The files to read as values: the `-o` variables in order, then the last value when it is a frame."""
        specs = list(self.variables.values())
        if self.value.get("kind") in FRAME_KINDS and self.same_as is None:
            specs.append(self.value)
        return specs

    @property
    def same_as(self) -> str | None:
        """The -o variable the last value is (`-o out` ending in `out`), read once as that variable; None when it is
        none of them (a name the request did not ask for counts as none)."""
        name = self.value.get("same_as")
        return name if isinstance(name, str) and name in self.variables else None

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
            notes=list(self.notes),
            events=list(self.events),
            state_lost=self.state_lost,
            restored=list(self.restored),
        )
        bundle = self.value.get("bundle")
        if bundle:
            run.value_bundle = Display(bundle.get("data") or {}, bundle.get("metadata") or {})
        kind = self.value.get("kind")
        if kind in FRAME_KINDS and self.same_as is not None:
            run.value = run.variables[self.same_as]  # one object, as `_ is out` in a local notebook
        elif kind in FRAME_KINDS:
            run.value = values[len(self.variables)]
            if self.value.get("truncated_from"):
                run.notes.append(
                    f"run.value holds the first {len(run.value):,} of {self.value['truncated_from']:,} rows; "
                    "bring the whole frame back with -o NAME (outputs=[...])"
                )
        elif kind == "json":
            run.value = boundary.json_value(self.value.get("json"))
        elif kind == "repr":
            run.value = RemoteValue(self.value)
        return run


def _joined(events: Sequence[dict[str, Any]], name: str) -> str:
    return "".join(str(e.get("text", "")) for e in events if e.get("type") == "stream" and e.get("name") == name)
