"""`--rate-limit N/min`: the container endpoints answer 429 with Retry-After past N requests a minute per key, as
the cloud does; cellbox's client waits them out once for everyone sharing it, or stays under its budget and meets
none."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from localhelp import sdk

import cellbox
from cellbox.api import Client
from cellbox.api.budget import RequestBudget
from cellbox.api.config import load_settings
from cellbox.local.testing import running_server


@pytest.mark.integration
def test_past_the_limit_the_container_endpoints_answer_429_as_the_cloud_does(tmp_path):
    # A minute lasts 2 s: five container requests every 2 s.
    with running_server(tmp_path / "data", pool_size=0, rate_limit="5/min", seconds_per_minute=2) as srv:
        with sdk(srv) as client:
            for _ in range(5):
                client.containers.list(limit=1)
            with pytest.raises(openai.RateLimitError) as refused:
                client.containers.list(limit=1)
            assert refused.value.code == "rate_limit_exceeded" and "limit 5 a minute" in refused.value.message
            assert 1 <= int(refused.value.response.headers["retry-after"]) <= 2
            with pytest.raises(openai.BadRequestError):  # other endpoints are not counted
                client.responses.create(model="cellbox-local", input="1")
            time.sleep(2.1)
            client.containers.list(limit=1)  # room again a minute later

        statuses: list[int] = []
        http = httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
        with Client(srv.base_url, api_key=srv.token, http_client=http) as ours:
            time.sleep(2.1)
            started = time.monotonic()
            for _ in range(7):
                ours.containers.list_page(limit=1)  # the 6th meets a 429 and waits it out
            assert statuses.count(429) == 1 and time.monotonic() - started >= 0.9
            statuses.clear()
            time.sleep(2.1)
            ours.budget = RequestBudget(4, window=2.0)  # a budget under the service's: no 429 at all
            for _ in range(12):
                ours.containers.list_page(limit=1)
            assert 429 not in statuses and len(statuses) == 12


@pytest.mark.integration
def test_a_pools_parts_stay_within_one_budget_together(tmp_path):
    # Six parts at once against a service allowing 12 container requests a (3-second) minute: together they stay
    # under it, so none meets a 429, and every part runs.
    with running_server(tmp_path / "data", pool_size=2, rate_limit="12/min", seconds_per_minute=3) as srv:
        statuses: list[int] = []
        seen: list[str] = []

        def note(r: httpx.Response) -> None:
            statuses.append(r.status_code)
            seen.append(f"{time.monotonic():.2f} {r.status_code} {r.request.method} {r.request.url.path}")

        http = httpx.Client(timeout=120, event_hooks={"response": [note]})
        settings = load_settings(base_url=srv.base_url, api_key=srv.token, model="cellbox-local")
        with Client(settings=settings, http_client=http) as client:
            client.budget = RequestBudget(10, window=3.0)
            pool = cellbox.Pool(6, name="budget", client=client, show=False)
            try:
                runs = pool.run("import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.25)")
                assert [part.stdout for part in runs] == ["".join(f"{i}\n" for i in range(8))] * 6
            finally:
                pool.delete()
        assert 429 not in statuses, "\n".join(seen)
