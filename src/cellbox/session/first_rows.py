"""The first rows of a longer frame or series — a cell's last value, of which the container sends back only
`runtime.values.MAX_VALUE_ROWS` — saying so where pandas gives the size: "first 100,000 of 1,000,000 rows" where
pandas would give the 100000 rows it holds.

Anything made from them is a plain DataFrame or Series: only what was sent back is partial. Imported when such a
value arrives, so `import cellbox` doesn't import pandas for it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..common.text import TIMES


def first_rows_caption(shown: int, total: int, columns: int | None = None, times: str = TIMES) -> str:
    """`first 100,000 of 1,000,000 rows by 6 columns` (with `times` for "by", as pandas writes it): how a part
    of a longer table is named, in the artifact previews too."""
    caption = f"first {shown:,} of {total:,} rows"
    return caption if columns is None else f"{caption} {times} {columns:,} columns"


def first_rows(value: Any, total: int) -> Any:
    """`value` (the first rows of something `total` rows long) as a frame or series that says so when shown."""
    if isinstance(value, pd.DataFrame):
        return FirstRowsFrame(value, total_rows=total)
    if isinstance(value, pd.Series):
        return FirstRowsSeries(value, total_rows=total)
    return value


def _restated(shown: str, pandas_says: str, we_say: str, end: str) -> str:
    """`shown` with pandas' own statement of the size replaced (the last one: a cell could hold the same words),
    or, where pandas gave none (display.show_dimensions off), ours added at `end`."""
    if pandas_says in shown:
        head, _, tail = shown.rpartition(pandas_says)
        return head + we_say + tail
    return shown + end.format(we_say)


class FirstRowsFrame(pd.DataFrame):  # type: ignore[misc]  # pandas has no type stubs here: DataFrame is Any
    _metadata = ["total_rows"]

    def __init__(self, data: Any = None, *args: Any, total_rows: int = 0, **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)
        self.total_rows = total_rows

    @property
    def _constructor(self) -> Any:
        return pd.DataFrame

    def _caption(self) -> str:
        return first_rows_caption(len(self), self.total_rows, len(self.columns))

    def _repr_html_(self) -> str | None:
        shown = super()._repr_html_()
        if shown is None:
            return None
        pandas_says = f"{len(self)} rows {TIMES} {len(self.columns)} columns"
        return _restated(shown, pandas_says, self._caption(), "<p>{}</p>")

    def __repr__(self) -> str:
        pandas_says = f"{len(self)} rows x {len(self.columns)} columns"
        we_say = first_rows_caption(len(self), self.total_rows, len(self.columns), times="x")
        return _restated(super().__repr__(), pandas_says, we_say, "\n\n[{}]")


class FirstRowsSeries(pd.Series):  # type: ignore[misc]  # pandas has no type stubs here: Series is Any
    _metadata = ["total_rows"]

    def __init__(self, data: Any = None, *args: Any, total_rows: int = 0, **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)
        self.total_rows = total_rows

    @property
    def _constructor(self) -> Any:
        return pd.Series

    def __repr__(self) -> str:
        we_say = first_rows_caption(len(self), self.total_rows)
        return _restated(super().__repr__(), f"Length: {len(self)}", we_say, "\n{}")
