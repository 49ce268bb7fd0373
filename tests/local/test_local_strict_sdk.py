"""Every method of the official SDK's containers, container files, files and responses resources, with real ids
and realistic arguments, under strict response validation (the `client` fixture validates every answer)."""

from __future__ import annotations

import openai
import pytest


def test_containers(client: openai.OpenAI):
    created = client.containers.create(
        name="sdk",
        expires_after={"anchor": "last_active_at", "minutes": 30},
        memory_limit="4g",
        network_policy={"type": "disabled"},
    )
    assert (created.name, created.memory_limit, created.expires_after.minutes) == ("sdk", "4g", 30)
    retrieved = client.containers.retrieve(created.id)
    assert (retrieved.id, retrieved.status) == (created.id, "running")
    others = [client.containers.create(name=f"page{i}") for i in range(2)]
    page = client.containers.list(limit=1, order="asc", after=created.id)
    assert [c.id for c in page.data] == [others[0].id] and page.has_more
    # Auto-pagination follows `after` through every page.
    listed = [c.id for c in client.containers.list(limit=1, order="desc", name="page0")]
    assert listed == [others[0].id]
    assert others[1].id in {c.id for c in client.containers.list(limit=1)}
    for container in [created, *others]:
        client.containers.delete(container.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(created.id)


def test_container_files(client: openai.OpenAI, container):
    files = client.containers.files
    up = files.create(container_id=container.id, file=("data/in.csv", b"a,b\n1,2\n"))
    assert (up.path, up.bytes, up.source) == ("/mnt/data/data/in.csv", 8, "user")
    stored = client.files.create(file=("copy.txt", b"copied"), purpose="user_data")
    copied = files.create(container_id=container.id, file_id=stored.id)
    assert copied.path == "/mnt/data/copy.txt"
    assert files.retrieve(up.id, container_id=container.id).path == up.path
    assert {f.id for f in files.list(container_id=container.id, limit=1, order="asc")} == {up.id, copied.id}
    assert files.content.retrieve(up.id, container_id=container.id).read() == b"a,b\n1,2\n"
    with files.content.with_streaming_response.retrieve(copied.id, container_id=container.id) as streamed:
        assert b"".join(streamed.iter_bytes()) == b"copied"
    raw = files.with_raw_response.retrieve(up.id, container_id=container.id)
    assert raw.headers["x-request-id"].startswith("req_") and raw.parse().id == up.id
    files.delete(up.id, container_id=container.id)
    with pytest.raises(openai.NotFoundError):
        files.retrieve(up.id, container_id=container.id)


def test_files(client: openai.OpenAI):
    made = client.files.create(
        file=("notes.txt", b"hello"), purpose="user_data", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert (made.filename, made.bytes, made.purpose, made.status) == ("notes.txt", 5, "user_data", "processed")
    assert client.files.retrieve(made.id).id == made.id
    assert client.files.wait_for_processing(made.id).status == "processed"
    assert made.id in {f.id for f in client.files.list(purpose="user_data", limit=2)}
    assert client.files.content(made.id).read() == b"hello"
    deleted = client.files.delete(made.id)
    assert (deleted.id, deleted.deleted) == (made.id, True)


def test_responses(client: openai.OpenAI, container):
    tools = [{"type": "code_interpreter", "container": container.id}]
    made = client.responses.create(
        model="cellbox-local", input="print('hi')", tools=tools, include=["code_interpreter_call.outputs"]
    )
    assert made.output_text == "hi\n" and made.usage.input_tokens_details.cache_write_tokens == 0
    assert client.responses.retrieve(made.id).output_text == "hi\n"
    background = client.responses.create(model="cellbox-local", input="1", tools=tools, background=True)
    assert client.responses.cancel(background.id).status in ("cancelled", "completed")
    with client.responses.stream(model="cellbox-local", input="print('s')", tools=tools) as stream:
        assert stream.get_final_response().output_text == "s\n"
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_streamed_file_citations_use_the_sdks_event_name(client: openai.OpenAI, container):
    events = list(
        client.responses.create(
            model="cellbox-local",
            input="open('a.txt', 'w').write('a')",
            tools=[{"type": "code_interpreter", "container": container.id}],
            stream=True,
        )
    )
    (added,) = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert (added.annotation.type, added.annotation.filename) == ("container_file_citation", "a.txt")


def test_documented_refusals(client: openai.OpenAI, container):
    """What the local server does not offer answers plainly (no silent success)."""
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_" + "0" * 48)
    with pytest.raises(openai.BadRequestError, match="Conversations are not available"):
        client.responses.create(
            model="cellbox-local",
            input="1",
            tools=[{"type": "code_interpreter", "container": container.id}],
            conversation="conv_123",
        )


@pytest.mark.asyncio
async def test_the_async_sdk_strictly(server):
    options = {"max_retries": 0, "_strict_response_validation": True}
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=server.token, **options) as c:
        created = await c.containers.create(name="async-strict")
        made = await c.responses.create(
            model="cellbox-local",
            input="print(1)",
            tools=[{"type": "code_interpreter", "container": created.id}],
            background=True,
        )
        assert (await c.responses.cancel(made.id)).status in ("cancelled", "completed")
        assert (await c.responses.retrieve(made.id)).id == made.id
        await c.responses.delete(made.id)
        await c.containers.delete(created.id)
