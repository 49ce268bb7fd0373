"""Stored and background responses: GET, DELETE, cancel, `store` and `background`, through the official SDK."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest

from cellbox.local import errors
from cellbox.local.responses import stored
from cellbox.local.responses.stored import StoredResponses
from cellbox.local.store import Store
from cellbox.local.testing import running_server, wait_until


def _create(client: openai.OpenAI, container_id: str, code: str, **options):
    return client.responses.create(
        model="cellbox-local",
        input=code,
        tools=[{"type": "code_interpreter", "container": container_id}],
        **options,
    )


def test_a_stored_response_can_be_retrieved_and_deleted(client: openai.OpenAI, container):
    made = _create(client, container.id, "print('kept')")
    got = client.responses.retrieve(made.id)
    assert (got.id, got.status, got.store, got.background) == (made.id, "completed", True, False)
    assert got.output_text == made.output_text == "kept\n"
    assert got.output[0].outputs is None  # outputs only when asked for, as in the cloud: by the GET...
    included = client.responses.retrieve(made.id, include=["code_interpreter_call.outputs"])
    assert included.output[0].outputs[0].logs == "kept\n"
    with_outputs = _create(client, container.id, "print(3)", include=["code_interpreter_call.outputs"])
    assert client.responses.retrieve(with_outputs.id).output[0].outputs[0].logs == "3\n"  # ...or the create
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)


def test_store_false_is_not_retrievable(client: openai.OpenAI, container):
    made = _create(client, container.id, "print(1)", store=False)
    assert made.store is False and made.status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


@pytest.mark.parametrize("response_id", ["resp_nope", "resp_" + "0" * 48, "%2E%2E", "cntr_" + "0" * 48])
def test_unknown_response_ids_are_404(http, response_id):
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/cancel")]:
        r = http.request(method, f"/responses/{response_id}{path}")
        assert r.status_code == 404, (method, path, r.text)


def test_background_answers_at_once_and_is_polled_to_completed(client: openai.OpenAI, container):
    started = time.monotonic()
    made = _create(client, container.id, "import time\ntime.sleep(1.5)\nprint('late')", background=True)
    assert time.monotonic() - started < 1.0
    assert made.background is True and made.status in ("queued", "in_progress")
    assert made.output == []
    done = wait_until(
        lambda: (r := client.responses.retrieve(made.id)).status == "completed" and r, what="the run to complete"
    )
    assert time.monotonic() - started >= 1.5
    assert done.output_text == "late\n" and done.completed_at is not None
    assert done.output[0].type == "code_interpreter_call" and done.output[0].status == "completed"


def test_cancel_interrupts_the_code(client: openai.OpenAI, container, run, logs):
    run(client, container.id, "kept = 'state survives'")
    made = _create(client, container.id, "import time\nstarted = 1\ntime.sleep(600)\nfinished = 1", background=True)
    wait_until(
        lambda: [o.status for o in client.responses.retrieve(made.id).output] == ["interpreting"],
        what="the code to run",
    )
    cancelled = client.responses.cancel(made.id)
    assert cancelled.status == "cancelled"
    assert [o.status for o in cancelled.output] == ["incomplete"]
    assert client.responses.retrieve(made.id).status == "cancelled"
    # The kernel is free at once (the sleep was interrupted) and kept its state; the code stopped where it was.
    started = time.monotonic()
    out = logs(run(client, container.id, "print(kept, 'finished' in globals())")[0])
    assert time.monotonic() - started < 5
    # `interpreting` is said just before the kernel starts the code, so a cancel may land before its first line:
    # whether `started` was set is not asserted, only that the code never finished and the state is kept.
    assert out == "state survives False\n"
    # Cancelling again returns it as it is.
    assert client.responses.cancel(made.id).status == "cancelled"


def test_cancelling_a_response_not_in_the_background_is_400(client: openai.OpenAI, container):
    made = _create(client, container.id, "1")
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a synchronous response"):
        client.responses.cancel(made.id)


def test_a_finished_background_response_cancels_to_itself(client: openai.OpenAI, container):
    made = _create(client, container.id, "print(2)", background=True)
    wait_until(lambda: client.responses.retrieve(made.id).status == "completed", what="the run to complete")
    assert client.responses.cancel(made.id).status == "completed"


def test_deleting_a_running_background_response_stops_it(client: openai.OpenAI, container, run, logs):
    made = _create(client, container.id, "import time\ntime.sleep(600)", background=True)
    wait_until(
        lambda: [o.status for o in client.responses.retrieve(made.id).output] == ["interpreting"],
        what="the code to run",
    )
    client.responses.delete(made.id)
    started = time.monotonic()
    assert logs(run(client, container.id, "print('free')")[0]) == "free\n"
    assert time.monotonic() - started < 5


def test_background_needs_store(http, container):
    body = {
        "model": "m",
        "input": "1",
        "tools": [{"type": "code_interpreter", "container": container.id}],
        "background": True,
        "store": False,
    }
    r = http.post("/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "store"


def test_a_background_stream_survives_its_reader_and_can_be_streamed_again(server, client, container):
    body = {
        "model": "cellbox-local",
        "input": "import time\ntime.sleep(1)\nprint('streamed')",
        "tools": [{"type": "code_interpreter", "container": container.id}],
        "stream": True,
        "background": True,
    }
    response_id = None
    with httpx.stream("POST", f"{server.base_url}/responses", json=body, headers=server.headers, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and '"response.created"' in line:
                response_id = line.split('"id": "', 1)[1].split('"', 1)[0]
                break  # hang up: a background run goes on
    assert response_id is not None
    done = wait_until(lambda: (x := client.responses.retrieve(response_id)).status == "completed" and x, what="the run")
    assert done.output_text == "streamed\n"
    events = list(client.responses.retrieve(response_id, stream=True, starting_after=1))
    assert events[0].sequence_number == 2
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "streamed\n"


def test_events_streamed_again_show_the_response_as_it_was_when_each_was_sent(client: openai.OpenAI, container):
    # The events are kept as sent while the response goes on changing: one streamed again after the end must
    # still show the moment it was sent, not the finished response.
    done = _create(client, container.id, "print('x')", background=True, store=True)
    done = wait_until(lambda: (x := client.responses.retrieve(done.id)).status == "completed" and x, what="the run")
    events = list(client.responses.retrieve(done.id, stream=True))
    first = {}
    for event in events:
        first.setdefault(event.type, event)
    assert first["response.created"].response.status in ("queued", "in_progress")
    assert first["response.created"].response.output == []
    assert first["response.in_progress"].response.output == []
    added = first["response.output_item.added"].item
    assert added.type == "code_interpreter_call" and added.status == "in_progress" and added.code == ""
    assert first["response.output_item.done"].item.status == "completed"
    assert [item.type for item in first["response.completed"].response.output] == ["code_interpreter_call", "message"]
    assert first["response.completed"].response.output[0].outputs is None  # not asked for with `include`


def test_previous_response_id_must_name_a_stored_response(client: openai.OpenAI, container):
    first = _create(client, container.id, "x = 1")
    second = _create(client, container.id, "print(x + 1)", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "2\n"
    with pytest.raises(openai.NotFoundError):
        _create(client, container.id, "1", previous_response_id="resp_" + "0" * 48)


@pytest.mark.integration
@pytest.mark.slow
def test_stored_responses_survive_a_restart_of_the_server(tmp_path, sdk):
    data = tmp_path / "data"
    with running_server(data, pool_size=0) as first:
        client = sdk(first)
        container = client.containers.create(name="kept")
        made = _create(client, container.id, "print('before the restart')")
        late = _create(client, container.id, "import time\ntime.sleep(0.5)\nprint('late')", background=True)
        wait_until(lambda: client.responses.retrieve(late.id).status == "completed", what="the background run")
        gone = _create(client, container.id, "print('deleted')")
        client.responses.delete(gone.id)
    with running_server(data, pool_size=0) as second:
        client = sdk(second)
        got = client.responses.retrieve(made.id, include=["code_interpreter_call.outputs"])
        assert (got.status, got.output_text, got.output[0].outputs[0].logs) == (
            "completed",
            *["before the restart\n"] * 2,
        )
        assert client.responses.retrieve(made.id).output[0].outputs is None  # still only when asked for
        events = list(client.responses.retrieve(late.id, stream=True, starting_after=1))
        assert events[0].sequence_number == 2 and events[-1].response.output_text == "late\n"
        assert client.responses.cancel(late.id).status == "completed"  # a finished one cancels to itself
        assert [i.content[0].text for i in client.responses.input_items.list(made.id)] == [
            "print('before the restart')"
        ]
        with pytest.raises(openai.BadRequestError, match="synchronous"):
            client.responses.cancel(made.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(gone.id)
        follow_up = _create(client, container.id, "print(2)", previous_response_id=made.id)
        assert follow_up.output_text.endswith("2\n") and "restarted" in follow_up.output_text  # said, not hidden
        client.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(made.id)


def test_kept_responses_are_bounded_by_age_and_only_a_short_disk_makes_room(tmp_path):
    store = Store(tmp_path / "data")
    try:
        for n in range(5):
            store.keep_response(f"resp_{n}", 1000.0 + n, "x" * 100, older=0)
        store.keep_response("resp_new", 2000.0, "y" * 100, older=1002.0)
        kept = [f"resp_{n}" for n in range(5) if store.kept_response(f"resp_{n}") is not None]
        assert kept == ["resp_2", "resp_3", "resp_4"]  # kept before 1002: forgotten (the cloud keeps 30 days)
        assert store.kept_bytes() == 400  # no bound on size otherwise
        # A short disk: what the server keeps is halved, the newest kept, the oldest gone first.
        store.keep_response("resp_newest", 3000.0, "z" * 150, older=0, max_bytes=store.kept_bytes() // 2)
        assert store.kept_response("resp_newest") == "z" * 150 and store.kept_bytes() == 150
        assert store.kept_response("resp_new") is None and store.kept_response("resp_4") is None
    finally:
        store.close()


def test_a_stored_responses_input_items_are_listed_newest_first_and_paged(client: openai.OpenAI, container):
    sent = [
        {"role": "developer", "content": "Run the user's code."},
        {"role": "assistant", "content": "Ready."},
        {"role": "user", "content": [{"type": "input_text", "text": "print('paged')"}]},
    ]
    made = _create(client, container.id, sent)
    items = client.responses.input_items.list(made.id)
    assert [item.role for item in items.data] == ["user", "assistant", "developer"]  # newest first, by default
    assert items.data[0].content[0].text == "print('paged')" and items.data[1].content[0].type == "output_text"
    assert len({item.id for item in items.data}) == 3 and not items.has_more
    first = client.responses.input_items.list(made.id, order="asc", limit=2)
    assert [item.role for item in first.data] == ["developer", "assistant"] and first.has_more
    rest = client.responses.input_items.list(made.id, order="asc", after=first.last_id)
    assert [item.role for item in rest.data] == ["user"] and not rest.has_more
    assert [i.role for i in client.responses.input_items.list(made.id, order="asc")] == [
        "developer",
        "assistant",
        "user",
    ]
    plain = _create(client, container.id, "print(1)")
    (only,) = client.responses.input_items.list(plain.id).data
    assert (only.type, only.role, only.content[0].text) == ("message", "user", "print(1)")
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_" + "0" * 48)


class Finished:  # what keeping a response reads of it
    def __init__(self, n: int, store: bool = True) -> None:
        self.id = f"resp_{n}"
        self.store = store

    def document(self) -> dict:
        return {"record": {"id": self.id}, "filler": "x" * 1000}

    def stop(self) -> None:
        pass


def test_a_finished_response_is_written_later_unless_deleted_first(tmp_path, monkeypatch):
    """Written KEEP_AFTER seconds after it ended (cellbox deletes each cell's own once read: those never reach the
    disk); on a clean shutdown, at once; one deleted while it was being written is not left behind."""
    monkeypatch.setattr(stored, "KEEP_AFTER", 0.2)
    store = Store(tmp_path / "data")
    kept = StoredResponses(store)
    write = store.keep_response

    async def main() -> None:
        loop = asyncio.get_running_loop()
        deleted_meanwhile = threading.Event()

        def keep_then_delete(response_id: str, *args) -> None:  # the client's DELETE lands during the write
            write(response_id, *args)
            if response_id == "resp_3":
                loop.call_soon_threadsafe(lambda: (kept.delete(response_id), deleted_meanwhile.set()))
                deleted_meanwhile.wait(5)

        monkeypatch.setattr(store, "keep_response", keep_then_delete)
        for n in range(4):
            kept._runs[f"resp_{n}"] = Finished(n)  # type: ignore[assignment]
            kept._ended(kept._runs[f"resp_{n}"])
        kept.delete("resp_0")
        assert not any(store.has_response(f"resp_{n}") for n in range(4))  # none written yet
        await asyncio.sleep(0.5)
        assert [n for n in range(4) if store.has_response(f"resp_{n}")] == [1, 2]
        kept._runs["resp_4"] = Finished(4)  # type: ignore[assignment]
        kept._ended(kept._runs["resp_4"])
        await kept.close()  # the server stops: what waits is written now
        assert store.has_response("resp_4")

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_a_background_response_with_store_false_is_kept_only_for_a_while(tmp_path, monkeypatch):
    monkeypatch.setattr(stored, "TEMPORARY_SECONDS", 0.2)
    store = Store(tmp_path / "data")
    kept = StoredResponses(store)

    async def main() -> None:
        run = Finished(0, store=False)
        kept._runs[run.id] = run  # type: ignore[assignment]
        kept._ended(run)  # type: ignore[arg-type]
        assert kept.get(run.id) is run and not kept.has(run.id)  # retrievable, but no previous_response_id
        await asyncio.sleep(0.5)
        with pytest.raises(errors.APIError) as gone:
            kept.get(run.id)
        assert gone.value.status == 404
        await kept.close()  # nothing of it is written, not even on shutdown
        assert not store.has_response(run.id)

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_responses_are_halved_only_when_the_disk_runs_short(tmp_path):
    store = Store(tmp_path / "data")
    short = False
    kept = StoredResponses(store, low_disk=lambda: short)
    try:
        for n in range(7):
            kept._runs[f"resp_{n}"] = Finished(n)  # type: ignore[assignment]
        for n in range(6):
            asyncio.run(kept._keep(kept._runs[f"resp_{n}"]))
        assert all(store.kept_response(f"resp_{n}") for n in range(6))  # a healthy disk keeps them all
        short = True
        asyncio.run(kept._keep(kept._runs["resp_6"]))
        left = [n for n in range(7) if store.kept_response(f"resp_{n}")]
        assert left[-1] == 6 and 3 <= len(left) <= 4  # about half, the newest first
    finally:
        store.close()
