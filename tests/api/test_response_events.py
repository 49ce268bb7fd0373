"""`client.responses.stream(...)`: a response's server-sent events as they happen, sync and async alike, against
a real local server (and its `--streaming refused` and `cut` modes) and the fake API (which answers with JSON)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cellbox.api import APIResponseValidationError, AsyncClient, BadRequestError, Client, ResponseEvent
from cellbox.api.config import Settings, load_settings
from cellbox.api.events import EventDecoder
from cellbox.local.testing import RunningServer, running_server

SLEEPY = "```python\nimport time\nprint('started', flush=True)\ntime.sleep(0.6)\nprint('ended')\n```"


def _decoder() -> EventDecoder:
    return EventDecoder(httpx.Response(200, request=httpx.Request("POST", "http://x/v1/responses")))


def _feed(text: str) -> list[ResponseEvent]:
    decoder = _decoder()
    events = [decoder.feed(line) for line in text.split("\n")]
    return [e for e in [*events, decoder.end()] if e is not None]


def test_the_decoder_reads_the_event_stream_format() -> None:
    text = (
        ": a comment, as keep-alives are sent\n"
        "event: response.created\n"
        'data: {"type": "response.created", "sequence_number": 0,\n'
        'data:  "response": {"id": "resp_1", "status": "queued"}}\n'
        "id: 7\n"
        "\n"
        "event: response.output_text.delta\n"
        'data: {"sequence_number": 1, "delta": "hi"}\n'
        "\n"
        "data: [DONE]\n"
        "\n"
        'data:{"type": "response.completed", "response": {"id": "resp_1", "status": "completed"}}'  # no blank line
    )
    created, delta, completed = _feed(text)
    assert (created.type, created.sequence_number) == ("response.created", 0)
    assert created.response is not None and created.response.status == "queued"  # data lines joined
    assert delta.type == "response.output_text.delta" and delta.delta == "hi"  # named by its event: line
    assert delta.response is None
    assert completed.type == "response.completed" and completed.response.status == "completed"


@pytest.mark.parametrize(
    ("data", "said"), [("{not json", "an event that is not JSON"), ("[1, 2]", "an event that is not a JSON object")]
)
def test_an_event_that_is_not_a_json_object_is_a_malformed_answer(data: str, said: str) -> None:
    with pytest.raises(APIResponseValidationError, match=said):
        _feed(f"data: {data}\n\n")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, starts_processes: None) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("events"), pool_size=1) as server:
        yield server


def _settings(server: RunningServer) -> Settings:
    return dataclasses.replace(load_settings(base_url=server.base_url, api_key=server.token), model="cellbox-local")


def _sync(server: RunningServer) -> Client:
    return Client(settings=_settings(server))


def _read_sync(server: RunningServer, **options: Any) -> tuple[list[tuple[float, ResponseEvent]], Any]:
    with _sync(server) as client:
        box = client.containers.create("events")
        started = time.monotonic()
        with client.responses.stream(input=SLEEPY, container=box.id, **options) as events:
            seen = [(time.monotonic() - started, event) for event in events]
        return seen, (box, events.response)


def _read_async(server: RunningServer, **options: Any) -> tuple[list[tuple[float, ResponseEvent]], Any]:
    async def read() -> tuple[list[tuple[float, ResponseEvent]], Any]:
        async with AsyncClient(settings=_settings(server)) as client:
            box = await client.containers.create("events")
            started = time.monotonic()
            async with await client.responses.stream(input=SLEEPY, container=box.id, **options) as events:
                seen = [(time.monotonic() - started, event) async for event in events]
            return seen, (box, events.response)

    return asyncio.run(read())


READERS = {"sync": _read_sync, "async": _read_async}


@pytest.mark.parametrize("kind", READERS)
def test_events_arrive_as_they_happen_and_end_with_the_whole_response(local: RunningServer, kind: str) -> None:
    seen, (box, last) = READERS[kind](local, background=True, store=True)
    kinds = [event.type for _, event in seen]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [event.sequence_number for _, event in seen] == list(range(len(seen)))
    interpreting = next(at for at, event in seen if event.type == "response.code_interpreter_call.interpreting")
    completed = seen[-1][0]
    assert completed - interpreting >= 0.5  # told when the code started, not only once it ended
    assert last is seen[-1][1].response and last.status == "completed"
    [call] = last.code_interpreter_calls
    assert call.container_id == box.id and call.logs == "started\nended\n"


def test_a_background_response_read_by_its_stream_is_the_stored_one(local: RunningServer) -> None:
    _, (_, last) = _read_sync(local, background=True, store=True)
    with _sync(local) as client:
        stored = client.responses.retrieve(last.id)
    assert stored.status == "completed" and stored.output == last.output


@pytest.mark.integration
@pytest.mark.parametrize("kind", READERS)
def test_a_backend_that_refuses_streaming_answers_one_event_when_stream_is_optional(tmp_path: Path, kind: str) -> None:
    with running_server(tmp_path, pool_size=1, streaming="refused") as server:
        with _sync(server) as client, pytest.raises(BadRequestError, match="Streaming is not supported"):
            client.responses.stream(input="x", container=client.containers.create("x").id)
        seen, (_, last) = READERS[kind](server, background=True, store=True, optional=["stream"])
        ((_, only),) = seen  # the JSON answer, as the event a stream would have begun with
        assert only.type == "response.created" and only.response is last and last.status in ("queued", "in_progress")
        seen, _ = READERS[kind](server, optional=["stream"])
        ((_, only),) = seen  # not in the background: the finished response, as the last event
        assert only.type == "response.completed" and "ended" in only.response.code_interpreter_calls[0].logs


@pytest.mark.integration
def test_a_stream_cut_short_ends_without_its_last_events_and_the_response_goes_on(tmp_path: Path) -> None:
    with running_server(tmp_path, pool_size=1, streaming="cut") as server:
        seen, (_, last) = _read_sync(server, background=True, store=True)
        with _sync(server) as client:
            kinds = [event.type for _, event in seen]
            assert kinds[-1] == "response.code_interpreter_call_code.done"  # the code was about to run
            assert last.status == "in_progress"
            deadline = time.monotonic() + 10
            while client.responses.retrieve(last.id).status == "in_progress" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.responses.retrieve(last.id).status == "completed"
