"""How containers, files, transfers and artifacts look in a notebook.

Each view is a plain object with `_repr_html_` and `__repr__` (no ipywidgets), so it renders in JupyterLab, in a
static notebook export and in a terminal alike, and tests can inspect what it holds (`.rows`, `.items`).
"""

from __future__ import annotations

import base64
import html
import sys
import time
from collections.abc import Sequence
from typing import Any

from IPython.display import Image, display

from . import text
from .api import Container, ContainerFile
from .results import Artifact

PREVIEW_ROWS = 20
# What the gallery reads of a file is bounded by these, whatever size the file claims (a sparse file can claim
# gigabytes): it reads at most the first so many bytes.
CSV_PREVIEW_BYTES = 1 << 20  # a CSV preview is made from this prefix (its last, cut line dropped)
PARQUET_PREVIEW_LIMIT = 16_000_000  # Parquet keeps its index at the end: larger files get no preview
INLINE_IMAGE_LIMIT = 10_000_000
INLINE_DOWNLOAD_LIMIT = 5_000_000  # bytes a download link carries inside the notebook itself


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
    """One container: name, id, status, memory, time to expiry."""

    header = ("name", "id", "status", "memory", "expires in")

    def __init__(self, container: Container, caption: str = "") -> None:
        self.container = container
        self.caption = caption
        self.rows = [
            (
                container.name or "",
                container.id,
                container.status or "?",
                container.memory_limit or "-",
                text.time_left(container),
            )
        ]


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
    """A progress bar for a push or pull, shown through a display handle that is updated in place.

    Plain HTML (`<progress>`) with a text fallback, so it works in any frontend and a saved notebook keeps the
    final state; outside a kernel it is a line on stderr. `update` is called from transfer threads (under the
    caller's lock); the display refreshes at most every 0.1 s. `done`, `total` and `closed` can be inspected.
    """

    REFRESH = 0.1

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.closed = False
        self._shown_at = 0.0
        self._started = time.monotonic()
        self._handle = display(self, display_id=True) if _in_kernel() else None

    def update(self, n: int) -> None:
        self.done = min(self.total, max(0, self.done + n))
        now = time.monotonic()
        if now - self._shown_at >= self.REFRESH:
            self._shown_at = now
            self._render()

    def close(self) -> None:
        self.closed = True
        self._render(final=True)

    def text(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = text.size(int(self.done / elapsed))
        state = "done" if self.closed and self.done >= self.total else f"{100 * self.done // max(self.total, 1)}%"
        return f"{self.label}: {text.size(self.done)} of {text.size(self.total)}, {rate}/s, {state}"

    def _render(self, final: bool = False) -> None:
        if self._handle is not None:
            self._handle.update(self)
            return
        sys.stderr.write("\r" + self.text() + ("\n" if final else ""))
        sys.stderr.flush()

    def _repr_html_(self) -> str:
        return (
            f"<div class='cellbox-progress'><progress value='{self.done}' max='{max(self.total, 1)}' "
            f"style='width:40%;vertical-align:middle'></progress> {html.escape(self.text())}</div>"
        )

    def __repr__(self) -> str:
        return self.text()


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def image(artifact: Artifact) -> Image:
    return Image(data=artifact.read(), format="png")


class ArtifactGallery:
    """The files a run created or changed: images inline, CSV/Parquet previews as tables, others as links."""

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
            batches = pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=PREVIEW_ROWS)
            first = next(batches, None)
            return pd.DataFrame() if first is None else first.to_pandas()
        data = artifact.head(CSV_PREVIEW_BYTES + 1)
        if len(data) > CSV_PREVIEW_BYTES:  # cut off: keep the complete lines
            end = data.rfind(b"\n", 0, CSV_PREVIEW_BYTES)
            if end < 0:
                raise NoPreview(f"no complete line in its first {text.size(CSV_PREVIEW_BYTES)}")
            data = data[: end + 1]
        return pd.read_csv(io.BytesIO(data), nrows=PREVIEW_ROWS)

    def _item_html(self, artifact: Artifact) -> str:
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
                table = self.preview(artifact).to_html(max_rows=PREVIEW_ROWS)
            except Exception as exc:  # NoPreview, or a file that isn't the table its name says: shown as a file
                table = f"<div>(no preview: {html.escape(str(exc))})</div>"
            return title + table + self._link(artifact)
        return title + self._link(artifact)

    def _link(self, artifact: Artifact) -> str:
        data = b"" if (artifact.size or 0) > INLINE_DOWNLOAD_LIMIT else artifact.head(INLINE_DOWNLOAD_LIMIT + 1)
        if (artifact.size or 0) > INLINE_DOWNLOAD_LIMIT or len(data) > INLINE_DOWNLOAD_LIMIT:
            relative = artifact.path.removeprefix("/mnt/data/")
            return f"<div>too large to embed: <code>%container pull {html.escape(relative)}</code></div>"
        encoded = base64.b64encode(data).decode("ascii")
        name = html.escape(artifact.name, quote=True)
        return (
            f"<div><a download='{name}' href='data:application/octet-stream;base64,{encoded}'>download {name}</a></div>"
        )

    def _repr_html_(self) -> str:
        items = "".join(f"<div class='cellbox-artifact'>{self._item_html(a)}</div>" for a in self.items)
        return f"<div class='cellbox-artifacts'><b>{len(self.items)} file(s) from the container</b>{items}</div>"

    def __repr__(self) -> str:
        lines = [f"{len(self.items)} file(s) from the container:"]
        lines += [f"  {a.path}  ({text.size(a.size)})" for a in self.items]
        return "\n".join(lines)
