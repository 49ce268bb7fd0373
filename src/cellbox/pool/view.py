"""How a pool's run looks: one grid of parts (state, sandbox, time, rows in and out), failing parts' tracebacks
below it, the parts' streams prefixed with their number, and what each part displayed grouped under its number.

Plain HTML with a text twin, like the notebook's views; while a pool runs, `LiveGrid` keeps one display (a widget,
where ipywidgets is installed) updated in place (a line on stderr outside a kernel is not worth the noise: nothing is
shown there).
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..common import extras, text

if TYPE_CHECKING:
    from .parts import Part, PoolRuns

HEADER = ("part", "sandbox", "state", "time", "rows in", "rows out")
COLOURS = {
    "done": "var(--jp-success-color1,#080)",
    "failed": "var(--jp-error-color1,#c00)",
    "stopped": "var(--jp-warn-color1,#b60)",
    "running": "var(--jp-brand-color1,#06c)",
}


def _seconds(part: Part, now: float | None = None) -> str:
    if part.seconds is not None:
        return f"{part.seconds:.1f} s"
    if part.state == "running" and part.started is not None:
        return f"{(now or time.monotonic()) - part.started:.0f} s"
    return text.NONE


def _count(n: int | None) -> str:
    return text.NONE if n is None else f"{n:,}"


def rows(runs: PoolRuns) -> list[tuple[str, ...]]:
    now = time.monotonic()
    return [
        (str(p.index), p.sandbox or text.NONE, p.state, _seconds(p, now), _count(p.rows), _count(p.rows_out))
        for p in runs.parts
    ]


def summary(runs: PoolRuns) -> str:
    states = [p.state for p in runs.parts]
    counts = ", ".join(
        f"{states.count(s)} {s}" for s in ("done", "running", "waiting", "failed", "stopped") if states.count(s)
    )
    return f"{len(runs.parts)} parts on {runs.sandboxes} sandboxes: {counts}"


def grid_html(runs: PoolRuns) -> str:
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in HEADER)
    body = []
    for part, row in zip(runs.parts, rows(runs), strict=True):
        colour = COLOURS.get(part.state)
        cells = [f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row]
        if colour:
            cells[2] = f"<td style='text-align:left;color:{colour}'>{html.escape(row[2])}</td>"
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption style='text-align:left'>{html.escape(summary(runs))}</caption>"
    table = (
        f"<table class='cellbox-table cellbox-pool'>{caption}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    errors = "".join(
        f"<details open><summary>part {p.index} ({html.escape(p.sandbox)}): {html.escape(p.state)}</summary>"
        f"<pre style='color:var(--jp-error-color1,#c00)'>{html.escape(p.traceback)}</pre></details>"
        for p in runs.failed
    )
    notes = "".join(f"<div>cellbox: part {p.index}: {html.escape(n)}</div>" for p in runs.parts for n in p.notes)
    return f"<div class='cellbox-pool-run'>{table}{errors}{notes}</div>"


def grid_text(runs: PoolRuns) -> str:
    lines = [summary(runs), text.table(HEADER, rows(runs))]
    for part in runs.failed:
        lines.append(f"--- part {part.index} ({part.sandbox}): {part.state} ---")
        lines.append(part.traceback.rstrip("\n"))
    lines += [f"cellbox: part {p.index}: {n}" for p in runs.parts for n in p.notes]
    return "\n".join(lines)


class LiveGrid:
    """The grid of a running pool, one display updated in place at most every `REFRESH` seconds; at the end it
    is emptied and the final grid shown as a display of its own, so a saved notebook (and nbval, which sees no
    updates) keeps exactly the final grid.

    In a kernel with ipywidgets the running grid is a widget redrawn in place (its HTML is `grid_html`'s, every
    container string escaped), displayed once; otherwise the display is updated with the grid's HTML."""

    REFRESH = 0.5
    EMPTY = {"text/plain": ""}

    def __init__(self, runs: PoolRuns) -> None:
        from IPython.display import display

        self.runs = runs
        self._shown_at = 0.0
        self._widget: Any = None
        if extras.live_widgets():
            import ipywidgets

            self._widget = ipywidgets.HTML(grid_html(runs))
            self._widget.add_class("cellbox-pool-widget")
            # Nothing but the widget: what a frontend without it (nbval, a saved notebook) keeps of this display
            # is the empty text it ends as, and the final grid, displayed on its own.
            shown = {**self._widget._repr_mimebundle_(), **self.EMPTY}
            self._handle = display(shown, raw=True, display_id=True)
        else:
            self._handle = display(self.EMPTY, raw=True, display_id=True)

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._shown_at >= self.REFRESH and self._handle is not None:
            self._shown_at = now
            if self._widget is not None:
                self._widget.value = grid_html(self.runs)
            else:
                self._handle.update(self.runs)

    def close(self) -> None:
        from IPython.display import display

        if self._handle is not None:
            self._handle.update(self.EMPTY, raw=True)
        if self._widget is not None:
            self._widget.close()
        display(self.runs)


class Streams:
    """Each part's streams as whole lines prefixed with the part's number (`[3] text`); a part's unfinished
    line is written when the part ends (`flush`)."""

    def __init__(self) -> None:
        self._partial: dict[tuple[int, str], str] = {}

    def write(self, index: int, name: str, data: str) -> None:
        key = (index, name)
        lines = (self._partial.pop(key, "") + data).split("\n")
        self._partial[key] = lines.pop()
        if lines:
            self._emit(name, "".join(f"[{index}] {line}\n" for line in lines))

    def flush(self, index: int) -> None:
        for name in ("stdout", "stderr"):
            rest = self._partial.pop((index, name), "")
            if rest:
                self._emit(name, f"[{index}] {rest}\n")

    @staticmethod
    def _emit(name: str, data: str) -> None:
        stream = sys.stderr if name == "stderr" else sys.stdout
        stream.write(data)
        stream.flush()


def show_displays(runs: PoolRuns, parts: Sequence[Part]) -> None:
    """What these parts displayed (figures, rich outputs), grouped under each part's number."""
    from IPython.display import display, publish_display_data

    for part in parts:
        shown: list[Any] = part.run.displays if part.run is not None else []
        figures = part.run.figures if part.run is not None else []
        if not shown and not figures:
            continue
        print(f"[{part.index}] displays of part {part.index} ({part.sandbox}):")
        for item in shown:
            publish_display_data(item.data, item.metadata)
        for figure in figures:
            display(figure)  # an artifact shows itself as its image
