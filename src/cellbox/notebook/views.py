"""How containers, files, transfers and artifacts look in a notebook.

Each view is a plain object with `_repr_html_` and `__repr__`, so it renders in JupyterLab, in a static notebook
export and in a terminal alike, and tests can inspect what it holds (`.rows`, `.items`). In a kernel with
ipywidgets the gallery and the progress line are also live widgets (`widgets`), displayed in one bundle with this
static HTML.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from IPython.display import Image, display

from ..api import CellboxError, Container, ContainerFile
from ..api.config import load_settings
from ..common import text
from ..common.inuse import in_kernel
from ..session import progress
from ..session.results import Artifact, Usage
from . import previews, widgets
from .previews import (  # noqa: F401  # the preview bounds, named here as before
    CSV_PREVIEW_BYTES,
    DELIMITERS,
    PARQUET_PREVIEW_LIMIT,
    PREVIEW_COLUMNS,
    PREVIEW_ROWS,
    TEXT_PREVIEW_BYTES,
    NoPreview,
)

# What the gallery reads of a file is bounded, whatever size the file claims (a sparse file can claim gigabytes),
# and so is what it shows: previews (`previews`) in rows, columns, cells and the memory making them takes, the gallery
# in files shown, images and embedded bytes.
INLINE_IMAGE_LIMIT = 10_000_000
IMAGES_MAX = 20_000_000  # bytes of images one gallery shows inline; past them, how to get the rest
PREVIEWS_MAX = 2_000_000  # characters of preview HTML one gallery carries
MAX_ITEMS = 100  # files one gallery shows; "and N more" past them
PATH_CHARS = 300  # a path is cut to this many characters where it is shown
INLINE_MAX = 5_000_000
FIGURE_SHOWN = "saved from a figure the cell displayed above: not shown again"
INLINE_MAX_VARIABLE = "CELLBOX_INLINE_MAX"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|k|m|g)b?\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}  # SI, as sizes are shown (cellbox.common.text.size)


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


class PackageTable(_Table):
    """The Python packages a container has (`%container env`): name and version, as its code reported them."""

    header = ("package", "version")

    def __init__(self, packages: Sequence[Sequence[object]], container: str) -> None:
        self.rows = [(str(row[0]), str(row[1])) for row in packages if isinstance(row, (list, tuple)) and len(row) == 2]
        self.caption = f"{len(self.rows)} packages in container {container}"


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
        # In a kernel with ipywidgets the line is a widget set in place while it moves; the display is sent again
        # only at the end, as the static line, so a saved notebook holds no widget its next kernel can't show.
        self._live = widgets.ProgressBar() if in_kernel() and widgets.available() else None
        shown = self._sent
        if self._live is not None:
            self._live.show(self.text(), operation.fraction(), operation.big)
            shown = widgets.bundle(self._live.box, self._sent.get("text/html", ""), self._sent["text/plain"])
        self._handle = display(shown, raw=True, display_id=True) if in_kernel() else None
        if self._handle is None:
            self._write()

    def refresh(self, operation: progress.Operation) -> None:
        bundle = self.bundle()
        if bundle == self._sent:
            return
        self._sent = bundle
        if self._live is not None:
            self._live.show(self.text(), operation.fraction(), operation.big)
        elif self._handle is not None:
            self._handle.update(bundle, raw=True)
        else:
            self._write()

    def close(self, operation: progress.Operation) -> None:
        if self._live is not None:
            self._sent = self.bundle()
            self._handle.update(self._sent, raw=True)  # type: ignore[union-attr]  # live only in a kernel
            self._live.close()
            self._live = None
            return
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


def image(artifact: Artifact) -> Image:
    return Image(data=artifact.read(), format="png")


class ArtifactGallery:
    """The files a run created or changed: images inline, CSV/TSV/Parquet previews as tables ("first 20 of 6,000
    rows"), text files' first lines, others as download links carried in the notebook up to CELLBOX_INLINE_MAX
    bytes in all.

    What a container made is untrusted, so the gallery is bounded whatever the files claim: the first MAX_ITEMS
    files are shown ("and N more"), images up to IMAGES_MAX bytes in all, previews made under a memory budget and
    bounded in rows, columns, cells and (all together) PREVIEWS_MAX characters of HTML.

    A file the cell saved from a figure it also displayed (`plt.savefig` with the inline backend) is listed but
    not shown again: the figure is in the cell's output already, where a local cell shows it, in its place.

    The gallery itself is static HTML, so a saved notebook shows it without a kernel; in a kernel it is followed
    by "save to the notebook's folder" buttons (`save_buttons`), which go on working in the saved notebook while the
    sandbox lives."""

    def __init__(self, artifacts: Sequence[Artifact]) -> None:
        self.items = list(artifacts)
        self._previews: dict[int, tuple[Any, str]] = {}  # made once, for the static HTML and the widget alike

    @property
    def shown(self) -> list[Artifact]:
        return self.items[:MAX_ITEMS]

    def kind(self, artifact: Artifact) -> str:
        if artifact.mimetype and (artifact.size or 0) <= INLINE_IMAGE_LIMIT:
            return "image"
        return previews.kind(artifact.name) or "file"

    def preview(self, artifact: Artifact) -> Any:
        """A DataFrame of the first rows of a CSV, TSV or Parquet artifact, read from a bounded prefix of the file:
        a CSV's first `CSV_PREVIEW_BYTES`, a whole Parquet file only up to `PARQUET_PREVIEW_LIMIT` (`NoPreview`
        past it: its index is at the end), of which only the columns whose first rows are cheap to read."""
        return self._preview(artifact)[0]

    def _preview(self, artifact: Artifact) -> tuple[Any, str]:
        """The preview and what it shows of the file, in the words a partial frame uses: "first 20 of 6,000 rows",
        or "3 rows" when that is all of it (each with its columns)."""
        key = id(artifact)
        if key not in self._previews:
            self._previews[key] = self._read_preview(artifact)
        return self._previews[key]

    def _read_preview(self, artifact: Artifact) -> tuple[Any, str]:
        name = artifact.name.lower()
        if name.endswith(".parquet"):
            too_large = NoPreview(f"over {text.size(PARQUET_PREVIEW_LIMIT)}, too large to preview here")
            if (artifact.size or 0) > PARQUET_PREVIEW_LIMIT:
                raise too_large
            data = artifact.head(PARQUET_PREVIEW_LIMIT + 1)
            if len(data) > PARQUET_PREVIEW_LIMIT:
                raise too_large
            return previews.parquet(data)
        data = artifact.head(CSV_PREVIEW_BYTES + 1)
        sep = DELIMITERS.get(os.path.splitext(name)[1], ",")
        return previews.delimited(data, len(data) <= CSV_PREVIEW_BYTES, artifact.size, sep)

    def _item_html(self, artifact: Artifact, budget: _Budget) -> str:
        path = previews.cut(artifact.path, PATH_CHARS)
        title = f"<div><code>{html.escape(path)}</code> · {text.size(artifact.size)}</div>"
        kind = self.kind(artifact)
        if kind == "image" and artifact.shown_as_figure:  # the cell displayed it: shown there, once
            return f"{title}<div style='opacity:.7'>{FIGURE_SHOWN}</div>" + self._link(artifact, budget)
        if kind == "image" and (artifact.size or 0) <= budget.images:
            limit = min(INLINE_IMAGE_LIMIT, budget.images)
            data = artifact.head(limit + 1)
            if len(data) <= limit:
                budget.images -= len(data)
                encoded = base64.b64encode(data).decode("ascii")
                return f"{title}<img src='data:{artifact.mimetype};base64,{encoded}' style='max-width:100%'/>"
            # larger than its listing said, or than what is left to show: shown as a file
        if kind in ("table", "text"):
            if budget.previews <= 0:
                shown = f"<div>(no preview: this output's previews reached {text.size(PREVIEWS_MAX)})</div>"
            else:
                shown = self._preview_html(artifact, kind)
                budget.previews -= len(shown)
            return title + shown + self._link(artifact, budget)
        return title + self._link(artifact, budget)

    def _preview_html(self, artifact: Artifact, kind: str) -> str:
        try:
            if kind == "text":
                data = artifact.head(TEXT_PREVIEW_BYTES + 1)
                lines, said = previews.text_lines(data, len(data) <= TEXT_PREVIEW_BYTES, artifact.size)
                shown = f"<pre style='white-space:pre-wrap'>{html.escape(lines)}</pre>"
            else:
                frame, said = self._preview(artifact)
                shown = previews.table_html(frame)
        except Exception as exc:  # NoPreview, or a file that isn't the table its name says: shown as a file
            return f"<div>(no preview: {html.escape(previews.cut(str(exc), 300))})</div>"
        return shown + f"<div style='opacity:.7'>{html.escape(said)}</div>"

    def _link(self, artifact: Artifact, budget: _Budget) -> str:
        """A download link carrying the file, while the gallery's embedding budget (`budget.downloads` bytes,
        spent here) lasts; past it, how to get the file."""
        left = budget.downloads
        data = b"" if (artifact.size or 0) > left else artifact.head(left + 1)
        if (artifact.size or 0) > left or len(data) > left:
            relative = html.escape(previews.cut(artifact.path.removeprefix("/mnt/data/"), PATH_CHARS))
            limit = f"{INLINE_MAX_VARIABLE} is {text.size(inline_max()[0])}"
            return f"<div>too large to embed ({limit}): <code>%container pull {relative}</code></div>"
        budget.downloads -= len(data)
        encoded = base64.b64encode(data).decode("ascii")
        name = html.escape(previews.cut(artifact.name, PATH_CHARS), quote=True)
        return (
            f"<div><a download='{name}' href='data:application/octet-stream;base64,{encoded}'>download {name}</a></div>"
        )

    def _repr_html_(self) -> str:
        cap, said = inline_max()
        budget = _Budget(downloads=cap)
        items = "".join(f"<div class='cellbox-artifact'>{self._item_html(a, budget)}</div>" for a in self.shown)
        more = len(self.items) - len(self.shown)
        if more:
            items += f"<div>and {more:,} more file(s): <code>%container files</code> lists them</div>"
        note = f"<div>cellbox: {html.escape(said)}</div>" if said else ""
        return f"<div class='cellbox-artifacts'><b>{len(self.items)} file(s) from the container</b>{items}{note}</div>"

    def _ipython_display_(self) -> None:
        static = {"text/html": self._repr_html_(), "text/plain": repr(self)}
        live = self.items and in_kernel() and widgets.available()
        display(widgets.gallery(self, static["text/html"], static["text/plain"]) if live else static, raw=True)
        if self.items and in_kernel():
            from . import save_buttons

            save_buttons.show(self.shown)

    def __repr__(self) -> str:
        lines = [f"{len(self.items)} file(s) from the container:"]
        lines += [f"  {previews.cut(a.path, PATH_CHARS)}  ({text.size(a.size)})" for a in self.shown]
        if len(self.items) > len(self.shown):
            lines.append(f"  and {len(self.items) - len(self.shown):,} more: %container files lists them")
        return "\n".join(lines)


@dataclasses.dataclass
class _Budget:
    """What one gallery has left to carry: embedded downloads and images in bytes, previews in characters."""

    downloads: int
    images: int = IMAGES_MAX
    previews: int = PREVIEWS_MAX
