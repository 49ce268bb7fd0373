"""How containers, files, transfers and artifacts look in a notebook.

Each view is a plain object with `_repr_html_` and `__repr__` (no ipywidgets), so it renders in JupyterLab, in a
static notebook export and in a terminal alike, and tests can inspect what it holds (`.rows`, `.items`).
"""

from __future__ import annotations

import base64
import html
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from IPython.display import Image, display

from . import progress, text
from .api import CellboxError, Container, ContainerFile
from .api.config import load_settings
from .frames import TIMES, first_rows_caption
from .results import Artifact, Usage

PREVIEW_ROWS = 20
# What the gallery reads of a file is bounded by these, whatever size the file claims (a sparse file can claim
# gigabytes): it reads at most the first so many bytes.
CSV_PREVIEW_BYTES = 1 << 20  # a CSV preview is made from this prefix (its last, cut line dropped)
PARQUET_PREVIEW_LIMIT = 16_000_000  # Parquet keeps its index at the end: larger files get no preview
INLINE_IMAGE_LIMIT = 10_000_000
# Bytes of downloads one gallery carries inside the notebook itself (base64 links), so notebooks stay small;
# CELLBOX_INLINE_MAX changes it ("2MB", "500kB", "0" for none).
INLINE_MAX = 5_000_000
INLINE_MAX_VARIABLE = "CELLBOX_INLINE_MAX"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|k|m|g)b?\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}  # SI, as sizes are shown (cellbox.text.size)


def inline_max() -> tuple[int, str]:
    """The bytes of downloads a gallery embeds (CELLBOX_INLINE_MAX, else INLINE_MAX), and what to say about a
    setting that isn't a size ("" when there's nothing to say)."""
    try:  # the environment, else config.toml's inline_max
        setting = (load_settings().inline_max or "").strip()
    except CellboxError:  # a broken config is said where the client is made, not by every gallery
        setting = os.environ.get(INLINE_MAX_VARIABLE, "").strip()
    if not setting:
        return INLINE_MAX, ""
    found = _SIZE.match(setting)
    if found is None:
        return INLINE_MAX, f"{INLINE_MAX_VARIABLE}={setting!r} is not a size such as 2MB; using {text.size(INLINE_MAX)}"
    return int(float(found.group(1)) * _SCALE[found.group(2).lower()]), ""


class NoPreview(Exception):
    """Why a file gets no preview (shown in its place)."""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    top = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table class='cellbox-table'>{top}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Table:
    header: tuple[str, ...] = ()
    rows: list[tuple[str, ...]]
    caption = ""

    def _repr_html_(self) -> str:
        return _html_table(self.header, self.rows, self.caption)

    def __repr__(self) -> str:
        table = text.table(self.header, self.rows)
        return f"{self.caption}\n{table}" if self.caption else table


class StatusView(_Table):
    """One container: name, id, status, memory, time to expiry; with `usage`, also what running cells in it has
    cost in model tokens (the sum, or a sentence saying why there is none)."""

    header: tuple[str, ...] = ("name", "id", "status", "memory", "expires in")

    def __init__(self, container: Container, caption: str = "", *, usage: Usage | str | None = None) -> None:
        self.container = container
        self.caption = caption
        self.usage = usage
        row: tuple[str, ...] = (
            container.name or "",
            container.id,
            container.status or "?",
            container.memory_limit or "-",
            text.time_left(container),
        )
        if usage is not None:
            self.header = (*self.header, "model tokens")
            row = (*row, str(usage))
        self.rows = [row]


class ContainerTable(_Table):
    """The containers, with which notebook uses each: `current` is this notebook's, `others` those other running
    notebooks (kernels) use."""

    header = (*StatusView.header, "used by")

    def __init__(self, containers: Sequence[Container], current: str | None = None, others: Sequence[str] = ()) -> None:
        self.containers = list(containers)
        self.current = current
        self.rows = [(*StatusView(c).rows[0], _used_by(c.id, current, others)) for c in self.containers]


def _used_by(container_id: str, current: str | None, others: Sequence[str]) -> str:
    if container_id == current:
        return "this notebook"
    return "another notebook" if container_id in others else ""


class FileTable(_Table):
    header = ("path", "size", "source")

    def __init__(self, files: Sequence[ContainerFile]) -> None:
        self.files = sorted(files, key=lambda f: f.path or "")
        self.rows = [(f.path or f.id, text.size(f.bytes), f.source or "") for f in self.files]


class TransferProgress:
    """How an operation's progress looks (a `progress.Tracker`): one line through a display handle updated in
    place, so a saved notebook keeps its last state as static HTML (`<progress>` and the line of phases).

    A line that only said a quiet cell was running (nothing big moved) is left empty at the end: the saved
    notebook keeps nothing of it. Outside a kernel the line goes to stderr. `refresh` is called from transfer
    threads too (under the operation's lock); what hasn't changed isn't sent again."""

    def __init__(self, operation: progress.Operation) -> None:
        self.operation = operation
        self._sent = self.bundle()
        self._handle = display(self._sent, raw=True, display_id=True) if _in_kernel() else None
        if self._handle is None:
            self._write()

    def refresh(self, operation: progress.Operation) -> None:
        bundle = self.bundle()
        if bundle == self._sent:
            return
        if self._handle is not None:
            self._sent = bundle
            self._handle.update(bundle, raw=True)
        else:
            self._write()

    def close(self, operation: progress.Operation) -> None:
        self.refresh(operation)
        if self._handle is None and operation.big:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def text(self) -> str:
        op = self.operation
        if op.big:
            return op.describe()
        return "" if op.outcome is not None else op.indicator or ""

    def bundle(self) -> dict[str, str]:
        line = self.text()
        if not self.operation.big:
            return (
                {"text/plain": line, "text/html": f"<span style='opacity:.6'>{html.escape(line)}</span>"}
                if line
                else {"text/plain": ""}
            )
        fraction = self.operation.fraction()
        value = "" if fraction is None else f"value='{round(fraction * 1000)}' "  # none: a bar that just moves
        bar = f"<progress {value}max='1000' style='width:30%;vertical-align:middle'></progress>"
        return {"text/plain": line, "text/html": f"<div class='cellbox-progress'>{bar} {html.escape(line)}</div>"}

    def _write(self) -> None:
        if self.operation.big:
            sys.stderr.write("\r" + self.text())
            sys.stderr.flush()

    def _repr_html_(self) -> str:
        return self.bundle().get("text/html", "")

    def __repr__(self) -> str:
        return self.text()


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def image(artifact: Artifact) -> Image:
    return Image(data=artifact.read(), format="png")


class ArtifactGallery:
    """The files a run created or changed: images inline, CSV/Parquet previews as tables ("first 20 of 6,000
    rows"), others as download links carried in the notebook up to CELLBOX_INLINE_MAX bytes in all.

    The gallery itself is static HTML, so a saved notebook shows it without a kernel; in a kernel it is followed
    by "save to the notebook's folder" buttons (`cellbox.save_buttons`), which go on working in the saved notebook
    while the sandbox lives."""

    def __init__(self, artifacts: Sequence[Artifact]) -> None:
        self.items = list(artifacts)

    def kind(self, artifact: Artifact) -> str:
        name = artifact.name.lower()
        if artifact.mimetype and (artifact.size or 0) <= INLINE_IMAGE_LIMIT:
            return "image"
        if name.endswith((".csv", ".parquet")):
            return "table"
        return "file"

    def preview(self, artifact: Artifact) -> Any:
        """A DataFrame of the first rows of a CSV or Parquet artifact, read from a bounded prefix of the file:
        a CSV's first `CSV_PREVIEW_BYTES`, a whole Parquet file only up to `PARQUET_PREVIEW_LIMIT` (`NoPreview`
        past it: its index is at the end)."""
        return self._preview(artifact)[0]

    def _preview(self, artifact: Artifact) -> tuple[Any, str]:
        """The preview and what it shows of the file, in the words a partial frame uses: "first 20 of 6,000 rows",
        or "3 rows" when that is all of it (each with its columns)."""
        import io

        import pandas as pd

        if artifact.name.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            too_large = NoPreview(f"over {text.size(PARQUET_PREVIEW_LIMIT)}, too large to preview here")
            if (artifact.size or 0) > PARQUET_PREVIEW_LIMIT:
                raise too_large
            data = artifact.head(PARQUET_PREVIEW_LIMIT + 1)
            if len(data) > PARQUET_PREVIEW_LIMIT:
                raise too_large
            parquet = pq.ParquetFile(io.BytesIO(data))
            first = next(parquet.iter_batches(batch_size=PREVIEW_ROWS), None)
            frame = pd.DataFrame() if first is None else first.to_pandas()
            return frame, _shown(len(frame), parquet.metadata.num_rows, len(frame.columns))
        data = artifact.head(CSV_PREVIEW_BYTES + 1)
        if len(data) <= CSV_PREVIEW_BYTES:  # the whole file: its rows can be counted
            whole = pd.read_csv(io.BytesIO(data))
            frame = whole.head(PREVIEW_ROWS)
            return frame, _shown(len(frame), len(whole), len(frame.columns))
        end = data.rfind(b"\n", 0, CSV_PREVIEW_BYTES)  # cut off: keep the complete lines
        if end < 0:
            raise NoPreview(f"no complete line in its first {text.size(CSV_PREVIEW_BYTES)}")
        frame = pd.read_csv(io.BytesIO(data[: end + 1]), nrows=PREVIEW_ROWS)
        return (
            frame,
            f"first {len(frame)} rows {TIMES} {len(frame.columns)} columns of a {text.size(artifact.size)} file",
        )

    def _item_html(self, artifact: Artifact, budget: list[int]) -> str:
        title = f"<div><code>{html.escape(artifact.path)}</code> · {text.size(artifact.size)}</div>"
        kind = self.kind(artifact)
        if kind == "image":
            data = artifact.head(INLINE_IMAGE_LIMIT + 1)
            if len(data) <= INLINE_IMAGE_LIMIT:
                encoded = base64.b64encode(data).decode("ascii")
                return f"{title}<img src='data:{artifact.mimetype};base64,{encoded}' style='max-width:100%'/>"
            # larger than its listing said: shown as a file
        if kind == "table":
            try:
                frame, shown = self._preview(artifact)
                table = frame.to_html(max_rows=PREVIEW_ROWS) + f"<div style='opacity:.7'>{html.escape(shown)}</div>"
            except Exception as exc:  # NoPreview, or a file that isn't the table its name says: shown as a file
                table = f"<div>(no preview: {html.escape(str(exc))})</div>"
            return title + table + self._link(artifact, budget)
        return title + self._link(artifact, budget)

    def _link(self, artifact: Artifact, budget: list[int]) -> str:
        """A download link carrying the file, while the gallery's embedding budget (`budget[0]` bytes, spent
        here) lasts; past it, how to get the file."""
        left = budget[0]
        data = b"" if (artifact.size or 0) > left else artifact.head(left + 1)
        if (artifact.size or 0) > left or len(data) > left:
            relative = html.escape(artifact.path.removeprefix("/mnt/data/"))
            limit = f"{INLINE_MAX_VARIABLE} is {text.size(inline_max()[0])}"
            return f"<div>too large to embed ({limit}): <code>%container pull {relative}</code></div>"
        budget[0] -= len(data)
        encoded = base64.b64encode(data).decode("ascii")
        name = html.escape(artifact.name, quote=True)
        return (
            f"<div><a download='{name}' href='data:application/octet-stream;base64,{encoded}'>download {name}</a></div>"
        )

    def _repr_html_(self) -> str:
        cap, said = inline_max()
        budget = [cap]
        items = "".join(f"<div class='cellbox-artifact'>{self._item_html(a, budget)}</div>" for a in self.items)
        note = f"<div>cellbox: {html.escape(said)}</div>" if said else ""
        return f"<div class='cellbox-artifacts'><b>{len(self.items)} file(s) from the container</b>{items}{note}</div>"

    def _ipython_display_(self) -> None:
        display({"text/html": self._repr_html_(), "text/plain": repr(self)}, raw=True)
        if self.items and _in_kernel():
            from . import save_buttons

            save_buttons.show(self.items)

    def __repr__(self) -> str:
        lines = [f"{len(self.items)} file(s) from the container:"]
        lines += [f"  {a.path}  ({text.size(a.size)})" for a in self.items]
        return "\n".join(lines)


def _shown(rows: int, total: int, columns: int) -> str:
    if rows < total:
        return first_rows_caption(rows, total, columns)
    return f"{total:,} row{'s' if total != 1 else ''} {TIMES} {columns} columns"
