"""The `cellbox-local` model: what it does with one request, as the events that build the Response.

Without quirks it behaves as documented: one `code_interpreter_call` running the code it was given (unless
`tool_choice` forbids calls, then a reply only), then an assistant message with the logs and a
`container_file_citation` per file the code wrote. An exception in the code is not a failed call: as in the
cloud, the call completes and the traceback is in its logs.

`--model-quirks` makes it misbehave the way an LLM may (emulation/quirks.py says how and when).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from .. import errors
from ..emulation.quirks import misbehaviour, reformat
from ..jail.kernel import Execution
from ..store import ids
from .create import Request
from .items import call_item, citations, message_item, snapshot, usage

Event = tuple[str, dict]
Execute = Callable[[str], Awaitable[tuple[Execution, list[dict]]]]

NO_CALL_REPLY = "I can run this code with the python tool. Would you like me to go ahead?"
TOOL_CHOICE_NONE_REPLY = 'No code was run: tool_choice is "none".'
NO_BUDGET_REPLY = "No code was run: max_tool_calls is 0."
INCOMPLETE_REPLY = "The python tool call did not complete; the code was not run."


async def respond(
    request: Request, record: dict, execute: Execute, quirks: frozenset[str], nth: int
) -> AsyncIterator[Event]:
    """The events that make `record` (a Response with no output yet), in the order the cloud sends them; the
    last carries the finished Response.

    An APIError while running (the container deleted meanwhile) ends it with `response.failed`, whose fields
    carry the APIError as `cause`.
    """
    container_id = _container_of(record)
    record["status"] = "in_progress"
    output: list[dict] = record["output"]
    yield "response.created", {"response": snapshot(record)}
    yield "response.in_progress", {"response": snapshot(record)}
    ignore_limits = "ignore-limits" in quirks
    may_call = request.may_call or ignore_limits
    budget = None if ignore_limits else request.max_tool_calls
    quirk = misbehaviour(quirks, nth) if may_call and budget != 0 else None
    code = reformat(request.code) if "reformat" in quirks else request.code
    # [Doc] calls past max_tool_calls "are ignored": with 0, every call is, and the model answers in words.
    reply = TOOL_CHOICE_NONE_REPLY if not may_call else NO_BUDGET_REPLY if budget == 0 else None
    reply = NO_CALL_REPLY if quirk == "no-call" else reply
    annotations: list[dict] = []
    changed: dict[str, dict] = {}
    calls = 0
    while reply is None:
        calls += 1
        call = call_item(ids.new_item_id("ci_"), container_id, code, "in_progress")
        at = {"output_index": len(output), "item_id": call["id"]}
        output.append(call)
        yield "response.output_item.added", {"output_index": at["output_index"], "item": {**call, "code": ""}}
        yield "response.code_interpreter_call.in_progress", at
        yield "response.code_interpreter_call_code.delta", {"delta": code, **at}
        yield "response.code_interpreter_call_code.done", {"code": code, **at}
        if quirk == "incomplete":
            call["status"] = "incomplete"
            yield "response.output_item.done", {"output_index": at["output_index"], "item": dict(call)}
            reply = INCOMPLETE_REPLY
            break
        call["status"] = "interpreting"
        yield "response.code_interpreter_call.interpreting", at
        try:
            result, new_files = await execute(code)
        except errors.APIError as exc:  # the status line may be long gone: the failure travels as events
            call["status"] = "failed"
            record.update(status="failed", error={"code": "server_error", "message": exc.message})
            record["usage"] = usage(request, output)
            yield "error", {"code": exc.code, "message": exc.message, "param": exc.param}
            yield "response.failed", {"response": snapshot(record), "cause": exc}
            return
        call.update(call_item(call["id"], container_id, code, result.status, result))
        changed.update({row["path"]: row for row in new_files})
        yield "response.code_interpreter_call.completed", at
        yield "response.output_item.done", {"output_index": at["output_index"], "item": dict(call)}
        again = "rerun-on-error" in quirks and result.error and calls == 1 and (budget is None or budget > calls)
        if not again:
            reply, annotations = citations(container_id, result.logs, list(changed.values()))
    message = message_item(ids.new_item_id("msg_"), reply, annotations)
    at = {"item_id": message["id"], "output_index": len(output)}
    part = message["content"][0]
    yield "response.output_item.added", {"output_index": at["output_index"], "item": message_item(message["id"], None)}
    yield "response.content_part.added", {"content_index": 0, "part": {**part, "text": "", "annotations": []}, **at}
    yield "response.output_text.delta", {"content_index": 0, "delta": part["text"], "logprobs": [], **at}
    for index, annotation in enumerate(part["annotations"]):
        added = {"content_index": 0, "annotation_index": index, "annotation": annotation, **at}
        yield "response.output_text.annotation.added", added
    yield "response.output_text.done", {"content_index": 0, "text": part["text"], "logprobs": [], **at}
    yield "response.content_part.done", {"content_index": 0, "part": part, **at}
    yield "response.output_item.done", {"output_index": at["output_index"], "item": message}
    output.append(message)
    record.update(status="completed", completed_at=int(time.time()), usage=usage(request, output))
    yield "response.completed", {"response": record}


def _container_of(record: dict) -> str:
    return next(t["container"] for t in record["tools"] if t.get("type") == "code_interpreter")
