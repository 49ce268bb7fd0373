"""The `cellbox-local` model behind `POST /v1/responses`: it runs the code it is given, deterministically.

The code is the first fenced python block of the (last user) input, else the whole input text. The answer is a
standard Response (or, with `stream: true`, the server-sent events that build one): a `code_interpreter_call`
item (outputs only when `include` asks for `code_interpreter_call.outputs`, like the cloud) and an assistant
message repeating the logs, with a `container_file_citation` for each file the code wrote. An exception in the
code is not a failed call: as in the cloud, the call completes and the traceback is in its logs.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

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
    stream: bool
    body: dict


def parse(body: object) -> Request:
    if not isinstance(body, dict):
        raise errors.invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.missing("model")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise errors.invalid("Invalid 'stream': expected a boolean.", "stream")
    include = body.get("include") or []
    if not isinstance(include, list):
        raise errors.invalid("`include` must be a list of strings.", "include")
    container = _container(body.get("tools"))
    return Request(model, extract_code(_input_text(body.get("input"))), container, OUTPUTS in include, stream, body)


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


@dataclass
class Ids:
    """The ids of one response and its two items, fixed before it runs so that streamed events agree."""

    response: str = field(default_factory=lambda: _id("resp_"))
    call: str = field(default_factory=lambda: _id("ci_"))
    message: str = field(default_factory=lambda: _id("msg_"))
    created_at: int = field(default_factory=lambda: int(time.time()))


def call_item(request: Request, ids: Ids, container_id: str, result: Execution | None) -> dict:
    """The code_interpreter_call item; `result` None while the code has not run yet."""
    outputs: list[dict] | None = None
    if result is not None and request.include_outputs:
        outputs = [{"type": "logs", "logs": result.logs}] if result.logs else []
        outputs += [{"type": "image", "url": url} for url in result.images]
    return {
        "id": ids.call,
        "type": "code_interpreter_call",
        "status": result.status if result is not None else "in_progress",
        "code": request.code if result is not None else "",
        "container_id": container_id,
        "outputs": outputs,
    }


def message_item(ids: Ids, container_id: str, result: Execution | None, new_files: list[dict]) -> dict:
    content = []
    if result is not None:
        text, annotations = _message(container_id, result, new_files)
        content = [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]
    return {
        "id": ids.message,
        "type": "message",
        "role": "assistant",
        "status": "completed" if result is not None else "in_progress",
        "content": content,
    }


def envelope(request: Request, ids: Ids, container_id: str, output: list[dict], status: str) -> dict:
    body = request.body
    tools = [dict(tool) for tool in body.get("tools", []) if isinstance(tool, dict)]
    for tool in tools:
        if tool.get("type") == "code_interpreter":
            tool["container"] = container_id
    return {
        "id": ids.response,
        "object": "response",
        "created_at": ids.created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": request.model,
        "output": output,
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


def build(request: Request, container_id: str, result: Execution, new_files: list[dict]) -> dict:
    ids = Ids()
    output = [call_item(request, ids, container_id, result), message_item(ids, container_id, result, new_files)]
    return envelope(request, ids, container_id, output, "completed")


async def stream(
    request: Request, container_id: str, run: Callable[[], Awaitable[tuple[Execution, list[dict]]]]
) -> AsyncIterator[bytes]:
    """Server-sent events of one run, in the order the cloud sends them for a code_interpreter call."""
    ids = Ids()
    counter = itertools.count()

    def event(kind: str, **fields: object) -> bytes:
        data = json.dumps({"type": kind, "sequence_number": next(counter), **fields})
        return f"event: {kind}\ndata: {data}\n\n".encode()

    pending = envelope(request, ids, container_id, [], "in_progress")
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    call = {"output_index": 0, "item_id": ids.call}
    yield event("response.output_item.added", output_index=0, item=call_item(request, ids, container_id, None))
    yield event("response.code_interpreter_call.in_progress", **call)
    yield event("response.code_interpreter_call_code.delta", delta=request.code, **call)
    yield event("response.code_interpreter_call_code.done", code=request.code, **call)
    yield event("response.code_interpreter_call.interpreting", **call)
    try:
        result, new_files = await run()
    except errors.APIError as exc:  # the status line is long gone: the failure travels as events
        yield event("error", code=exc.code, message=exc.message, param=exc.param)
        failed = envelope(request, ids, container_id, [], "failed")
        failed["error"] = {"code": exc.code or "server_error", "message": exc.message}
        yield event("response.failed", response=failed)
        return
    yield event("response.code_interpreter_call.completed", **call)
    yield event("response.output_item.done", output_index=0, item=call_item(request, ids, container_id, result))
    message = message_item(ids, container_id, result, new_files)
    part = message["content"][0]
    at = {"item_id": ids.message, "output_index": 1}
    yield event("response.output_item.added", output_index=1, item=message_item(ids, container_id, None, []))
    yield event("response.content_part.added", content_index=0, part={**part, "text": "", "annotations": []}, **at)
    yield event("response.output_text.delta", content_index=0, delta=part["text"], logprobs=[], **at)
    for index, annotation in enumerate(part["annotations"]):
        yield event(
            "response.output_text.annotation_added",
            content_index=0,
            annotation_index=index,
            annotation=annotation,
            **at,
        )
    yield event("response.output_text.done", content_index=0, text=part["text"], logprobs=[], **at)
    yield event("response.content_part.done", content_index=0, part=part, **at)
    yield event("response.output_item.done", output_index=1, item=message)
    output = [call_item(request, ids, container_id, result), message]
    yield event("response.completed", response=envelope(request, ids, container_id, output, "completed"))


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
