"""What stopping a run left of its container, as a backend says it: the local server appends one of these lines to
the logs of the stopped code_interpreter_call in its answer to the cancel, and the client reads them back. A
backend that says neither (the clouds) leaves the client saying only what it knows."""

from __future__ import annotations

from typing import Literal

__all__ = ["KEPT", "RESTARTED", "left"]

KEPT = "[Stopped at the interrupt: the container's Python process keeps its variables and imports.]"
RESTARTED = (
    "[The code did not stop at the interrupt (it caught KeyboardInterrupt, or was stuck outside Python), so the "
    "container's Python process was restarted: variables and imports are gone; files in /mnt/data are kept.]"
)


def left(logs: str) -> Literal["kept", "restarted"] | None:
    """What the logs of a stopped call say the stop left: the process restarted, its state kept, or nothing said.
    Only the last line counts: the code's own output comes before it."""
    lines = logs.strip().splitlines()
    last = lines[-1].strip() if lines else ""
    return "restarted" if last == RESTARTED else "kept" if last == KEPT else None
