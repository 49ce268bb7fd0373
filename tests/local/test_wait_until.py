"""`wait_until` and its async twin `wait_until_async` poll alike: the same value back, the same failure."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from cellbox.local.testing import wait_until, wait_until_async


def _sync(condition: Callable[[], object], **options: object) -> object:
    return wait_until(condition, **options)


def _async(condition: Callable[[], object], **options: object) -> object:
    return asyncio.run(wait_until_async(condition, **options))


@pytest.mark.parametrize("wait", [_sync, _async])
def test_returns_the_first_truthy_value(wait) -> None:
    values = iter([None, 0, "", "ready", "later"])
    assert wait(lambda: next(values), interval=0) == "ready"
    assert next(values) == "later"  # polling stopped at the first truthy value


@pytest.mark.parametrize("wait", [_sync, _async])
def test_times_out_naming_what_it_waited_for(wait) -> None:
    polls = itertools.count()
    with pytest.raises(AssertionError, match=r"^timed out after 0\.1 s waiting for 'the moon'$"):
        wait(lambda: next(polls) < 0, timeout=0.1, interval=0.01, what="the moon")
    assert next(polls) > 2  # it polled until the deadline
