"""How a remote cell's output reaches the notebook: `%%container` feeds `Replay` the run's events (through
`LiveOutput`) as they arrive, and it shows them as the cell would have shown them locally. `warn` is the one-line
notice on stderr that both this and the magics give when something the user must know happened.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from IPython.display import clear_output, display, publish_display_data

from .results import RemoteValue, Run
from .sandbox import Sandbox

__all__ = ["Replay", "warn"]


class Replay:
    """A run's events shown as the cell would show them locally: streams as streams, displays with their full
    mimebundles, the last value through the shell's displayhook (so `Out[n]` and `_` are set) with the
    container's own formatting; and, while nothing is printed, a "running in NAME · 12 s" line."""

    QUIET = 1.0  # seconds without output before the running line shows

    def __init__(self, shell: Any, sandbox: Sandbox) -> None:
        self.shell = shell
        self.sandbox = sandbox
        self.run: Run | None = None
        self._last_output = time.monotonic()
        self._running: Any = None  # the display handle of the running line

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
        if time.monotonic() - self._last_output < self.QUIET:
            return
        label = f"running in {self.sandbox.name or self.sandbox.id} · {elapsed:.0f} s"
        bundle = {"text/plain": label, "text/html": f"<span style='opacity:.6'>{html.escape(label)}</span>"}
        if self._running is None:
            self._running = display(bundle, raw=True, display_id=True)
        elif self._running is not None:
            self._running.update(bundle, raw=True)

    def done(self) -> None:
        """The running line is left empty: the saved notebook keeps nothing of it."""
        if self._running is not None:
            self._running.update({"text/plain": ""}, raw=True)
            self._running = None


def _transient(event: dict[str, Any]) -> dict[str, Any]:
    transient = event.get("transient")
    if not transient:
        return {}
    return {"transient": transient, "update": bool(event.get("update"))}


def warn(message: str) -> None:
    # Something the user must know (state was lost), on stderr, one line.
    print(f"cellbox: {message}", file=sys.stderr)
