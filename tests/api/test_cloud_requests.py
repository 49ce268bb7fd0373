"""What the client does for the real services: optional request fields a backend refuses are dropped (once, and
remembered), responses can be retrieved, cancelled and deleted, and configuration that OCI needs is checked
before any request (docs/CLOUD.md)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import httpx
import pytest

from cellbox.api import AsyncClient, Client, ConfigurationError, load_settings
from cellbox.api import config as config_module
from cellbox.api.config import RegionWarning

OPTIONAL = ("tool_choice", "max_tool_calls", "parallel_tool_calls", "store", "background", "reasoning")
COMPLETED = {"id": "resp_1", "object": "response", "status": "completed", "output": []}


class Refusing:
    """A Responses API that refuses some body fields with a 400, as a backend lacking them would."""

    def __init__(self, refuse: dict[str, dict]) -> None:
        self.refuse = refuse  # field -> error body answered when it is sent
        self.bodies: list[dict] = []
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        if request.url.path != "/v1/responses":
            return httpx.Response(200, json={**COMPLETED, "status": "cancelled"})
        body = json.loads(request.content)
        self.bodies.append(body)
        for field, error in self.refuse.items():
            if field in body:
                return httpx.Response(400, json=error)
        return httpx.Response(200, json=COMPLETED)


def create(client: Client) -> None:
    client.responses.create(
        model="m",
        input="x",
        container="cntr_1",
        tool_choice={"type": "code_interpreter"},
        max_tool_calls=1,
        parallel_tool_calls=False,
        store=False,
        reasoning_effort="low",
        optional=OPTIONAL,
    )


def unknown(name: str) -> dict:
    message = f"Unknown parameter: '{name}'."
    return {"error": {"message": message, "type": "invalid_request_error", "param": name, "code": "unknown_parameter"}}


def test_a_refused_field_is_dropped_once_and_remembered() -> None:
    api = Refusing({"max_tool_calls": unknown("max_tool_calls")})
    with Client("http://api.test/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(api))) as c:
        create(c)
        assert len(api.bodies) == 2 and "max_tool_calls" in api.bodies[0] and "max_tool_calls" not in api.bodies[1]
        assert api.bodies[1]["tool_choice"] == {"type": "code_interpreter"} and api.bodies[1]["store"] is False
        assert api.bodies[1]["reasoning"] == {"effort": "low"} and api.bodies[1]["parallel_tool_calls"] is False
        create(c)  # remembered: no second round trip
        assert len(api.bodies) == 3 and "max_tool_calls" not in api.bodies[2]
        assert c.refused_parameters == {("/responses", "m"): {"max_tool_calls"}}
        c.responses.create(model="other", input="x", max_tool_calls=1, optional=["max_tool_calls"])
        assert "max_tool_calls" in api.bodies[3]  # another model may take it


@pytest.mark.parametrize(
    "error",
    [
        {"code": "400", "message": "Unsupported parameter: reasoning is not supported with this model."},  # OCI shape
        {"error": {"message": "Invalid value for 'reasoning.effort'.", "param": "reasoning.effort"}},
        {"error": {"message": "Unrecognized request argument supplied: reasoning"}},
        # gpt-5 at `minimal` with a hosted tool: the param named is `tools`, but the effort is what can go.
        {
            "error": {
                "message": "The following tools cannot be used with reasoning.effort 'minimal': code_interpreter.",
                "type": "invalid_request_error",
                "param": "tools",
                "code": None,
            }
        },
    ],
)
def test_refusals_are_read_from_param_or_message(error: dict) -> None:
    api = Refusing({"reasoning": error})
    with Client("http://api.test/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(api))) as c:
        create(c)
    assert len(api.bodies) == 2 and "reasoning" not in api.bodies[1]


def test_other_400s_and_required_fields_are_not_dropped() -> None:
    vague = {"error": {"message": "Something about max_tool_calls went wrong.", "param": None}}
    api = Refusing({"max_tool_calls": vague, "model": unknown("model")})
    with Client("http://api.test/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(api))) as c:
        with pytest.raises(Exception, match="max_tool_calls went wrong"):
            create(c)
        assert len(api.bodies) == 1
        with pytest.raises(Exception, match="Unknown parameter: 'model'"):
            c.responses.create(model="m", input="x")  # not optional: the error stands
    assert len(api.bodies) == 2


@pytest.mark.asyncio
async def test_the_async_client_drops_and_remembers_too() -> None:
    api = Refusing({"background": unknown("background"), "store": unknown("store")})
    transport = httpx.MockTransport(api)
    async with AsyncClient("http://api.test/v1", api_key="k", http_client=httpx.AsyncClient(transport=transport)) as c:
        await c.responses.create(model="m", input="x", background=True, store=True, optional=OPTIONAL)
        await c.responses.create(model="m", input="x", background=True, store=True, optional=OPTIONAL)
    assert [sorted(set(b) & {"background", "store"}) for b in api.bodies] == [
        ["background", "store"],
        ["store"],
        [],
        [],
    ]


def test_retrieve_cancel_and_delete_a_response() -> None:
    api = Refusing({})
    with Client("http://api.test/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(api))) as c:
        assert c.responses.retrieve("resp_1").id == "resp_1"
        assert c.responses.cancel("resp_1").status == "cancelled"
        c.responses.delete("resp_1")
        with pytest.raises(ValueError, match="response_id must be an id"):
            c.responses.retrieve("../containers")
    assert api.seen == [
        ("GET", "/v1/responses/resp_1"),
        ("POST", "/v1/responses/resp_1/cancel"),
        ("DELETE", "/v1/responses/resp_1"),
    ]


OCI_URL = "https://inference.generativeai.us-chicago-1.oci.oraclecloud.com/openai/v1"


def test_oci_without_a_project_is_a_configuration_error_before_any_request() -> None:
    sent: list[httpx.Request] = []
    http = httpx.Client(transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)))
    with pytest.raises(ConfigurationError, match="CELLBOX_PROJECT"):
        Client(OCI_URL, api_key="k", http_client=http)
    assert sent == []
    with Client(OCI_URL, api_key="k", project="ocid1.generativeaiproject.oc1..x") as client:
        assert client._headers["OpenAI-Project"] == "ocid1.generativeaiproject.oc1..x"


def test_an_undocumented_oci_region_warns_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(config_module, "_warned_regions", set())
    monkeypatch.setenv("CELLBOX_OCI_REGION", "us-chicago-1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings()  # documented: no warning
    monkeypatch.setenv("CELLBOX_OCI_REGION", "eu-amsterdam-1")
    with pytest.warns(RegionWarning, match=r"'eu-amsterdam-1'.*us-ashburn-1"):
        load_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings()  # once per region


def test_reasoning_effort_is_configured_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text('reasoning_effort = "high"\n')
    assert load_settings(config_file=toml).reasoning_effort == "high"
    monkeypatch.setenv("CELLBOX_REASONING_EFFORT", "minimal")
    settings = load_settings(config_file=toml)
    assert settings.reasoning_effort == "minimal" and settings.describe()["reasoning_effort"] == "minimal"
    for effort in ("xhigh", "max"):  # the SDK's newest efforts
        monkeypatch.setenv("CELLBOX_REASONING_EFFORT", effort)
        assert load_settings(config_file=toml).reasoning_effort == effort
    monkeypatch.setenv("CELLBOX_REASONING_EFFORT", "extreme")
    with pytest.raises(ConfigurationError, match=r"unknown reasoning effort 'extreme'.*CELLBOX_REASONING_EFFORT"):
        load_settings(config_file=toml)
