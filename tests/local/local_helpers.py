"""Helpers shared by the local server tests (a module of its own: conftest modules are not importable)."""

from __future__ import annotations

import openai


def run(client: openai.OpenAI, container_id: str, code: str, include: bool = True):
    """Runs code through /v1/responses; returns (code_interpreter_call, message)."""
    response = client.responses.create(
        model="cellbox-local",
        input=code,
        tools=[{"type": "code_interpreter", "container": container_id}],
        include=["code_interpreter_call.outputs"] if include else [],
    )
    call, message = response.output
    return call, message


def logs(call) -> str:
    return "".join(o.logs for o in call.outputs or [] if o.type == "logs")
