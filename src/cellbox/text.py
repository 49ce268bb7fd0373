"""Plain-text renderings shared by the command line and the notebook views: sizes, time left, tables."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from .api import Container

LIVE = (None, "running", "active")


def size(n: int | None) -> str:
    """`12 B`, `2.5 kB`, `1.2 GB` (SI units, as file browsers show them)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)  # pragma: no cover - the loop always returns


def time_left(box: Container, now: float | None = None) -> str:
    """Time until an idle container expires, `19m 59s`; `-` when it isn't running or the server doesn't say."""
    if box.status not in LIVE or box.expires_at is None:
        return "-"
    left = int(box.expires_at - (time.time() if now is None else now))
    return "now" if left <= 0 else f"{left // 60}m {left % 60:02d}s"


def ago(ts: int | None, now: float | None = None) -> str:
    if ts is None:
        return "-"
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
