"""The objects a Response is made of, shaped like the cloud's: the response itself, its code_interpreter calls,
its message with the citations of files the code wrote, its `usage` as a model would bill it, and what `include`
shows of it."""

from __future__ import annotations

from ..jail.kernel import Execution
from .create import ECHOED, Request, flag


def call_item(call_id: str, container_id: str, code: str, status: str, result: Execution | None = None) -> dict:
    """A code_interpreter_call item; its outputs are kept whole here and hidden by `visible` when not asked for."""
    outputs: list[dict] | None = None
    if result is not None:
        outputs = [{"type": "logs", "logs": result.logs}] if result.logs else []
        outputs += [{"type": "image", "url": url} for url in result.images]
    return {
        "id": call_id,
        "type": "code_interpreter_call",
        "status": status,
        "code": code,
        "container_id": container_id,
        "outputs": outputs,
    }


def message_item(message_id: str, text: str | None, annotations: list[dict] | None = None) -> dict:
    """An assistant message; `text` None while it is being written."""
    content = []
    if text is not None:
        content = [{"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "status": "completed" if text is not None else "in_progress",
        "content": content,
    }


MAX_CITATIONS = 100


def citations(container_id: str, text: str, new_files: list[dict]) -> tuple[str, list[dict]]:
    """The message text with a link per file the code wrote, and a container_file_citation for each, up to
    MAX_CITATIONS (code that writes 100k files must not make a 100k-entry answer: the file list has them all).
    Past that many, the files written last are the ones cited, as a reply would tell of what the code ended with."""
    cited = new_files
    if len(new_files) > MAX_CITATIONS:
        latest = sorted(new_files, key=lambda row: row.get("mtime_ns") or 0, reverse=True)[:MAX_CITATIONS]
        kept = {id(row) for row in latest}
        cited = [row for row in new_files if id(row) in kept]
    annotations = []
    for row in cited:
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
    if len(new_files) > MAX_CITATIONS:
        text += f"... and {len(new_files) - MAX_CITATIONS} more files (list the container's files to see them all)\n"
    return text, annotations


def envelope(request: Request, response_id: str, created_at: int, container_id: str, status: str) -> dict:
    """The Response record, with no output yet."""
    body = request.body
    tools = [dict(tool) for tool in body.get("tools", []) if isinstance(tool, dict)]
    for tool in tools:
        if tool.get("type") == "code_interpreter":
            tool["container"] = container_id
    reasoning = body.get("reasoning") or {}
    record = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": request.background,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": flag(body, "parallel_tool_calls", True),
        "max_tool_calls": request.max_tool_calls,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": request.store,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "truncation": body.get("truncation") or "disabled",
        "service_tier": body.get("service_tier") or "default",
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
        "metadata": body.get("metadata") or {},
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
    }
    for name in ECHOED:
        record.setdefault(name, body.get(name))
    return record


def usage(request: Request, output: list[dict]) -> dict:
    """Tokens as a real model would bill this response, estimated at four characters a token: input is the
    prompt, the instructions and every tool output the model read back; output is the code it wrote and its
    reply. Enough for tests and benchmarks to measure what a cell costs."""
    body = request.body
    read = _chars(body.get("input")) + _chars(body.get("instructions"))
    written = 0
    for item in output:
        if item.get("type") == "code_interpreter_call":
            written += len(item.get("code") or "")
            read += sum(len(o.get("logs") or "") for o in item.get("outputs") or [] if o.get("type") == "logs")
        elif item.get("type") == "message":
            written += sum(len(part.get("text") or "") for part in item.get("content") or [])
    input_tokens, output_tokens = -(-read // 4), -(-written // 4)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _chars(value: object) -> int:
    """Characters of text in a request value (a string, or the strings in a list of messages and parts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    if isinstance(value, dict):
        return sum(_chars(v) for k, v in value.items() if k in ("content", "text"))
    return 0


def visible(record: dict, include_outputs: bool) -> dict:
    """A record (a Response, or an output item) as the client sees it: a code_interpreter_call's outputs are null
    unless `include` asked for them, as in the cloud. Shares what it does not change with `record`: it is for
    writing out, not to be changed."""

    def shown(item: dict) -> dict:
        hidden = not include_outputs and item.get("type") == "code_interpreter_call"
        return {**item, "outputs": None} if hidden else item

    if record.get("object") == "response":
        return {**record, "output": [shown(item) for item in record["output"]]}
    return shown(record)


def snapshot(record: dict) -> dict:
    """A Response as it is now, safe to keep while the original goes on changing: the responses made here change
    a record only by setting its fields, appending to its output and setting its items' fields, so its output
    list and items are copied and the rest is shared."""
    return {**record, "output": [dict(item) for item in record["output"]]}
