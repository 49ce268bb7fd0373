"""Plain-text renderings shared by the command line, the notebook views and the sidebar: sizes, memory, time
left, tables.

The sidebar's `jupyter_extension/src/format.ts` renders sizes, memory and time left exactly as this module
does; `tests/format_cases.json` holds the cases both are checked against, so change them together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api import Container

__all__ = ["LIVE", "ago", "countdown", "memory", "seconds_left", "size", "table", "time_left"]

NONE = "-"  # what every formatter shows for a value the server didn't give
TIMES = "\N{MULTIPLICATION SIGN}"  # "by", as pandas writes a frame's size in HTML
# The statuses of a container that is alive (None: the service did not say). Shared with the sidebar, which checks
# the same list (tests/format_cases.json).
LIVE = (None, "running", "active")

_SCALES = (("kB", 1000), ("MB", 1000**2), ("GB", 1000**3))


def size(n: int | None) -> str:
    """`12 B`, `2.5 kB`, `1.2 GB` (SI units, as file browsers show them; one decimal, halves rounded up)."""
    if n is None:
        return NONE
    if n < 1000:
        return f"{n} B"
    for unit, scale in _SCALES:
        # Integer arithmetic, so every language rounds alike: 999_950 bytes is `1.0 MB`, not `1000.0 kB`.
        tenths = (n * 10 + scale // 2) // scale
        if tenths < 10_000 or unit == "GB":
            break
    return f"{tenths // 10}.{tenths % 10} {unit}"


def memory(limit: str | None) -> str:
    """A memory limit as the API spells it (`1g`, `4g`, `16g`, `64g`)."""
    return limit or NONE


def countdown(seconds: int | None) -> str:
    """`19m 59s` for whole seconds left, `now` once none are; `-` when unknown."""
    if seconds is None:
        return NONE
    return "now" if seconds <= 0 else f"{seconds // 60}m {seconds % 60:02d}s"


def seconds_left(box: Container, now: float | None = None) -> int | None:
    """Whole seconds until an idle container expires (0 once past); None when it isn't live or the server
    doesn't say."""
    if box.status not in LIVE or box.expires_at is None:
        return None
    return max(0, int(box.expires_at - (time.time() if now is None else now)))


def time_left(box: Container, now: float | None = None) -> str:
    """Time until an idle container expires, `19m 59s`; `-` when it isn't running or the server doesn't say."""
    return countdown(seconds_left(box, now))


def ago(ts: int | None, now: float | None = None) -> str:
    if ts is None:
        return NONE
    seconds = int((time.time() if now is None else now) - ts)
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= length:
            return f"{seconds // length}{unit} ago"
    return f"{seconds}s ago"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)
