"""A streamed response's server-sent events: `ResponseEvents` and its async twin `AsyncResponseEvents`.

    with client.responses.stream(input=..., container=box.id, background=True) as events:
        for event in events:                      # ResponseEvent: .type, .sequence_number, .response, ...
            if event.response is not None:
                latest = event.response

The decoding (the `text/event-stream` format: `event:`/`data:` fields, a blank line ends an event, `:` lines are
comments) is written once, in `EventDecoder`, and fed line by line by both shells. A backend that answers the
request with plain JSON instead (it ignores `stream`, or refused it and the client sent the request again
without) gives one event carrying that response, named after its status, so a reader needs no second path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .errors import connection_error, malformed_response
from .objects import Response, ResponseEvent

__all__ = ["AsyncResponseEvents", "EventDecoder", "ResponseEvents"]


class EventDecoder:
    """Turns the lines of an event stream into its events (`ResponseEvent`, from each one's JSON `data`), one at a
    time."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._data: list[str] = []
        self._name: str | None = None

    def feed(self, line: str) -> ResponseEvent | None:
        """One line (without its line break); the event it completes, if it ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # a comment: keep-alives are sent this way
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        return None  # `id` and `retry` serve reconnecting browsers; a response is resumed by sequence_number

    def end(self) -> ResponseEvent | None:
        """The stream ended: an event left without its blank line still counts."""
        return self._dispatch()

    def _dispatch(self) -> ResponseEvent | None:
        data, name = "\n".join(self._data), self._name
        self._data, self._name = [], None
        if not data or data == "[DONE]":
            return None
        try:
            fields: Any = json.loads(data)
        except ValueError as exc:
            raise malformed_response(self._response, f"an event that is not JSON ({exc})") from None
        if not isinstance(fields, dict):
            raise malformed_response(self._response, "an event that is not a JSON object")
        fields.setdefault("type", name or "message")
        try:
            return ResponseEvent.from_dict(fields)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise malformed_response(self._response, f"an event of unexpected shape: {exc}") from None


def _is_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip() == "text/event-stream"


def _answered_whole(response: httpx.Response) -> ResponseEvent:
    """A JSON answer to a streamed request, as the one event a stream would have ended with (or begun with, for a
    background response still queued)."""
    try:
        data = json.loads(response.content)
        status = Response.from_dict(data).status
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise malformed_response(response, f"neither an event stream nor a response: {exc}") from None
    kind = "created" if status in (None, "queued", "in_progress") else status
    return ResponseEvent.from_dict({"type": f"response.{kind}", "response": data})


class _Events:
    """What both shells keep: the open HTTP response and the latest response an event carried."""

    def __init__(self, response: httpx.Response) -> None:
        self.http_response = response
        self.response: Response | None = None

    def _seen(self, event: ResponseEvent) -> ResponseEvent:
        if event.response is not None:
            self.response = event.response
        return event


class ResponseEvents(_Events):
    """The events of a streamed response, in order. Use as a context manager, or call `close()`; `response` is
    the latest response any event carried."""

    def __iter__(self) -> Iterator[ResponseEvent]:
        if not _is_stream(self.http_response):
            self.http_response.read()
            yield self._seen(_answered_whole(self.http_response))
            return
        decoder = EventDecoder(self.http_response)
        try:
            for line in self.http_response.iter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield self._seen(event)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.http_response.request) from None
        last = decoder.end()
        if last is not None:
            yield self._seen(last)

    def close(self) -> None:
        self.http_response.close()

    def __enter__(self) -> ResponseEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncResponseEvents(_Events):
    """The async twin of `ResponseEvents`."""

    async def __aiter__(self) -> AsyncIterator[ResponseEvent]:
        if not _is_stream(self.http_response):
            await self.http_response.aread()
            yield self._seen(_answered_whole(self.http_response))
            return
        decoder = EventDecoder(self.http_response)
        try:
            async for line in self.http_response.aiter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield self._seen(event)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.http_response.request) from None
        last = decoder.end()
        if last is not None:
            yield self._seen(last)

    async def aclose(self) -> None:
        await self.http_response.aclose()

    async def __aenter__(self) -> AsyncResponseEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
