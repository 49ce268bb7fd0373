"""The live views of a kernel, as ipywidgets: the artifact gallery (paged; tables paged and sorted by pandas here,
images, text; each file with a save action) and the progress bar (a pool's live grid is `pool.view`'s).

Each is displayed as one bundle holding the widget's view *and* the static HTML the views make without widgets
(`views`), so a notebook exported with nbconvert, shown on GitHub or opened untrusted reads the same output; the
static HTML is also what a kernel without ipywidgets shows, said once (`available`). A notebook JupyterLab saved
itself is trusted when reopened, so JupyterLab draws the widget view first: the widget state saved with the
notebook (on by default with cellbox's wheel, jupyter-config/lab-settings) draws it after its kernel is gone. The
progress bar is sent again as the static line once its operation ends, so no saved notebook keeps one.

Everything shown comes from a container: no container string reaches a widget as markup unless escaped here
(`_text`; tables through `previews.table_html`), images go through `ipywidgets.Image` as bytes, and a file is
saved only where `cellbox.boundary.local_paths` lets `Artifact.download` put it.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..common import extras, text
from ..session.protocol import DATA_DIR

if TYPE_CHECKING:
    from ..session.results import Artifact

__all__ = [
    "ITEMS_PER_PAGE",
    "ROWS_PER_PAGE",
    "GalleryWidget",
    "ProgressBar",
    "TableView",
    "available",
    "bundle",
    "gallery",
]

ITEMS_PER_PAGE = 10  # files on one page of a gallery: only the shown page's previews are made
ROWS_PER_PAGE = 10  # rows on one page of a table preview
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# A gallery reopened from its saved state, its kernel gone, marks itself disconnected once, not on each part.
QUIET_DISCONNECTED = "<style>.cellbox-gallery .jupyter-widgets-disconnected::before{display:none}</style>"


def available() -> bool:
    """Whether this kernel shows live widgets (`cellbox.common.extras.live_widgets`)."""
    return extras.live_widgets()


def bundle(widget: Any, static_html: str, plain: str) -> dict[str, Any]:
    """The display bundle of `widget` with its static twin: the widget's view for a live frontend, `text/html`
    for everything that can't show it."""
    data = dict(widget._repr_mimebundle_() or {})
    data["text/html"] = static_html
    data["text/plain"] = plain
    return data


def _text(value: str, tag: str = "span", style: str = "") -> Any:
    """Container text as a widget: escaped here, whatever it holds."""
    import ipywidgets as w

    styled = f" style='{style}'" if style else ""
    return w.HTML(f"<{tag}{styled}>{html.escape(value)}</{tag}>")


class Pager:
    """Previous / next over `count` things shown `size` at a time, calling `show(first, last)` on each move."""

    def __init__(self, count: int, size: int, show: Callable[[int, int], None], what: str) -> None:
        import ipywidgets as w

        self.count, self.size, self.show, self.what = count, size, show, what
        self.page = 0
        self.previous = w.Button(description="previous", icon="arrow-left", layout=w.Layout(width="auto"))
        self.next = w.Button(description="next", icon="arrow-right", layout=w.Layout(width="auto"))
        self.label = w.Label()
        self.previous.on_click(lambda _: self.go(self.page - 1))
        self.next.on_click(lambda _: self.go(self.page + 1))
        self.box = w.HBox([self.previous, self.label, self.next])
        self.box.add_class("cellbox-pager")
        self.box.layout.display = "flex" if count > size else "none"

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // self.size))

    def go(self, page: int) -> None:
        self.page = min(max(page, 0), self.pages - 1)
        first = self.page * self.size
        last = min(first + self.size, self.count)
        where = f"page {self.page + 1} of {self.pages}"
        self.label.value = f"{self.what} {first + 1:,}-{last:,} of {self.count:,} · {where}"
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page == self.pages - 1
        self.show(first, last)


class TableView:
    """A preview's frame, paged and sorted: pandas sorts it here, the page is drawn by `previews.table_html`
    (every cell cut and escaped)."""

    def __init__(self, frame: Any, said: str) -> None:
        import ipywidgets as w

        from . import previews

        self.frame = frame
        self._table_html = previews.table_html
        self.sorted = frame
        columns = [str(c) for c in frame.columns[: previews.PREVIEW_COLUMNS]]
        options = [("file order", -1)] + [(previews.cut(name, 40), i) for i, name in enumerate(columns)]
        self.sort = w.Dropdown(options=options, value=-1, description="sort by", layout=w.Layout(width="auto"))
        self.descending = w.ToggleButton(value=False, description="descending", layout=w.Layout(width="auto"))
        self.table = w.HTML()
        self.pager = Pager(len(frame), ROWS_PER_PAGE, self._page, "rows")
        self.sort.observe(lambda _: self.reorder(), names="value")
        self.descending.observe(lambda _: self.reorder(), names="value")
        controls = w.HBox([self.sort, self.descending, self.pager.box])
        self.box = w.VBox([controls, self.table, _text(said, "div", "opacity:.7")])
        self.box.add_class("cellbox-table-view")
        self.pager.go(0)

    def reorder(self) -> None:
        column = self.sort.value
        if column == -1:
            self.sorted = self.frame.iloc[::-1] if self.descending.value else self.frame
        else:
            self.sorted = _sorted(self.frame, column, ascending=not self.descending.value)
        self.pager.go(0)

    def _page(self, first: int, last: int) -> None:
        self.table.value = self._table_html(self.sorted.iloc[first:last])


def _sorted(frame: Any, column: int, *, ascending: bool) -> Any:
    """`frame` sorted by its `column`-th column, by position (labels may repeat); values that don't compare (mixed
    types) sort as their text, missing ones last."""
    keyed = frame.iloc[:, column].reset_index(drop=True)
    try:
        order = keyed.sort_values(ascending=ascending, kind="stable", na_position="last").index
    except TypeError:
        order = keyed.astype(str).sort_values(ascending=ascending, kind="stable", na_position="last").index
    return frame.iloc[list(order)]


class SaveAction:
    """ "save" into the notebook's folder under the file's name, as `Artifact.download` decides (hidden names,
    module names and unsafe names refused, in words); a file already there is replaced only on a second click."""

    def __init__(self, artifact: Artifact) -> None:
        import ipywidgets as w

        self.artifact = artifact
        self.button = w.Button(description="save", icon="download", tooltip="save into the notebook's folder")
        self.button.layout.width = "auto"
        self.status = w.Label()
        self._replace = False
        self.button.on_click(lambda _: self.save())
        self.box = w.HBox([self.button, self.status])

    def save(self) -> None:
        from ..api import CellboxError
        from ..boundary import local_paths
        from ..boundary.local_paths import Refused

        try:
            saved = self.artifact.download(".", force=self._replace)
        except Refused as refused:
            self._replace = refused.kind == "existing"
            self.button.description = "replace" if self._replace else "save"
            self.status.value = _line(self._refused(refused))
            return
        except (CellboxError, OSError) as exc:
            self.status.value = _line(f"could not save {local_paths.shown(self.artifact.name)}: {exc}")
            return
        self._replace = False
        self.button.description = "save"
        self.status.value = _line(f"saved {local_paths.shown(saved.name)} ({text.size(saved.stat().st_size)})")

    def _refused(self, refused: Any) -> str:
        """Why a click saved nothing, and what to type where a click can't (what `%container pull` needs)."""
        from ..boundary import local_paths

        name = local_paths.shown(self.artifact.name)
        where = shlex.quote(self.artifact.path.removeprefix(DATA_DIR + "/"))
        if refused.kind == "existing":
            return f"{name} is already in this folder: click again to replace it"
        if refused.kind == "hidden":
            return f"{name} is hidden, not saved by a click: %container pull --hidden {where}"
        if refused.kind == "module":
            return f"{name} would shadow a Python module, not saved by a click: %container pull --modules {where}"
        return str(refused)


def _line(said: str, limit: int = 300) -> str:
    """One line of at most `limit` characters (a Label shows text, never markup)."""
    first = said.splitlines()[0] if said else ""
    return first if len(first) <= limit else first[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


class GalleryWidget:
    """The files a run created or changed, `ITEMS_PER_PAGE` at a time: each with its path and size, its preview
    (a table view, an image, the first lines of text) and a save action. A page's previews are made when it is
    first shown, under the same bounds as the static gallery's (`views.ArtifactGallery`)."""

    def __init__(self, gallery: Any) -> None:
        import ipywidgets as w

        self.gallery = gallery
        self.items: list[Artifact] = list(gallery.items)
        self._made: dict[int, Any] = {}
        self.page = w.VBox()
        self.pager = Pager(len(self.items), ITEMS_PER_PAGE, self._show, "files")
        count = len(self.items)
        heading = _text(f"{count:,} file(s) from the container", "b")
        self.box = w.VBox([heading, self.pager.box, self.page, w.HTML(QUIET_DISCONNECTED)])
        self.box.add_class("cellbox-gallery")
        self.pager.go(0)

    def _show(self, first: int, last: int) -> None:
        self.page.children = [self.item(i) for i in range(first, last)]

    def item(self, index: int) -> Any:
        if index not in self._made:
            self._made[index] = self._item(self.items[index])
        return self._made[index]

    def _item(self, artifact: Artifact) -> Any:
        import ipywidgets as w

        from . import previews, views

        path = previews.cut(artifact.path, views.PATH_CHARS)
        title = _text(f"{path} · {text.size(artifact.size)}", "code")
        parts: list[Any] = [title]
        kind = self.gallery.kind(artifact)
        if kind == "image" and artifact.shown_as_figure:
            parts.append(_text(views.FIGURE_SHOWN, "div", "opacity:.7"))
        elif kind == "image":
            data = artifact.head(views.INLINE_IMAGE_LIMIT + 1)
            if len(data) <= views.INLINE_IMAGE_LIMIT:
                fmt = (artifact.mimetype or "image/png").split("/", 1)[1]
                parts.append(w.Image(value=data, format=fmt, layout=w.Layout(max_width="100%")))
            else:
                parts.append(_text(f"(over {text.size(views.INLINE_IMAGE_LIMIT)}, not shown inline)", "div"))
        elif kind == "table":
            try:
                frame, said = self.gallery._preview(artifact)
                parts.append(TableView(frame, said).box)
            except Exception as exc:  # NoPreview, or a file that isn't the table its name says
                parts.append(_text(f"(no preview: {previews.cut(str(exc), 300)})", "div"))
        elif kind == "text":
            data = artifact.head(previews.TEXT_PREVIEW_BYTES + 1)
            lines, said = previews.text_lines(data, len(data) <= previews.TEXT_PREVIEW_BYTES, artifact.size)
            parts += [_text(lines, "pre", "white-space:pre-wrap"), _text(said, "div", "opacity:.7")]
        parts.append(SaveAction(artifact).box)
        box = w.VBox(parts)
        box.add_class("cellbox-artifact")
        return box


def gallery(gallery: Any, static_html: str, plain: str) -> dict[str, Any]:
    """The display bundle of an artifact gallery: its live widget and its static HTML."""
    return bundle(GalleryWidget(gallery).box, static_html, plain)


class ProgressBar:
    """An operation's progress line as a widget: a bar (for work that says how far it is) and the line, set in
    place as the operation moves; no display is sent again until the end."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.bar = w.FloatProgress(min=0.0, max=1.0, value=0.0, layout=w.Layout(width="30%"))
        self.label = w.Label()
        self.box = w.HBox([self.bar, self.label])
        self.box.add_class("cellbox-progress-widget")

    def show(self, line: str, fraction: float | None, big: bool) -> None:
        with self.box.hold_sync():
            self.bar.layout.display = "" if big else "none"
            self.bar.bar_style = "" if fraction is not None else "info"
            self.bar.value = 1.0 if fraction is None else fraction
            self.label.value = line

    def close(self) -> None:
        for widget in (self.bar, self.label, self.box):
            widget.close()
