"""The `cellbox-local` model: what it does with one request, as the events that build the Response.

Without quirks it behaves as documented: one `code_interpreter_call` running the code it was given (unless
`tool_choice` forbids calls, then a reply only), then an assistant message with the logs and a
`container_file_citation` per file the code wrote. An exception in the code is not a failed call: as in the
cloud, the call completes and the traceback is in its logs.

`--model-quirks` makes it misbehave the way an LLM may, deterministically so tests can rely on it. The n-th
request naming a container (counted per container, any request, from 1; a `{"type": "auto"}` container is always
on its 1st) is quirky when n % 3 == 2 (the 2nd, 5th, 8th...), so the 1st request and the one after each quirky
one are always clean:

- `no-call`: on quirky requests, a reply without any call (the code is not run);
- `incomplete`: on quirky requests, a call that ends `incomplete` without running the code (with `no-call` too:
  no-call on the 2nd, 8th, 14th..., incomplete on the 5th, 11th...);
- `reformat`: every call's code is restyled as a model retyping it might (single quotes to double, one space
  around a top-level `=` and after a comma, none around a keyword's `=`); the program is the same (its AST is);
  code with nothing to restyle gains or loses its final newline;
- `rerun-on-error`: after a call whose code raised, a second call runs the same code again, unless
  `max_tool_calls` is 1;
- `ignore-limits`: `max_tool_calls` and `tool_choice` are ignored, as by a backend that lacks them.
"""

from __future__ import annotations

import ast
import io
import time
import tokenize
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

from . import errors, ids
from .kernel import Execution
from .response_items import call_item, citations, message_item, snapshot, usage
from .responses import Request

Event = tuple[str, dict]
Execute = Callable[[str], Awaitable[tuple[Execution, list[dict]]]]

NO_CALL_REPLY = "I can run this code with the python tool. Would you like me to go ahead?"
TOOL_CHOICE_NONE_REPLY = 'No code was run: tool_choice is "none".'
NO_BUDGET_REPLY = "No code was run: max_tool_calls is 0."
INCOMPLETE_REPLY = "The python tool call did not complete; the code was not run."


class RequestCounter:
    """How many requests have named each container (the quirks' clock); bounded, oldest forgotten first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def next(self, container_id: str) -> int:
        count = self._counts.pop(container_id, 0) + 1
        self._counts[container_id] = count
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)
        return count


def misbehaviour(quirks: frozenset[str], nth: int) -> str | None:
    """`no-call`, `incomplete` or None: what the n-th request on a container gets."""
    if nth % 3 != 2:
        return None
    if {"no-call", "incomplete"} <= quirks:
        return "no-call" if nth % 6 == 2 else "incomplete"
    for quirk in ("no-call", "incomplete"):
        if quirk in quirks:
            return quirk
    return None


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


# -- reformat ---------------------------------------------------------------------------------------------------


def reformat(code: str) -> str:
    """The same program restyled (quotes, spacing), as a model retyping code might; `code` itself when it is not
    valid Python or the restyled text would not be the same program."""
    try:
        before = ast.dump(ast.parse(code))
        edits = _edits(code)
    except (SyntaxError, ValueError, tokenize.TokenError, IndentationError):
        return code
    restyled = code
    for start, end, text in sorted(edits, reverse=True):
        restyled = restyled[:start] + text + restyled[end:]
    if restyled == code:
        restyled = code.rstrip("\n") if code.endswith("\n") else code + "\n"
    try:
        same = ast.dump(ast.parse(restyled)) == before
    except SyntaxError:
        same = False
    return restyled if same else code


def _edits(code: str) -> list[tuple[int, int, str]]:
    starts = [0]
    for line in code.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
    edits: list[tuple[int, int, str]] = []
    depth = 0

    def gap(left: tokenize.TokenInfo, right: tokenize.TokenInfo, text: str) -> None:
        """Sets the blank between two tokens of one line to `text` (never across a line, comment or `\\`)."""
        if left.end[0] != right.start[0] or right.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            return
        start, end = offset(left.end), offset(right.start)
        if code[start:end].strip(" \t") == "" and code[start:end] != text:
            edits.append((start, end, text))

    for i, token in enumerate(tokens):
        if token.type == tokenize.STRING:
            quoted = _double_quoted(token.string)
            if quoted != token.string:
                edits.append((offset(token.start), offset(token.end), quoted))
        elif token.type == tokenize.OP:
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth = max(0, depth - 1)
            elif token.string == "," and i + 1 < len(tokens) and tokens[i + 1].string not in ")]}":
                gap(token, tokens[i + 1], " ")
            elif token.string == "=" and 0 < i < len(tokens) - 1:
                spacing = " " if depth == 0 else ""
                gap(tokens[i - 1], token, spacing)
                gap(token, tokens[i + 1], spacing)
    return edits


def _double_quoted(literal: str) -> str:
    """A single-quoted string literal in double quotes, when that changes nothing else (no `"` or `\\` in it)."""
    prefix = literal[: len(literal) - len(literal.lstrip("bBrRuUfF"))]
    body = literal[len(prefix) :]
    if body.startswith("'''") or not body.startswith("'"):
        return literal
    inner = body[1:-1]
    if '"' in inner or "\\" in inner:
        return literal
    return f'{prefix}"{inner}"'
