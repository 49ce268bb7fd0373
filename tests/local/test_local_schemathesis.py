"""Property-based requests generated from containers_openapi.yaml never make the server fail (no 5xx)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from cellbox.local.testing import running_server

# A copy of shared/reference/containers_openapi.yaml (the Containers part of OpenAI's OpenAPI document), kept in
# the repository so that the test runs wherever the code does; without it the module fails to load.
SPEC = Path(__file__).with_name("containers_openapi.yaml")
if not SPEC.is_file():
    raise FileNotFoundError(f"{SPEC} is missing: copy shared/reference/containers_openapi.yaml there")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, starts_processes):
    # Quick expiry so that the many containers the fuzzer creates do not keep kernels around for long.
    with running_server(tmp_path_factory.mktemp("fuzz"), pool_size=1, seconds_per_minute=0.5) as srv:
        yield srv
        with httpx.Client(base_url=srv.base_url, headers=srv.headers) as h:
            for c in h.get("/containers", params={"limit": 100}).json()["data"]:
                h.delete(f"/containers/{c['id']}")


schema = schemathesis.openapi.from_path(SPEC)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors(case, fuzz_server):
    case.call_and_validate(base_url=fuzz_server.base_url, headers=fuzz_server.headers, checks=[not_a_server_error])
