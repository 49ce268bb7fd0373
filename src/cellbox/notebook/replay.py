"""How a remote cell's output reaches the notebook: `%%container` feeds `Replay` the run's events (through
`LiveOutput`) as they arrive, and it shows them as the cell would have shown them locally. `warn` is the one-line
notice on stderr that both this and the magics give when something the user must know happened.

A `Replay` is made as the cell starts and told when it ends (`done`): in between, its `operation` is the cell's
(`cellbox.session.progress`), handed to the run, so its pushes, its run and the reading of its results are one
line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from IPython.display import clear_output, publish_display_data

from ..session import progress
from ..session.results import RemoteValue, Run
from ..session.sandbox import Sandbox

__all__ = ["Replay", "warn"]


class Replay:
    """A run's events shown as the cell would show them locally: streams as streams, displays with their full
    mimebundles, the last value through the shell's displayhook (so `Out[n]` and `_` are set) with the
    container's own formatting. While the cell runs its progress is one line: its phases when it moves a lot of
    data, else, while nothing is printed, "running in NAME · 12 s"."""

    QUIET = 1.0  # seconds without output before the running line shows

    def __init__(self, shell: Any, sandbox: Sandbox) -> None:
        self.shell = shell
        self.sandbox = sandbox
        self.run: Run | None = None
        self._last_output = time.monotonic()
        self.operation = progress.Operation(sandbox.progress, f"cell in {self._name}")

    @property
    def _name(self) -> str:
        return self.sandbox.name or self.sandbox.id

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind != "execute_result":
            self._last_output = time.monotonic()
        if kind == "stream":
            stream = sys.stderr if event.get("name") == "stderr" else sys.stdout
            stream.write(event.get("text", ""))
            stream.flush()
        elif kind == "display_data":
            publish_display_data(event.get("data") or {}, event.get("metadata") or {}, **_transient(event))
        elif kind == "clear_output":
            clear_output(wait=bool(event.get("wait")))
        elif kind == "state_lost":
            restored = event.get("restored") or []
            again = f"loaded again: {', '.join(restored)}" if restored else "nothing pushed to load again"
            warn(
                f"the container's Python process was restarted before this cell: variables and imports of "
                f"earlier cells are gone ({again})"
            )
        elif kind == "execute_result" and self.run is not None:
            self._execute_result(self.run)

    def _execute_result(self, run: Run) -> None:
        bundle = run.value_bundle
        if bundle is None:
            return
        value = run.value if run.value is not None else RemoteValue({"repr": bundle.data.get("text/plain", "")})
        hook = self.shell.displayhook
        hook.compute_format_data = lambda result: (bundle.data, bundle.metadata)  # the container's formatting
        try:
            hook(value)
        finally:
            del hook.compute_format_data

    def waiting(self, elapsed: float) -> None:
        """The run has taken `elapsed` seconds so far (called at each look at it)."""
        operation = self.operation
        current = operation.current
        if current is None or current.name != "running":
            operation.phase("running", unit="")
        if operation.big:
            operation.tick()
        elif time.monotonic() - self._last_output >= self.QUIET:
            operation.indicate(f"running in {self._name} · {elapsed:.0f} s")

    def done(self) -> None:
        """The cell ended: its progress line says "done" (or where it stopped), and a line that only said it was
        running is left empty, so the saved notebook keeps nothing of it."""
        # Called from the magic's `finally`: an exception on its way through is what stopped the cell.
        self.operation.close(sys.exc_info()[1])


def _transient(event: dict[str, Any]) -> dict[str, Any]:
    transient = event.get("transient")
    if not transient:
        return {}
    return {"transient": transient, "update": bool(event.get("update"))}


def warn(message: str) -> None:
    # Something the user must know (state was lost), on stderr, one line.
    print(f"cellbox: {message}", file=sys.stderr)
