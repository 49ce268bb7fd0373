"""The request budget: the container endpoints get at most so many requests a minute from everything sharing a
client, and a 429's Retry-After holds them all, not only the request that met it."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from cellbox.api import Client, ConfigurationError
from cellbox.api.budget import DOCUMENTED_PER_MINUTE, RequestBudget
from cellbox.api.config import load_settings


def test_a_budget_lets_so_many_through_a_window_then_says_how_long_to_wait() -> None:
    budget = RequestBudget(3, window=0.5)
    slots = [budget.take() for _ in range(3)]
    assert all(wait == 0.0 and slot is not None for wait, slot in slots)
    assert budget.spare() == 0 and budget.sent_in_last_minute() == 3
    wait, slot = budget.take()
    assert 0.3 < wait <= 0.5 and slot is None
    time.sleep(0.2)
    budget.answered(slots[0][1])  # answered late: its place is kept a window after its answer
    time.sleep(wait - 0.2 + 0.01)
    assert budget.spare() == 2  # the other two left the window; the late one holds its place
    assert budget.take()[0] == 0.0 and budget.spare() == 1
    budget.hold(0.3)
    assert budget.spare() == 0 and 0.2 < budget.take()[0] <= 0.3
    unbounded = RequestBudget(None)
    assert all(unbounded.take()[0] == 0.0 for _ in range(1000)) and unbounded.spare() > 1000


def _client(answer, **settings) -> Client:
    return Client(
        settings=load_settings(base_url="http://api.test/v1", api_key="k", **settings),
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
    )


def test_sharing_threads_stay_within_the_budget_together(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    with _client(answer, requests_per_minute="4") as client:
        client.budget.window = 0.6  # a short minute
        threads = [threading.Thread(target=lambda: client.containers.list_page(limit=1)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(sent) == 8
    # Any window holds at most four of them: the fifth went once the first had left the window.
    assert all(later - first >= 0.55 for first, later in zip(sent, sent[4:], strict=False)), sent


def test_a_429_holds_every_request_to_the_containers_until_it_says() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0.4"}, json={"error": {"message": "slow down"}})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json={"object": "list", "data": [], "has_more": False}))

    with _client(answer) as client:
        started = time.monotonic()
        client.containers.list_page(limit=1)  # met the 429, waited, sent again
        assert time.monotonic() - started >= 0.35
        client.budget.hold(0.3)  # as if another thread had just met one
        started = time.monotonic()
        client.containers.list_page(limit=1)
        assert time.monotonic() - started >= 0.25


def test_the_documented_limit_is_the_default_and_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(settings=load_settings(base_url="https://api.openai.com/v1", api_key="k")) as openai:
        assert DOCUMENTED_PER_MINUTE["openai"] == 100 and openai.budget.per_minute == 90  # room for clock skew
    with Client(settings=load_settings(base_url="http://127.0.0.1:9/v1", api_key="k")) as local:
        assert local.budget.per_minute is None
    monkeypatch.setenv("CELLBOX_REQUESTS_PER_MINUTE", "30")
    with Client("https://api.openai.com/v1", api_key="k") as configured:
        assert configured.budget.per_minute == 30
    monkeypatch.setenv("CELLBOX_REQUESTS_PER_MINUTE", "lots")
    with pytest.raises(ConfigurationError, match="requests_per_minute must be a whole number from 1, got 'lots'"):
        load_settings()
