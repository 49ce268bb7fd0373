"""Listings that lag behind the files, as clouds have been seen to (`--listing-lag-ms N`).

A file the code wrote or changed is, for N ms after its run, missing from the container's file list (and a 404
by id); for N ms more it is listed with `bytes: null` and its content answers 404 "File cfile_... not found on
container cntr_..." (openai/openai-python#2466 reports both); after that it is a file like any other. Uploads are
never late: only the scan after a run is. `bytes: null` is not what the SDK's types allow (`bytes: int`), so
those answers fail its strict response validation, as the cloud's would: clients must read listings leniently.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class ListingLag:
    def __init__(self, lag_ms: float, capacity: int = 100_000) -> None:
        self.lag = lag_ms / 1000.0
        self._written: OrderedDict[str, float] = OrderedDict()  # file id -> when its run ended
        self._capacity = capacity

    def wrote(self, rows: list[dict]) -> None:
        if self.lag <= 0:
            return
        now = time.monotonic()
        for row in rows:
            self._written[row["id"]] = now
        self._forget(now)

    def phase(self, file_id: str) -> str | None:
        """`hidden` (not listed yet), `pending` (listed, bytes null, no content yet) or None (caught up)."""
        written = self._written.get(file_id)
        if written is None:
            return None
        age = time.monotonic() - written
        if age < self.lag:
            return "hidden"
        if age < 2 * self.lag:
            return "pending"
        return None

    def shown(self, rows: list[dict]) -> list[dict]:
        """The rows of a listing as it lags: hidden ones left out, pending ones with bytes null."""
        if not self._written:
            return rows
        self._forget(time.monotonic())
        shown = []
        for row in rows:
            phase = self.phase(row["id"])
            if phase != "hidden":
                shown.append({**row, "bytes": None} if phase == "pending" else row)
        return shown

    def _forget(self, now: float) -> None:
        """Drops what has caught up (oldest first), and the oldest beyond capacity."""
        while self._written:
            written = next(iter(self._written.values()))
            if now - written < 2 * self.lag and len(self._written) <= self._capacity:
                break
            self._written.popitem(last=False)
