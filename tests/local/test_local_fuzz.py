"""Arbitrary JSON in the request bodies the OpenAPI document does not cover (or covers loosely): never a 5xx."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def h(server):
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as client:
        yield client


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "name": json_values,
            "memory_limit": json_values | st.sampled_from(["1g", "4g"]),
            "expires_after": json_values | st.fixed_dictionaries({"anchor": json_values, "minutes": json_values}),
            "file_ids": json_values,
            "network_policy": json_values,
            "skills": json_values,
        },
    )
)
def test_create_container_bodies(h, body):
    r = h.post("/containers", json=body)
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        h.delete(f"/containers/{r.json()['id']}")


@pytest.fixture(scope="module")
def live_container(h):
    cid = h.post("/containers", json={"name": "fuzz"}).json()["id"]
    yield cid
    h.delete(f"/containers/{cid}")


@FUZZ
@given(data=st.data())
def test_response_bodies(h, live_container, data):
    container = (
        st.just(live_container)
        | st.fixed_dictionaries(
            {"type": st.just("auto")}, optional={"memory_limit": json_values, "file_ids": json_values}
        )
        | json_values
    )
    tool = st.fixed_dictionaries({"type": st.just("code_interpreter") | json_values, "container": container})
    body = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "model": json_values | st.just("cellbox-local"),
                "input": json_values | st.sampled_from(["print(1)", "```python\n1/0\n```", "x"]),
                "include": json_values | st.just(["code_interpreter_call.outputs"]),
                "stream": json_values,
                "tools": json_values | st.lists(tool, max_size=2),
            },
        )
    )
    r = h.post("/responses", json=body)
    event(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    created = r.json()["output"][0]["container_id"] if r.status_code == 200 else live_container
    if created != live_container:
        h.delete(f"/containers/{created}")
