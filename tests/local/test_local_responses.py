"""Execution through POST /v1/responses with the code_interpreter tool, driven by the official SDK."""

from __future__ import annotations

import base64
import threading
import time

import anyio
import httpx
import openai
import pytest

from cellbox.local.responses.stored import EventStream, Last
from cellbox.local.testing import running_server

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8ffff3f0005fe02fea7d6a4e60000000049454e44ae426082"
    )
).decode()


def test_runs_code_and_returns_a_standard_response(client: openai.OpenAI, container):
    response = client.responses.create(
        model="cellbox-local",
        input="print(6 * 7)",
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=["code_interpreter_call.outputs"],
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "cellbox-local"
    call, message = response.output
    assert call.type == "code_interpreter_call"
    assert (call.status, call.code, call.container_id) == ("completed", "print(6 * 7)", container.id)
    assert [o.type for o in call.outputs] == ["logs"]
    assert call.outputs[0].logs == "42\n"
    assert message.type == "message" and message.role == "assistant"
    assert "42" in response.output_text
    # 12 characters of prompt and 3 of logs read; 12 of code and the reply "42\n" written (4 characters a token).
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 4)


def test_outputs_only_when_included(client, container, run):
    call, _ = run(client, container.id, "print(1)", include=False)
    assert call.outputs is None


def test_first_fenced_python_block_is_the_code(client, container, run, logs):
    text = "Please run this:\n```python\nx = 5\nprint(x + 1)\n```\nand not this:\n```python\nprint('no')\n```"
    call, _ = run(client, container.id, text)
    assert call.code == "x = 5\nprint(x + 1)\n"
    assert logs(call) == "6\n"


def test_state_persists_between_calls(client, container, run, logs):
    run(client, container.id, "counter = 41")
    call, _ = run(client, container.id, "counter += 1\nprint(counter)")
    assert logs(call) == "42\n"


def test_input_as_message_list_uses_last_user_message(client, container, logs):
    response = client.responses.create(
        model="cellbox-local",
        input=[
            {"role": "user", "content": "print('old')"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "print('new')"}]},
        ],
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=["code_interpreter_call.outputs"],
    )
    assert logs(response.output[0]) == "new\n"


def test_exception_completes_with_traceback_in_logs(client, container, run, logs):
    call, _ = run(client, container.id, "def f():\n    raise ValueError('boom')\nf()")
    assert call.status == "completed"
    text = logs(call)
    assert "ValueError: boom" in text
    assert "Traceback" in text
    assert "\x1b[" not in text  # no terminal colours


def test_last_expression_and_stderr_in_logs(client, container, run, logs):
    call, _ = run(client, container.id, "import sys\nsys.stderr.write('warn\\n')\n1 + 2")
    assert "warn" in logs(call)
    assert "3" in logs(call)


def test_output_keeps_the_order_it_was_written_in(client, container, run, logs):
    """Prints, a subprocess's output, stderr, a displayed value and the last expression, as a terminal shows them."""
    code = (
        "import subprocess, sys\nfrom IPython.display import display\nprint('one')\n"
        "subprocess.run(['echo', 'two'])\nprint('three', file=sys.stderr)\ndisplay('four')\n'five'"
    )
    assert logs(run(client, container.id, code)[0]) == "one\ntwo\nthree\n'four'\n'five'\n"


def test_input_says_code_cannot_ask_for_it(client, container, run, logs):
    call, _ = run(client, container.id, "input('name? ')")
    assert "StdinNotImplementedError" in logs(call) and "cannot ask for input" in logs(call)
    call, _ = run(client, container.id, "import getpass\ngetpass.getpass()")  # not a hang on a terminal's absence
    assert "StdinNotImplementedError" in logs(call) and "cannot ask for input" in logs(call)
    assert logs(run(client, container.id, "print('after')")[0]) == "after\n"


def test_images_become_data_urls(client, container, run):
    code = f"from IPython.display import Image, display\nimport base64\ndisplay(Image(data=base64.b64decode('{PNG}')))"
    call, _ = run(client, container.id, code)
    images = [o for o in call.outputs if o.type == "image"]
    assert len(images) == 1
    assert images[0].url == f"data:image/png;base64,{PNG}"


def test_files_written_by_code_are_listed_with_source_assistant(client, container, run):
    up = client.containers.files.create(container_id=container.id, file=("keep.txt", b"k"))
    _, message = run(
        client, container.id, "import os\nos.makedirs('out', exist_ok=True)\nopen('out/r.txt', 'w').write('hi')"
    )
    files = {f.path: f for f in client.containers.files.list(container_id=container.id)}
    assert set(files) == {"/mnt/data/keep.txt", "/mnt/data/out/r.txt"}
    assert files["/mnt/data/out/r.txt"].source == "assistant"
    assert files["/mnt/data/keep.txt"].id == up.id  # unchanged files keep their id
    new = files["/mnt/data/out/r.txt"]
    assert client.containers.files.content.retrieve(new.id, container_id=container.id).read() == b"hi"
    citations = message.content[0].annotations
    assert [(a.type, a.file_id, a.filename) for a in citations] == [("container_file_citation", new.id, "r.txt")]
    # Absolute /mnt/data paths work too, and a rewrite gives the file a new id.
    run(client, container.id, "open('/mnt/data/out/r.txt', 'w').write('changed')")
    again = {f.path: f.id for f in client.containers.files.list(container_id=container.id)}
    assert again["/mnt/data/out/r.txt"] != new.id
    run(client, container.id, "import os; os.remove('out/r.txt')")
    assert [f.path for f in client.containers.files.list(container_id=container.id)] == ["/mnt/data/keep.txt"]


def test_auto_container_with_files_and_memory_limit(client: openai.OpenAI, logs):
    uploaded = client.files.create(file=("in.txt", b"payload"), purpose="user_data")
    response = client.responses.create(
        model="cellbox-local",
        input="print(open('/mnt/data/in.txt').read())",
        tools=[
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [uploaded.id], "memory_limit": "4g"}}
        ],
        include=["code_interpreter_call.outputs"],
    )
    call = response.output[0]
    assert logs(call) == "payload\n"
    created = client.containers.retrieve(call.container_id)
    assert created.memory_limit == "4g"
    client.containers.delete(created.id)


def test_an_auto_container_is_reused_along_the_chain_of_responses(client: openai.OpenAI, logs):
    # [Doc] an auto container "reuses an active container that was used by a previous code_interpreter_call item
    # in the model's context": the context is the chain of previous_response_id, as far as it is kept.
    def ask(code: str, previous: str | None = None):
        return client.responses.create(
            model="cellbox-local",
            input=code,
            tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
            include=["code_interpreter_call.outputs"],
            **({"previous_response_id": previous} if previous else {}),
        )

    first = ask("kept = 41")
    made = first.output[0].container_id
    second = ask("kept += 1\nprint(kept)", first.id)
    assert second.output[0].container_id == made and logs(second.output[0]) == "42\n"
    worded = client.responses.create(model="cellbox-local", input="x", tools=second.tools, tool_choice="none",
                                     previous_response_id=second.id)  # fmt: skip
    third = ask("print(kept)", worded.id)  # a reply without a call: the chain goes on through it
    assert third.output[0].container_id == made and logs(third.output[0]) == "42\n"
    assert ask("print(1)").output[0].container_id != made  # no chain: a new one
    client.responses.delete(third.id)
    client.responses.delete(worded.id)
    client.responses.delete(second.id)
    alone = ask("print('kept' in globals())", first.id)  # the older response still names it
    assert alone.output[0].container_id == made and logs(alone.output[0]) == "True\n"
    client.containers.delete(made)
    fresh = ask("print('kept' in globals())", alone.id)  # an active container only
    assert fresh.output[0].container_id != made and logs(fresh.output[0]) == "False\n"
    client.containers.delete(fresh.output[0].container_id)


def test_unknown_container_is_404(client, run):
    try:
        run(client, "cntr_doesnotexist", "print(1)")
    except openai.NotFoundError as exc:
        assert exc.body["param"] == "container_id"
    else:
        raise AssertionError("expected a 404")


def test_request_errors(http, container):
    r = http.post(
        "/responses", json={"input": "print(1)", "tools": [{"type": "code_interpreter", "container": container.id}]}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = http.post("/responses", json={"model": "cellbox-local", "input": "print(1)"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"
    r = http.post(
        "/responses",
        json={
            "model": "m",
            "input": "x",
            "stream": "yes",
            "tools": [{"type": "code_interpreter", "container": container.id}],
        },
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"


@pytest.mark.integration
def test_timeout_interrupts_and_keeps_state(tmp_path, sdk, run, logs):
    with running_server(tmp_path / "d", exec_timeout=1.5, pool_size=0) as srv, sdk(srv) as c:
        cid = c.containers.create(name="slow").id
        run(c, cid, "kept = 'yes'")
        started = time.monotonic()
        call, _ = run(c, cid, "import time\ntime.sleep(120)")
        assert time.monotonic() - started < 10
        assert call.status == "incomplete"
        assert "KeyboardInterrupt" in logs(call)
        call, _ = run(c, cid, "print(kept)")
        assert logs(call) == "yes\n"
        # A cell that prints without pause is still stopped on time.
        started = time.monotonic()
        call, _ = run(c, cid, "while True:\n    print('spam')")
        assert time.monotonic() - started < 10
        assert call.status == "incomplete"
        # Code that ignores the interrupt loses its kernel, and the container carries on with a new one.
        stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(300)"
        started = time.monotonic()
        call, _ = run(c, cid, stubborn)
        assert time.monotonic() - started < 15
        assert call.status == "failed"
        assert "ignored the interrupt" in logs(call)
        assert logs(run(c, cid, "print('kept' in globals())")[0]) == "False\n"


def test_client_disconnect_interrupts_the_code(server, client, container, run, logs):
    run(client, container.id, "kept = 'still here'")
    body = {
        "model": "cellbox-local",
        "input": "import time\ntime.sleep(600)",
        "tools": [{"type": "code_interpreter", "container": container.id}],
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/responses", json=body, headers=server.headers, timeout=1.0)
    started = time.monotonic()
    call, _ = run(client, container.id, "print(kept)")
    assert time.monotonic() - started < 5  # the sleeping cell was interrupted, not waited for
    assert logs(call) == "still here\n"


@pytest.mark.asyncio
async def test_the_async_sdk_works_too(server):
    options = {"max_retries": 0, "_strict_response_validation": True}
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=server.token, **options) as c:
        created = await c.containers.create(name="async")
        await c.containers.files.create(container_id=created.id, file=("a.txt", b"async bytes"))
        response = await c.responses.create(
            model="cellbox-local",
            input="print(open('a.txt').read())",
            tools=[{"type": "code_interpreter", "container": created.id}],
            include=["code_interpreter_call.outputs"],
        )
        assert response.output[0].outputs[0].logs == "async bytes\n"
        await c.containers.delete(created.id)


def test_errors_carry_a_request_id(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.containers.retrieve("cntr_missing")
    assert err.value.request_id.startswith("req_")


def test_a_file_name_that_is_not_utf8_is_skipped_not_fatal(client, container, run, logs):
    call, _ = run(client, container.id, "open(b'bad\\xff.txt', 'w').write('x')\nopen('good.txt', 'w').write('y')")
    assert call.status == "completed"
    assert [f.path for f in client.containers.files.list(container_id=container.id)] == ["/mnt/data/good.txt"]


def test_streamed_events_build_the_same_response(client, container):
    client.containers.files.create(container_id=container.id, file=("in.txt", b"streamed"))
    events = list(
        client.responses.create(
            model="cellbox-local",
            input="print(open('in.txt').read())\nopen('out.txt', 'w').write('o')",
            tools=[{"type": "code_interpreter", "container": container.id}],
            include=["code_interpreter_call.outputs"],
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for expected in [
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_text.delta",
    ]:
        assert expected in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    call, message = final.output
    assert call.outputs[0].logs.startswith("streamed\n")
    assert message.content[0].annotations[0].filename == "out.txt"
    # The SDK's accumulating helper puts the same response together from the events.
    with client.responses.stream(
        model="cellbox-local",
        input="print('again')",
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=["code_interpreter_call.outputs"],
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        assembled = stream.get_final_response()
    assert text == "again\n"
    assert assembled.output_text == "again\n"
    assert assembled.output[0].outputs[0].logs == "again\n"


def test_streaming_to_an_unknown_container_is_a_plain_404(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model="cellbox-local",
            input="print(1)",
            tools=[{"type": "code_interpreter", "container": "cntr_nope"}],
            stream=True,
        )


def test_leaving_a_stream_interrupts_the_code(server, client, container, run, logs):
    run(client, container.id, "kept = 'still here'")
    body = {
        "model": "cellbox-local",
        "input": "import time\ntime.sleep(600)",
        "tools": [{"type": "code_interpreter", "container": container.id}],
        "stream": True,
    }
    with httpx.stream("POST", f"{server.base_url}/responses", json=body, headers=server.headers, timeout=30) as r:
        for line in r.iter_lines():
            if "code_interpreter_call.interpreting" in line:
                break  # the code is running: hang up
    started = time.monotonic()
    call, _ = run(client, container.id, "print(kept)")
    assert time.monotonic() - started < 5
    assert logs(call) == "still here\n"


def _delete_soon(client: openai.OpenAI, container_id: str) -> threading.Timer:
    deleter = threading.Timer(1.0, client.containers.delete, (container_id,))
    deleter.start()
    return deleter


def test_deleting_the_container_while_its_code_runs_answers_404(client, container):
    deleter = _delete_soon(client, container.id)
    started = time.monotonic()
    try:
        with pytest.raises(openai.NotFoundError, match="No container found"):
            client.responses.create(
                model="cellbox-local",
                input="import time\ntime.sleep(60)",
                tools=[{"type": "code_interpreter", "container": container.id}],
            )
    finally:
        deleter.join()
    assert time.monotonic() - started < 10  # the run ends with its container, not at the sleep's end


def test_deleting_the_container_while_a_stream_runs_ends_it_with_an_error_event(client, container):
    deleter = _delete_soon(client, container.id)
    try:
        events = list(
            client.responses.create(
                model="cellbox-local",
                input="import time\ntime.sleep(60)",
                tools=[{"type": "code_interpreter", "container": container.id}],
                stream=True,
            )
        )
    finally:
        deleter.join()
    error, failed = events[-2:]
    assert error.type == "error" and error.code == "not_found" and "No container found" in error.message
    assert failed.type == "response.failed" and failed.response.status == "failed"
    # The SDK knows a fixed list of response error codes: the run's failure is a server_error that says why.
    assert failed.response.error.code == "server_error" and "No container found" in failed.response.error.message


def test_processes_the_code_starts_have_no_line_to_the_server(client, container, run, logs):
    """A shell the code starts (os.system passes on every inheritable descriptor) holds its output pipe, not the
    kernel's sockets to the server."""
    code = "import os\nos.system('for fd in /proc/$$/fd/*; do readlink $fd; done')"
    links = logs(run(client, container.id, code)[0]).split()
    assert any(link.startswith("pipe:") for link in links), links
    assert not [link for link in links if link.startswith("socket:")], links


def test_the_kernel_is_an_ipython_shell(client, container, run, logs):
    """What a notebook's kernel takes: magics, shell commands, top-level await, the inline matplotlib backend."""
    code = "import asyncio\n%env WHERE=jail\n!echo from-shell $WHERE\nawait asyncio.sleep(0)\nprint('awaited')"
    # A shell command's lines end as a terminal's do (IPython runs it on a pseudo-terminal, as in ipykernel).
    assert (
        logs(run(client, container.id, code)[0]).replace("\r\n", "\n") == "env: WHERE=jail\nfrom-shell jail\nawaited\n"
    )
    call, _ = run(client, container.id, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert [o.url[:22] for o in call.outputs if o.type == "image"] == ["data:image/png;base64,"]


def test_an_event_streams_last_chunk_ends_its_body_in_one_write() -> None:
    """The chunk carrying the response's last event ends the body too (one socket write and one wake of the
    reader, not a second for an empty chunk); a stream that ends otherwise ends with the empty one."""

    async def events(*chunks: bytes):
        for chunk in chunks:
            yield chunk

    async def sent(stream: EventStream) -> list[dict]:
        messages: list[dict] = []

        async def send(message: dict) -> None:
            messages.append(message)

        await stream.stream_response(send)
        return messages

    done = Last(b'event: response.completed\ndata: {"type": "response.completed"}\n\n')
    messages = anyio.run(sent, EventStream(events(b"event: response.created\n\n", done, b"never sent")))
    bodies = [(m["body"], m["more_body"]) for m in messages[1:]]
    assert bodies == [(b"event: response.created\n\n", True), (done, False)]
    messages = anyio.run(sent, EventStream(events(b"event: response.created\n\n")))  # cut short: no last event
    assert [(m["body"], m["more_body"]) for m in messages[1:]] == [(b"event: response.created\n\n", True), (b"", False)]
