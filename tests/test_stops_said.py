"""What is said of a stopped run and of a process that died short of memory, without a server: the lines the local
server writes and how the client reads them back."""

from __future__ import annotations

from cellbox.common import stops
from cellbox.local.jail.containers import _more_memory, _short_of_memory
from cellbox.local.jail.kernel import Execution


def test_only_the_backends_last_line_says_what_a_stop_left() -> None:
    assert stops.left(stops.KEPT) == "kept" and stops.left(f"tick 1\n{stops.RESTARTED}\n") == "restarted"
    assert stops.left("") is None and stops.left("the cell printed this") is None
    # The code's own words before the backend's line don't count, nor the line quoted inside other text.
    assert stops.left(f"{stops.RESTARTED}\n{stops.KEPT}") == "kept"
    assert stops.left(f"said: {stops.RESTARTED}") is None


def test_a_death_short_of_memory_is_told_by_its_peak_or_a_memory_error() -> None:
    gib = 1 << 30
    assert _short_of_memory(Execution(memory_peak=int(0.96 * gib)), "1g", gib) == (
        "it had used 96% of this container's 1g"
    )
    assert _short_of_memory(Execution(memory_peak=gib // 2, logs="...\nMemoryError\n"), "1g", gib) == (
        "a MemoryError came first (this container has 1g)"
    )
    assert _short_of_memory(Execution(memory_peak=gib // 2), "1g", gib) is None  # a crash of another kind
    assert _short_of_memory(Execution(memory_peak=None), "1g", None) is None  # nothing measured: no guess


def test_the_advice_names_the_next_memory_size_or_less_data() -> None:
    assert "memory_limit 4g: `--memory 4g` in a notebook" in _more_memory("1g")
    assert "memory_limit 64g" in _more_memory("16g")
    assert "more memory" not in _more_memory("64g") and "less data at once" in _more_memory("64g")
