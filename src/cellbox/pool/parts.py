"""The parts of a pool's run: how `split` cuts the data (`make_parts`), what each part gave back (`Part`), and
the whole run (`PoolRuns`), which shows itself as one grid.

`split` maps variable names to what each part gets under that name:

- a DataFrame or Series: cut row-wise into contiguous blocks, one per sandbox (sizes differ by at most one row,
  the original index kept, so the parts' results concatenated in part order line up with the whole frame);
- a list: the user's own parts, one per element (more parts than sandboxes queue up, each sandbox running its
  share one after another);
- a `(column, frame)` pair: whole groups of the column in each part: one part per group when the groups are no
  more than the sandboxes, else the groups packed into one part per sandbox, balanced by rows (largest first).

Every variable must give the same number of parts; part i of each goes to the same sandbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..api import CellboxError
from ..session.errors import RemoteError
from ..session.protocol import VARIABLE_NAME
from ..session.results import Run

__all__ = ["Part", "PoolRuns", "concat", "make_parts", "rows_of"]

STATES = ("waiting", "running", "done", "failed", "stopped")


def rows_of(value: Any) -> int | None:
    """Rows of a frame or series, else None."""
    import pandas as pd

    return len(value) if isinstance(value, (pd.DataFrame, pd.Series)) else None


def make_parts(split: Mapping[str, Any] | None, sandboxes: int) -> list[dict[str, Any]]:
    """The values of each part, by variable name (see the module's docstring)."""
    if not split:
        return [{} for _ in range(sandboxes)]
    cut: dict[str, list[Any]] = {}
    for name, spec in split.items():
        if not VARIABLE_NAME.match(name):
            raise CellboxError(f"split: {name!r} is not a valid Python variable name")
        cut[name] = _cut(name, spec, sandboxes)
    counts = {name: len(parts) for name, parts in cut.items()}
    if len(set(counts.values())) > 1:
        said = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise CellboxError(f"split: every variable must give the same number of parts; got {said}")
    n = next(iter(counts.values()))
    return [{name: parts[i] for name, parts in cut.items()} for i in range(n)]


def _cut(name: str, spec: Any, sandboxes: int) -> list[Any]:
    import pandas as pd

    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        column, frame = spec
        if not isinstance(frame, pd.DataFrame) or column not in frame.columns:
            raise CellboxError(f"split {name!r} by column {column!r}: give (column, DataFrame) with that column")
        return by_column(frame, column, sandboxes)
    if isinstance(spec, (pd.DataFrame, pd.Series)):
        return by_rows(spec, sandboxes)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise CellboxError(f"split {name!r}: the list of parts is empty")
        return list(spec)
    raise CellboxError(
        f"split {name!r}: give a DataFrame or Series (cut row-wise), a list of parts, or (column, DataFrame); "
        f"got {type(spec).__name__}"
    )


def by_rows(frame: Any, sandboxes: int) -> list[Any]:
    """Contiguous blocks of rows, one per sandbox (fewer when there are fewer rows), sizes within one row."""
    n = max(1, min(sandboxes, len(frame)))
    bounds = [len(frame) * i // n for i in range(n + 1)]
    return [frame.iloc[bounds[i] : bounds[i + 1]] for i in range(n)]


def by_column(frame: Any, column: str, sandboxes: int) -> list[Any]:
    """Whole groups of `column` per part: one group each when they fit, else packed into `sandboxes` parts."""
    import numpy as np

    groups = list(frame.groupby(column, sort=True, dropna=False, observed=True).indices.values())
    if not groups:
        return [frame]
    if len(groups) <= sandboxes:
        return [frame.iloc[rows] for rows in groups]
    bins: list[list[np.ndarray]] = [[] for _ in range(sandboxes)]
    sizes = [0] * sandboxes
    for rows in sorted(groups, key=len, reverse=True):  # largest first, each into the emptiest part
        smallest = sizes.index(min(sizes))
        bins[smallest].append(rows)
        sizes[smallest] += len(rows)
    return [frame.iloc[np.sort(np.concatenate(b))] for b in bins if b]


@dataclasses.dataclass
class Part:
    """One part of a pool's run: its data, the sandbox it ran in, its state and time, and what it gave back.

    `run` is the sandbox's `Run` once the code ran (a remote exception is `run.error`); `error` is why the part
    failed or stopped, remote or not (the container gone twice, a time limit, an interrupt)."""

    index: int
    values: dict[str, Any]  # the split values this part gets
    member: int = 0  # which of the pool's sandboxes runs it
    sandbox: str = ""
    state: str = "waiting"
    seconds: float | None = None
    started: float | None = None  # monotonic time the part started
    run: Run | None = None
    error: BaseException | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    pulled: list[Path] = dataclasses.field(default_factory=list)  # files pulled after it ran, in its own folder

    @property
    def ok(self) -> bool:
        return self.state == "done"

    @property
    def rows(self) -> int | None:
        """Rows of this part's split frames."""
        counts = [n for n in map(rows_of, self.values.values()) if n is not None]
        return sum(counts) if counts else None

    @property
    def rows_out(self) -> int | None:
        """Rows of the frames it gave back (`-o` variables and a frame as the last value)."""
        if self.run is None:
            return None
        values = list(self.run.variables.values())
        if not any(self.run.value is value for value in values):  # the last value is an -o variable: counted once
            values.append(self.run.value)
        counts = [n for n in map(rows_of, values) if n is not None]
        return sum(counts) if counts else None

    @property
    def variables(self) -> dict[str, Any]:
        return self.run.variables if self.run is not None else {}

    @property
    def value(self) -> Any:
        return self.run.value if self.run is not None else None

    @property
    def stdout(self) -> str:
        return self.run.stdout if self.run is not None else ""

    @property
    def stderr(self) -> str:
        return self.run.stderr if self.run is not None else ""

    @property
    def traceback(self) -> str:
        """The error as text: the remote traceback, or what stopped the part."""
        if isinstance(self.error, RemoteError):
            return self.error.traceback or str(self.error)
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return ""


class PoolRuns(Sequence[Part]):
    """What `Pool.map` and `Pool.run` give back: the parts in order (`runs[i].variables`, `.stdout`, `.error`),
    shown as one grid of parts with state, time and rows; failing parts with their tracebacks below it."""

    def __init__(self, parts: list[Part], code: str, options: dict[str, Any], sandboxes: int) -> None:
        self.parts = parts
        self.code = code
        self.options = options  # what each part's run was given: outputs, files, timeout, unsplit inputs
        self.sandboxes = sandboxes

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, index: Any) -> Any:
        return self.parts[index]

    def __iter__(self) -> Iterator[Part]:
        return iter(self.parts)

    @property
    def ok(self) -> bool:
        return all(part.ok for part in self.parts)

    @property
    def failed(self) -> list[Part]:
        return [part for part in self.parts if part.state in ("failed", "stopped")]

    @property
    def seconds(self) -> float:
        return max((part.seconds or 0.0 for part in self.parts), default=0.0)

    def raise_for_error(self) -> PoolRuns:
        """Raise the first failed part's error (its remote exception as is), saying which parts failed."""
        failed = self.failed
        if failed:
            error = failed[0].error
            if isinstance(error, BaseException) and len(failed) == 1:
                raise error
            numbers = ", ".join(str(p.index) for p in failed)
            raise PartsFailed(
                f"{len(failed)} of {len(self.parts)} parts failed (parts {numbers}); "
                "pool.retry_failed() runs them again",
                failed,
            ) from error
        return self

    def _repr_html_(self) -> str:
        from .view import grid_html

        return grid_html(self)

    def __repr__(self) -> str:
        from .view import grid_text

        return grid_text(self)


class PartsFailed(CellboxError):
    """Some parts of a pool's run failed; `parts` are those parts (each with its traceback)."""

    def __init__(self, message: str, parts: list[Part], *, shown: bool = False) -> None:
        super().__init__(message)
        self.parts = parts
        self.shown = shown  # the tracebacks are on screen already (the pool's grid): only the message is added

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[0;31mPartsFailed\x1b[0m: {self}"]
        if self.shown:
            return lines
        for part in self.parts:
            lines.append(f"--- part {part.index} ({part.sandbox}) ---")
            if isinstance(part.error, RemoteError) and part.error.lines:
                lines.extend(part.error._render_traceback_())
            else:
                lines.extend(part.traceback.rstrip("\n").splitlines())
        return lines


def concat(runs: Iterable[Any], name: str, *, skip_failed: bool = False) -> Any:
    """Variable `name` of every part, in part order, as one value: frames and series concatenated (their index
    kept, so row-wise parts line up with the whole frame), lists joined, anything else a list. A failed part is
    an error naming it, unless `skip_failed`."""
    import pandas as pd

    values = []
    for i, run in enumerate(runs):
        if getattr(run, "error", None) is not None or getattr(run, "state", "done") != "done":
            if skip_failed:
                continue
            raise CellboxError(
                f"part {getattr(run, 'index', i)} failed, so {name!r} is incomplete; "
                "pool.retry_failed() runs it again (or concat(..., skip_failed=True))"
            )
        if name not in run.variables:
            raise CellboxError(f"part {getattr(run, 'index', i)} gave back no {name!r}: add it to outputs (-o)")
        values.append(run.variables[name])
    if values and all(isinstance(v, (pd.DataFrame, pd.Series)) for v in values):
        return pd.concat(values)
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    return values
