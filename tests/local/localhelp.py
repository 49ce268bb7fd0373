"""Helpers the local server's test modules share (tests/local is on the import path; conftest is not importable)."""

from __future__ import annotations

import os
from typing import Any

import openai

from cellbox.local.testing import RunningServer


def sdk(server: RunningServer, **options: Any) -> openai.OpenAI:
    """The official SDK against `server`, validating every answer strictly, with no retries of its own."""
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url, api_key=server.token, _strict_response_validation=True, **options)


def respond(client: openai.OpenAI, container_id: str, code: str, **options: Any) -> Any:
    """A Response to running `code` in the container, with the calls' outputs included."""
    return client.responses.create(
        model="cellbox-local",
        input=code,
        tools=[{"type": "code_interpreter", "container": container_id}],
        include=["code_interpreter_call.outputs"],
        **options,
    )


def logs_of(response: Any) -> str:
    """The logs of a Response's first code_interpreter call."""
    call = next(item for item in response.output if item.type == "code_interpreter_call")
    return "".join(o.logs for o in call.outputs or [] if o.type == "logs")


def run_logs(client: openai.OpenAI, container_id: str, code: str, **options: Any) -> str:
    """Runs `code` in the container; its logs."""
    return logs_of(respond(client, container_id, code, **options))


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (a container's folder names its jail)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found
