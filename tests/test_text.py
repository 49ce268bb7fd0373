"""Sizes, memory and time left read the same in Python as in the sidebar: both check `format_cases.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cellbox.api import MEMORY_LIMITS, Container
from cellbox.common import names, text

CASES: dict[str, Any] = json.loads((Path(__file__).parent / "format_cases.json").read_text())


def _container(status: str | None, expires_at: int | None) -> Container:
    data: dict[str, Any] = {"id": "cntr_case", "status": status}
    if expires_at is not None:  # the API says when it was last active and for how long it stays idle
        data |= {"last_active_at": expires_at - 60, "expires_after": {"anchor": "last_active_at", "minutes": 1}}
    return Container.from_dict(data)


def test_the_shared_constants_are_the_ones_python_uses() -> None:
    assert list(MEMORY_LIMITS) == CASES["memory_limits"]
    assert list(text.LIVE) == CASES["live_statuses"]


@pytest.mark.parametrize("case", CASES["size"], ids=lambda case: str(case["bytes"]))
def test_size(case: dict[str, Any]) -> None:
    assert text.size(case["bytes"]) == case["text"]


@pytest.mark.parametrize("case", CASES["memory"], ids=lambda case: str(case["limit"]))
def test_memory(case: dict[str, Any]) -> None:
    assert text.memory(case["limit"]) == case["text"]


@pytest.mark.parametrize("case", CASES["countdown"], ids=lambda case: str(case["seconds"]))
def test_countdown(case: dict[str, Any]) -> None:
    assert text.countdown(case["seconds"]) == case["text"]


@pytest.mark.parametrize("case", CASES["time_left"], ids=lambda case: f"{case['status']}-{case['now']}")
def test_time_left(case: dict[str, Any]) -> None:
    box = _container(case["status"], case["expires_at"])
    assert box.expires_at == case["expires_at"]
    assert text.seconds_left(box, case["now"]) == case["seconds"]
    assert text.time_left(box, case["now"]) == case["text"]


def test_every_kind_of_case_is_checked() -> None:
    kinds = {key for key in CASES if not key.startswith("_")}
    assert kinds == {"memory_limits", "live_statuses", "size", "memory", "countdown", "time_left", "container_name"}
    assert all(CASES[kind] for kind in kinds)


@pytest.mark.parametrize("case", CASES["container_name"], ids=lambda case: repr(case["name"])[:24])
def test_container_name(case: dict[str, Any]) -> None:
    assert names.container_name_problem(case["name"]) == case["problem"]
