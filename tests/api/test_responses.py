"""Responses with the `code_interpreter` tool: the body sent, and typed access to what comes back."""

from __future__ import annotations

import pytest
from runboth import Both

from cellbox.api import (
    CodeInterpreterCall,
    ContainerFileCitation,
    ImageOutput,
    LogsOutput,
    Response,
    ValidationError,
)


def test_create_binds_the_tool_to_the_container(both: Both) -> None:
    box = both(lambda c: c.containers.create("runner"))
    both.server.bodies.clear()
    response = both(
        lambda c: c.responses.create(
            model="gpt-test", input="print('hello')", container=box.id, instructions="run it", tool_choice="required"
        )
    )
    assert both.server.bodies == [
        {
            "model": "gpt-test",
            "input": "print('hello')",
            "tools": [{"type": "code_interpreter", "container": box.id}],
            "include": ["code_interpreter_call.outputs"],
            "instructions": "run it",
            "tool_choice": "required",
        }
    ]
    assert isinstance(response, Response) and response.status == "completed" and response.model == "gpt-test"
    [call] = response.code_interpreter_calls
    assert isinstance(call, CodeInterpreterCall)
    assert call.container_id == box.id and call.code == "print('hello')" and call.status == "completed"
    assert call.logs == "hello\nworld\n" and call.images == ["https://example.invalid/plot.png"]
    assert [type(o) for o in call.outputs] == [LogsOutput, LogsOutput, ImageOutput]
    assert response.output_text == "Saved the result to result.csv."
    [citation] = response.container_file_citations  # the url_citation is not one
    assert isinstance(citation, ContainerFileCitation)
    assert (citation.container_id, citation.file_id, citation.filename) == (box.id, "cfile_result", "result.csv")
    assert response.output_text[citation.start_index : citation.end_index] == "result.csv"
    assert response.usage == {"input_tokens": 1, "output_tokens": 1}  # unknown field, kept
    assert response.to_dict()["output"][0]["type"] == "code_interpreter_call"


def test_auto_container_extra_tools_and_input_items(both: Both) -> None:
    items = [{"role": "user", "content": "x = 1"}]
    both(
        lambda c: c.responses.create(
            model="m",
            input=items,
            container={"type": "auto", "memory_limit": "4g"},
            tools=[{"type": "web_search"}],
            include=None,
            extra_body={"store": False},
        )
    )
    assert both.server.bodies[-1] == {
        "model": "m",
        "input": items,
        "tools": [
            {"type": "web_search"},
            {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}},
        ],
        "store": False,
    }


def test_without_outputs_included(both: Both) -> None:
    response = both(lambda c: c.responses.create(model="m", input="1", container="cntr_1", include=[]))
    [call] = response.code_interpreter_calls
    assert call.outputs is None and call.logs == "" and call.images == []


def test_model_comes_from_the_settings(both: Both, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_MODEL", "configured-model")
    client = both.make()
    try:
        both(lambda c: c.responses.create(input="1", container="cntr_1"), client)
    finally:
        both.close(client)
    assert both.server.bodies[-1]["model"] == "configured-model"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input": "1", "container": "cntr_1"}, "CELLBOX_MODEL"),
        ({"input": "1", "model": "m", "container": ""}, "container"),
        ({"input": "1", "model": "m", "container": {"type": "fixed"}}, "container"),
    ],
)
def test_bad_response_arguments(both: Both, kwargs, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        both(lambda c: c.responses.create(**kwargs))
    assert both.server.count() == 0


def test_records_read_a_response_without_output() -> None:
    response = Response.from_dict({"id": "resp_1", "output": None, "status": "failed"})
    assert response.code_interpreter_calls == [] and response.output_text == ""
    assert response.container_file_citations == []
