"""POST /v1/responses requests, read and checked (the objects a Response is made of: items.py).

Every field the SDK can send (`openai/types/responses/response_create_params.py`) is known; what the local
model does with each:

- honoured: `model` (any name, echoed), `input`, `tools` (a `code_interpreter` tool is required; others are
  echoed and never called), `include` (`code_interpreter_call.outputs`), `stream`, `background`, `store`,
  `tool_choice`, `max_tool_calls`, `parallel_tool_calls` (the local model never makes parallel calls: its calls
  run one after another in the container's one kernel, which satisfies either value), `previous_response_id`
  (must name a stored response; the model reads only the latest input anyway, but an auto container is the
  active one a call in the chain used, as OpenAI documents: see `stored.StoredResponses.reusable`), `metadata`;
- echoed, with no effect on a deterministic model: `instructions`, `temperature`, `top_p`, `max_output_tokens`,
  `reasoning`, `truncation`, `user`, `safety_identifier`, `prompt_cache_key`, `prompt_cache_retention`,
  `service_tier`, `top_logprobs`, `text` (plain text format only);
- accepted and ignored: `stream_options`, `background_options`, `context_management`, `moderation`,
  `prompt_cache_options`, `access_programs`, `image`;
- refused with 400 `unsupported_parameter`: `conversation`, `prompt` (stored conversations and prompt templates
  do not exist locally), a `text.format` other than text.

Anything else is 400 `unknown_parameter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import errors
from ..emulation import models
from ..errors import refuse_unknown
from ..store import ids

OUTPUTS = "code_interpreter_call.outputs"
# --auto-containers-only: a service's refusal of a container id in the tool, in words of our own ([Inf]: OCI's, if
# it refuses, are not known).
ID_REFUSED = (
    'A container id is not supported in the code_interpreter tool here: use an auto container, {"type": "auto"}; '
    "a later response reuses it through previous_response_id."
)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py|ipython)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

FIELDS = (
    "model", "input", "tools", "include", "stream", "background", "store", "tool_choice", "max_tool_calls",
    "parallel_tool_calls", "previous_response_id", "metadata", "instructions", "temperature", "top_p",
    "max_output_tokens", "reasoning", "truncation", "user", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "service_tier", "top_logprobs", "text", "stream_options", "background_options",
    "context_management", "moderation", "prompt_cache_options", "access_programs", "image", "conversation", "prompt",
)  # fmt: skip
_UNSUPPORTED = {
    "conversation": "Conversations are not available on the local server: send the whole input with each request.",
    "prompt": "Prompt templates are not available on the local server: send the input itself.",
}
# Echoed fields and the JSON types the SDK's Response accepts for them (None is always accepted).
ECHOED: dict[str, tuple[type, ...]] = {
    "instructions": (str,),
    "temperature": (int, float),
    "top_p": (int, float),
    "max_output_tokens": (int,),
    "user": (str,),
    "safety_identifier": (str,),
    "prompt_cache_key": (str,),
    "top_logprobs": (int,),
    "metadata": (dict,),
    "previous_response_id": (str,),
}
_CHOICES = {
    "truncation": ("auto", "disabled"),
    "service_tier": ("auto", "default", "flex", "scale", "priority"),
    "prompt_cache_retention": ("in_memory", "24h"),
}


@dataclass
class Request:
    model: str
    code: str
    container: str | dict  # a container id, or {"type": "auto", ...}
    include_outputs: bool
    stream: bool
    background: bool
    store: bool
    may_call: bool  # what tool_choice allows: False for "none", or allowed_tools without code_interpreter
    max_tool_calls: int | None
    body: dict


def parse(body: object, *, unstored_background: str = "refused", container_ids: bool = True) -> Request:
    """The request in `body`; a background one with `store: false` is refused unless `unstored_background` is
    "temporary" (kept only for its run, see stored.py); a container id in the tool is refused unless
    `container_ids` (--auto-containers-only)."""
    if not isinstance(body, dict):
        raise errors.invalid("The request body must be a JSON object.")
    refuse_unknown(body, FIELDS)
    for name, message in _UNSUPPORTED.items():
        if body.get(name) is not None:
            raise errors.unsupported_parameter(name, message)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.missing("model")
    stream, background = flag(body, "stream", False), flag(body, "background", False)
    store = flag(body, "store", True)
    flag(body, "parallel_tool_calls", True)
    if background and not store and unstored_background != "temporary":
        raise errors.invalid("Background responses must be stored: `background: true` needs `store: true`.", "store")
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(item, str) for item in include):
        raise errors.invalid("`include` must be a list of strings.", "include")
    _check_echoed(body)
    tools = body.get("tools")
    container = _container(tools)
    if isinstance(container, str) and not container_ids:
        raise errors.unsupported_parameter("tools.container", ID_REFUSED)
    models.check_reasoning(model, body.get("reasoning"), tools)
    code = extract_code(_input_text(body.get("input")))
    return Request(
        model,
        code,
        container,
        OUTPUTS in include,
        stream,
        background,
        store,
        _may_call(body.get("tool_choice", "auto"), tools),  # type: ignore[arg-type]
        _max_tool_calls(body.get("max_tool_calls")),
        body,
    )


def flag(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise errors.invalid(f"Invalid '{name}': expected a boolean.", name)
    return value


def _check_echoed(body: dict) -> None:
    for name, kinds in ECHOED.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise errors.invalid(f"Invalid '{name}': expected {' or '.join(k.__name__ for k in kinds)}.", name)
    metadata = body.get("metadata") or {}
    if not all(isinstance(v, str) for v in metadata.values()) or len(metadata) > 16:
        raise errors.invalid("Invalid 'metadata': at most 16 string values.", "metadata")
    for name, allowed in _CHOICES.items():
        value = body.get(name)
        if value is not None and value not in allowed:
            raise errors.invalid(f"Invalid '{name}': expected one of {', '.join(allowed)}.", name)
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise errors.invalid("Invalid 'reasoning': expected an object.", "reasoning")
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise errors.invalid("Invalid 'text': expected an object.", "text")
        if (text.get("format") or {"type": "text"}).get("type") != "text":
            raise errors.unsupported_parameter(
                "text.format", "The cellbox-local model answers in plain text only: use text.format type 'text'."
            )


def _container(tools: object) -> str | dict:
    if not isinstance(tools, list):
        raise errors.invalid("The cellbox-local model runs code only: give it a `code_interpreter` tool.", "tools")
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "code_interpreter":
            refuse_unknown(tool, ("type", "container", "allowed_callers"), "tools[].")
            container = tool.get("container")
            if isinstance(container, str) and container:
                return container
            if isinstance(container, dict) and container.get("type") == "auto":
                refuse_unknown(container, ("type", "file_ids", "memory_limit", "network_policy"), "tools[].container.")
                return container
            raise errors.invalid(
                'The code_interpreter tool needs a `container`: a container id or {"type": "auto"}.',
                "tools.container",
            )
    raise errors.invalid("The cellbox-local model runs code only: give it a `code_interpreter` tool.", "tools")


def _may_call(choice: object, tools: list) -> bool:
    """Whether `tool_choice` lets the model call code_interpreter; a choice of a tool it lacks is a 400."""
    if choice in ("auto", "required"):
        return True
    if choice == "none":
        return False
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "code_interpreter":
            return True
        if kind == "allowed_tools" and choice.get("mode", "auto") in ("auto", "required"):
            allowed = choice.get("tools")
            if isinstance(allowed, list) and all(isinstance(t, dict) for t in allowed):
                return any(t.get("type") == "code_interpreter" for t in allowed)
        if isinstance(kind, str) and kind != "allowed_tools":
            names = {t.get("type") for t in tools if isinstance(t, dict)}
            if kind not in names:
                raise errors.invalid(f"Tool choice '{kind}' not found in 'tools' parameter.", "tool_choice")
            return False  # a tool the local model cannot call: it answers without one
    raise errors.invalid(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required', {\"type\": \"code_interpreter\"} or "
        '{"type": "allowed_tools", "mode": ..., "tools": [...]}.',
        "tool_choice",
    )


def _max_tool_calls(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.invalid("Invalid 'max_tool_calls': expected an integer of at least 0.", "max_tool_calls")
    return value


def input_items(value: object) -> list[dict]:
    """The request's input as the items `GET /v1/responses/{id}/input_items` lists, in the order sent: a string is
    one user message; a message's string content is one `input_text` part; every item gets an id."""
    sent = [{"role": "user", "content": value}] if isinstance(value, str) else value
    items = []
    for item in sent if isinstance(sent, list) else []:
        if not isinstance(item, dict):
            continue
        if "role" in item and item.get("type", "message") == "message":
            content, role = item.get("content"), item["role"]
            # An assistant's earlier reply is listed as output text, as the response that made it had it.
            text = {"type": "output_text", "annotations": []} if role == "assistant" else {"type": "input_text"}
            parts = [{**text, "text": content}] if isinstance(content, str) else content
            item = {"type": "message", "role": role, "content": parts, "status": "completed"}
        items.append({"id": item.get("id") or ids.new_item_id("msg_"), **item})
    return items


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


# -- objects ----------------------------------------------------------------------------------------------------
