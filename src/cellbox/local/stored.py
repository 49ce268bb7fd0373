"""Responses in the making and responses kept: GET, DELETE and cancel of /v1/responses/{id}, and background runs.

Every response is made by a task of its own (a Run) whose events any reader follows: the request that made it
(a JSON answer or a stream), or a later GET with `stream=true` for a background one. A client that leaves a
request that is not in the background cancels its run, which interrupts the code; a background run goes on until
it finishes, is cancelled (the code is interrupted, status `cancelled`) or deleted.

Stored responses (`store`, true by default) are kept in memory, bounded: the newest 1,000 finished ones and at
most 64 MiB of them (the oldest go first), plus those still running, of which at most 100 may be background ones
(more answer 429). They do not survive a restart of the server (the cloud keeps them 30 days).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

from . import errors, ids, model
from .responses import Request, envelope, visible

log = logging.getLogger("cellbox.local")

_WAITING = ("queued", "in_progress")


class Run:
    """One response being made: its record as of now, its events so far, and the task making it."""

    def __init__(
        self, request: Request, container_id: str, execute: model.Execute, quirks: frozenset[str], nth: int
    ) -> None:
        self.request = request
        status = "queued" if request.background else "in_progress"
        self.record = envelope(request, ids.new_response_id(), int(time.time()), container_id, status)
        self.id: str = self.record["id"]
        self.failure: errors.APIError | None = None
        self.keep_events = request.stream or request.background
        self.events: list[dict] = []
        self.size = 0
        self._changed = asyncio.Event()
        events = model.respond(request, copy.deepcopy(self.record), execute, quirks, nth)
        self.task = asyncio.ensure_future(self._drive(events))
        self.task.add_done_callback(self._ended)

    async def _drive(self, events: AsyncIterator[model.Event]) -> None:
        async for kind, fields in events:
            cause = fields.pop("cause", None)
            if cause is not None:
                self.failure = cause
            if "response" in fields:
                self.record = copy.deepcopy(fields["response"])
            elif kind in ("response.output_item.added", "response.output_item.done"):
                output, index = self.record["output"], fields["output_index"]
                item = copy.deepcopy(fields["item"])
                output[index : index + 1] = [item]
            elif kind == "response.code_interpreter_call_code.done":
                self.record["output"][fields["output_index"]]["code"] = fields["code"]
            elif kind == "response.code_interpreter_call.interpreting":
                self.record["output"][fields["output_index"]]["status"] = "interpreting"
            if self.keep_events:
                self.events.append({"type": kind, "sequence_number": len(self.events), **fields})
            self._wake()

    def _ended(self, task: asyncio.Task) -> None:
        if task.cancelled() and self.record["status"] in _WAITING:
            self.record["status"] = "cancelled"
            for item in self.record["output"]:
                if item.get("status") in ("in_progress", "interpreting"):
                    item["status"] = "incomplete"
        elif not task.cancelled() and task.exception() is not None:
            log.error("response %s failed", self.id, exc_info=task.exception())
            self.record.update(status="failed", error={"code": "server_error", "message": "The server failed."})
        self.size = len(json.dumps(self.record)) + (len(json.dumps(self.events, default=str)) if self.events else 0)
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def shown(self, include_outputs: bool = False) -> dict:
        return visible(self.record, include_outputs or self.request.include_outputs)

    async def follow(self, after: int = -1) -> AsyncIterator[dict]:
        """The run's events after sequence number `after`, as they come, until it ends."""
        index = after + 1
        while True:
            changed = self._changed
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.task.done():
                return
            await changed.wait()


def sse(run: Run, include_outputs: bool, after: int = -1) -> AsyncIterator[bytes]:
    """A run's events as server-sent events. A reader that leaves a run that is not in the background cancels
    it (which interrupts the code); a background run goes on."""

    async def events() -> AsyncIterator[bytes]:
        try:
            async for event in run.follow(after):
                shown = dict(event)
                for name in ("response", "item"):
                    if name in shown:
                        shown[name] = visible(shown[name], include_outputs or run.request.include_outputs)
                yield f"event: {event['type']}\ndata: {json.dumps(shown)}\n\n".encode()
        finally:
            if not run.request.background:
                run.task.cancel()
                if run.task.done():
                    run.events = []  # nobody will read them again

    return events()


class StoredResponses:
    """The stored responses, by id, bounded (see the module docstring)."""

    def __init__(self, max_count: int = 1000, max_bytes: int = 64 * 1024 * 1024, max_background: int = 100) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self.max_count, self.max_bytes, self.max_background = max_count, max_bytes, max_background

    def start(self, request: Request, container_id: str, execute: model.Execute, quirks: frozenset[str], nth: int):
        if request.background and sum(r.request.background and not r.task.done() for r in self._runs.values()) >= (
            self.max_background
        ):
            raise errors.APIError(
                429,
                f"Too many background responses in progress (the limit is {self.max_background}): wait for some "
                "to finish, or cancel them.",
                type="rate_limit_error",
                code="rate_limit_exceeded",
            )
        run = Run(request, container_id, execute, quirks, nth)
        if request.store:
            self._runs[run.id] = run
            run.task.add_done_callback(lambda _: self._evict())
        return run

    def has(self, response_id: str) -> bool:
        return response_id in self._runs

    def get(self, response_id: str) -> Run:
        run = self._runs.get(response_id)
        if run is None:
            raise errors.not_found("response", response_id, param="response_id")
        return run

    def delete(self, response_id: str) -> None:
        run = self.get(response_id)
        del self._runs[response_id]
        run.task.cancel()

    async def cancel(self, response_id: str) -> Run:
        run = self.get(response_id)
        if not run.request.background:
            raise errors.invalid("Cannot cancel a synchronous response.", param="response_id")
        if not run.task.done():
            run.task.cancel()
            # The code is interrupted; wait (bounded) until it has stopped, so `cancelled` means stopped.
            await asyncio.wait({run.task}, timeout=30)
        return run

    def _evict(self) -> None:
        finished = [r for r in self._runs.values() if r.task.done()]
        count, total = len(finished), sum(r.size for r in finished)
        for run in finished:  # oldest first
            if count <= self.max_count and total <= self.max_bytes:
                break
            del self._runs[run.id]
            count, total = count - 1, total - run.size
