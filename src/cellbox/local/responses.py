"""The `cellbox-local` model behind `POST /v1/responses`: it runs the code it is given, deterministically.

The code is the first fenced python block of the (last user) input, else the whole input text. The answer is a
standard Response: a `code_interpreter_call` item (outputs only when `include` asks for
`code_interpreter_call.outputs`, like the cloud) and an assistant message repeating the logs, with a
`container_file_citation` for each file the code wrote. An exception in the code is not a failed call: as in
the cloud, the call completes and the traceback is in its logs.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from . import errors
from .kernel import Execution

OUTPUTS = "code_interpreter_call.outputs"
_FENCE = re.compile(r"```[ \t]*(?:python3?|py|ipython)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass
class Request:
    model: str
    code: str
    container: str | dict  # a container id, or {"type": "auto", ...}
    include_outputs: bool
    body: dict


def parse(body: object) -> Request:
    if not isinstance(body, dict):
        raise errors.invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.missing("model")
    if body.get("stream"):
        raise errors.invalid("Streaming is not supported by the local server; leave `stream` unset.", "stream")
    include = body.get("include") or []
    if not isinstance(include, list):
        raise errors.invalid("`include` must be a list of strings.", "include")
    container = _container(body.get("tools"))
    return Request(model, extract_code(_input_text(body.get("input"))), container, OUTPUTS in include, body)


def _container(tools: object) -> str | dict:
    if not isinstance(tools, list):
        raise errors.invalid("The cellbox-local model runs code only: give it a `code_interpreter` tool.", "tools")
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "code_interpreter":
            container = tool.get("container")
            if isinstance(container, str) and container:
                return container
            if isinstance(container, dict) and container.get("type") == "auto":
                return container
            raise errors.invalid(
                'The code_interpreter tool needs a `container`: a container id or {"type": "auto"}.',
                "tools.container",
            )
    raise errors.invalid("The cellbox-local model runs code only: give it a `code_interpreter` tool.", "tools")


def _input_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        # The text of the last user message, as a model would read its latest instruction.
        for item in reversed(value):
            if isinstance(item, dict) and item.get("role", "user") == "user" and "content" in item:
                return _content_text(item["content"])
    raise errors.invalid("`input` must be a string or a list of messages with a user message.", "input")


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") in ("input_text", "text", "output_text")
        )
    raise errors.invalid("A message's `content` must be a string or a list of parts.", "input")


def extract_code(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def build(request: Request, container_id: str, result: Execution, new_files: list[dict]) -> dict:
    outputs: list[dict] = []
    if result.logs:
        outputs.append({"type": "logs", "logs": result.logs})
    outputs += [{"type": "image", "url": url} for url in result.images]
    call = {
        "id": _id("ci_"),
        "type": "code_interpreter_call",
        "status": result.status,
        "code": request.code,
        "container_id": container_id,
        "outputs": outputs if request.include_outputs else None,
    }
    text, annotations = _message(container_id, result, new_files)
    message = {
        "id": _id("msg_"),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}],
    }
    body = request.body
    tools = [dict(tool) for tool in body.get("tools", []) if isinstance(tool, dict)]
    for tool in tools:
        if tool.get("type") == "code_interpreter":
            tool["container"] = container_id
    return {
        "id": _id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": request.model,
        "output": [call, message],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _message(container_id: str, result: Execution, new_files: list[dict]) -> tuple[str, list[dict]]:
    text = result.logs
    annotations = []
    for row in new_files:
        filename = row["path"].rsplit("/", 1)[-1]
        link = f"sandbox:/mnt/data/{row['path']}"
        if text and not text.endswith("\n"):
            text += "\n"
        start = len(text) + len(filename) + 3
        text += f"[{filename}]({link})\n"
        annotations.append(
            {
                "type": "container_file_citation",
                "container_id": container_id,
                "file_id": row["id"],
                "filename": filename,
                "start_index": start,
                "end_index": start + len(link),
            }
        )
    return text, annotations
