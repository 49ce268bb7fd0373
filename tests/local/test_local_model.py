"""The cellbox-local model's manners without quirks: tool_choice, max_tool_calls, parallel_tool_calls, and the
request fields it knows, honours, echoes or refuses."""

from __future__ import annotations

import pytest
from localhelp import respond


def _kinds(response) -> list[str]:
    return [item.type for item in response.output]


def test_tool_choice_none_replies_without_running(client, container, run, logs):
    response = respond(client, container.id, "ran = True", tool_choice="none")
    assert _kinds(response) == ["message"]
    assert response.output_text == 'No code was run: tool_choice is "none".'
    assert response.tool_choice == "none"
    assert logs(run(client, container.id, "print('ran' in globals())")[0]) == "False\n"


@pytest.mark.parametrize(
    "choice",
    [
        "auto",
        "required",
        {"type": "code_interpreter"},
        {"type": "allowed_tools", "mode": "required", "tools": [{"type": "code_interpreter"}]},
    ],
)
def test_tool_choices_that_allow_the_call_run_the_code(client, container, choice):
    response = respond(client, container.id, "print('ran')", tool_choice=choice)
    assert _kinds(response) == ["code_interpreter_call", "message"]
    assert response.output[0].outputs[0].logs == "ran\n"


def test_allowed_tools_without_code_interpreter_makes_no_call(client, container):
    choice = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]}
    assert _kinds(respond(client, container.id, "1", tool_choice=choice)) == ["message"]


def test_a_tool_choice_not_in_tools_is_400(http, container):
    body = {
        "model": "m",
        "input": "1",
        "tools": [{"type": "code_interpreter", "container": container.id}],
        "tool_choice": {"type": "file_search"},
    }
    r = http.post("/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"
    body["tool_choice"] = "sometimes"
    assert http.post("/responses", json=body).json()["error"]["param"] == "tool_choice"


def test_max_tool_calls_and_parallel_tool_calls_are_echoed(client, container):
    response = respond(client, container.id, "1", max_tool_calls=1, parallel_tool_calls=False)
    assert (response.max_tool_calls, response.parallel_tool_calls) == (1, False)
    assert _kinds(response) == ["code_interpreter_call", "message"]
    assert respond(client, container.id, "1").parallel_tool_calls is True


def test_max_tool_calls_0_runs_nothing_and_says_so(client, container, run, logs):
    response = respond(client, container.id, "open('ran.txt', 'w').write('ran')", max_tool_calls=0)
    assert response.max_tool_calls == 0 and _kinds(response) == ["message"]
    assert response.output_text == "No code was run: max_tool_calls is 0."
    assert logs(run(client, container.id, "import os; print(os.path.exists('ran.txt'))")[0]).strip() == "False"


@pytest.mark.parametrize("value", [-1, "1", True, 1.5])
def test_max_tool_calls_must_be_a_whole_number(http, container, value):
    body = {"model": "m", "input": "1", "tools": [{"type": "code_interpreter", "container": container.id}]}
    r = http.post("/responses", json={**body, "max_tool_calls": value})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tool_calls"


def test_every_documented_parameter_is_accepted(client, container):
    """What the SDK can send (response_create_params.py) is never refused as unknown."""
    response = client.responses.create(
        model="cellbox-local",
        input=[{"role": "user", "content": "print('all of them')"}],
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=["code_interpreter_call.outputs"],
        instructions="Run the code.",
        max_output_tokens=1000,
        max_tool_calls=1,
        metadata={"purpose": "test"},
        parallel_tool_calls=False,
        reasoning={"effort": "low"},
        safety_identifier="user-1",
        prompt_cache_key="k",
        prompt_cache_retention="24h",
        service_tier="auto",
        store=True,
        temperature=0.2,
        text={"format": {"type": "text"}},
        tool_choice={"type": "code_interpreter"},
        top_logprobs=0,
        top_p=0.9,
        truncation="auto",
        user="someone",
        background=False,
        context_management=[{"type": "compaction", "compact_threshold": 1000}],
        stream_options=None,
    )
    assert response.output_text == "all of them\n"
    assert (response.instructions, response.temperature, response.top_p) == ("Run the code.", 0.2, 0.9)
    assert response.metadata == {"purpose": "test"} and response.reasoning.effort == "low"
    assert (response.truncation, response.user, response.max_output_tokens) == ("auto", "someone", 1000)


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"foo": 1}, "foo", "unknown_parameter"),
        ({"tool_choise": "auto"}, "tool_choise", "unknown_parameter"),
        ({"conversation": "conv_1"}, "conversation", "unsupported_parameter"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
        ({"text": {"format": {"type": "json_object"}}}, "text.format", "unsupported_parameter"),
    ],
)
def test_unknown_and_unsupported_response_fields(http, container, extra, param, code):
    body = {"model": "m", "input": "1", "tools": [{"type": "code_interpreter", "container": container.id}]}
    r = http.post("/responses", json={**body, **extra})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    if code == "unknown_parameter":
        assert error["message"] == f"Unknown parameter: '{param}'."


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/containers", {"name": "x", "nmae": "y"}, "nmae"),
        ("/containers", {"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 5, "s": 1}},
         "expires_after.s"),
        ("/containers/{cid}/files", {"file_id": "file-x", "path": "/mnt/data/x"}, "path"),
        ("/responses", {"model": "m", "input": "1",
                        "tools": [{"type": "code_interpreter", "container": "{cid}", "extra": 1}]}, "tools[].extra"),
    ],
)  # fmt: skip
def test_unknown_fields_of_every_json_body_are_refused(http, container, path, body, param):
    text = str(body).replace("'", '"').replace("{cid}", container.id)
    r = http.post(path.replace("{cid}", container.id), content=text, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, "unknown_parameter")


def test_unknown_multipart_fields_are_refused(http, container):
    r = http.post("/files", files={"file": ("a.txt", b"a"), "purpose": (None, "user_data"), "colour": (None, "red")})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "colour")
    r = http.post(f"/containers/{container.id}/files", files={"file": ("a.txt", b"a"), "mode": (None, "0644")})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "mode")
    # The Files API's documented expires_after is accepted (and ignored: local files never expire).
    r = http.post(
        "/files",
        files={
            "file": ("a.txt", b"a"),
            "purpose": (None, "user_data"),
            "expires_after[anchor]": (None, "created_at"),
            "expires_after[seconds]": (None, "3600"),
        },
    )
    assert r.status_code == 200, r.text
