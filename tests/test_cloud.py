"""cellbox against the services as they are (issue 8, part 2), proved against the local server with the openai
and oci profiles (every model quirk on, a lagging listing) and, for faults no server gives on demand, a
transport that changes what the real server answered."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import cellbox
from cellbox.api import CellboxError, Client, ConfigurationError
from cellbox.api.config import load_settings
from cellbox.local.testing import running_server, wait_until
from cellbox.session import event_stream as following
from cellbox.session import protocol, remote_files, running
from cellbox.session.binding import refuses_ids
from cellbox.session.errors import LoaderMismatch, NotAuthorized, RunFailed, TimeLimit
from cellbox.session.protocol import LiveOutput

Hook = Callable[[httpx.Request], "httpx.Response | None"]


class Faults(httpx.BaseTransport):
    """The real transport, with a log of what was sent and hooks that may answer instead of the server
    (`before`) or change its answer (`after`)."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.sent: list[tuple[str, str, dict | None]] = []
        self.before: list[Hook] = []
        self.after: list[Callable[[httpx.Request, httpx.Response], httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = None
        if request.url.path.endswith("/responses") and request.method == "POST":
            body = json.loads(request.read())
        self.sent.append((request.method, request.url.path.removeprefix("/v1"), body))
        for hook in self.before:
            answer = hook(request)
            if answer is not None:
                return answer
        response = self.real.handle_request(request)
        for change in self.after:
            response = change(request, response)
        return response

    def close(self) -> None:
        self.real.close()

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, path, _ in self.sent if m == method and path.startswith(prefix))

    def bodies(self) -> list[dict]:
        return [body for _, _, body in self.sent if body is not None]

    def listings(self, container_id: str) -> int:
        return sum(1 for m, path, _ in self.sent if m == "GET" and path == f"/containers/{container_id}/files")


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def sandbox(use_cloud_server: str, faults: Faults) -> Iterator[cellbox.Sandbox]:
    client = Client(http_client=httpx.Client(transport=faults, timeout=60))
    sb = cellbox.Sandbox.create(name="cloud", client=client)
    yield sb
    sb.delete()
    client.close()


@pytest.mark.quirks
def test_the_request_bounds_the_model_and_a_background_run_is_deleted_once_read(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    if sandbox.link.binding == "auto":
        pytest.skip("an auto container's requests and the response kept: test_an_auto_container_is_made_by_one_…")
    assert sandbox.run("1 + 1").value == 2
    body = faults.bodies()[0]
    assert body["tool_choice"] == {"type": "code_interpreter"} and body["max_tool_calls"] == 1
    assert body["parallel_tool_calls"] is False and body["instructions"] == protocol.INSTRUCTIONS
    assert body["background"] is True and body["store"] is True  # polling needs it stored …
    assert sandbox.runner.cleanup.wait()  # … and it is deleted, after the cell returned
    assert faults.count("DELETE", "/responses/") == 1  # one response ran the cell


def test_reasoning_effort_is_sent_when_configured(
    use_cloud_server: str, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_REASONING_EFFORT", "low")
    with Client(http_client=httpx.Client(transport=faults, timeout=60)) as client:
        sb = cellbox.Sandbox.create(name="effort", client=client)
        try:
            assert sb.run("3").value == 3
        finally:
            sb.delete()
    assert faults.bodies()[0]["reasoning"] == {"effort": "low"}


@pytest.mark.cloud_profiles("plain")
def test_cells_run_in_the_foreground_and_store_nothing_when_asked(
    use_cloud_server: str, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    # For zero-data-retention organisations: background responses are stored while they run.
    monkeypatch.setenv("CELLBOX_BACKGROUND", "false")
    with Client(http_client=httpx.Client(transport=faults, timeout=60)) as client:
        assert client.settings.background is False and client.settings.describe()["background"] is False
        sb = cellbox.Sandbox.create(name="foreground", client=client)
        try:
            assert sb.run("x = 2").ok and sb.run("x * 3").value == 6
        finally:
            sb.delete()
    asked = [body for body in faults.bodies() if "input" in body]
    assert len(asked) == 2 and all("background" not in body and body["store"] is False for body in asked)
    assert faults.count("GET", "/responses/") == 0 and faults.count("DELETE", "/responses/") == 0  # none stored
    monkeypatch.setenv("CELLBOX_BACKGROUND", "sometimes")
    with pytest.raises(ConfigurationError, match="background must be true or false, got 'sometimes'"):
        Client()


@pytest.mark.cloud_profiles("openai", "oci")
def test_a_cell_runs_once_whatever_the_model_does(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    # The quirky model restyles every call, ignores max_tool_calls, and now and then answers without a call or
    # with an incomplete one: each cell still runs exactly once, and replies that ran nothing are asked again.
    runs = [sandbox.run("ran = 0")]
    cells = 6
    for n in range(cells):
        runs.append(sandbox.run("ran += 1\nraise ValueError(ran)"))
        assert runs[-1].error is not None and runs[-1].error.evalue == str(n + 1)
    runs.append(sandbox.run("ran"))
    assert runs[-1].value == cells
    asked = faults.count("POST", "/responses")
    assert asked > cells + 2  # some replies did not run the loader: asked again
    # Every billed response is counted in its run's usage, and every second one is said in its notes.
    assert sum(run.usage.responses for run in runs if run.usage) == asked
    again = [run for run in runs if run.usage and run.usage.responses == 2]
    assert len(again) == asked - len(runs) and all(
        any("a second billed response" in note for note in run.notes) for run in again
    ), [run.notes for run in again]


@pytest.mark.quirks
def test_uploads_are_placed_where_push_said_and_cellbox_files_stay_private(
    sandbox: cellbox.Sandbox, faults: Faults, tmp_path: Path
) -> None:
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "c.txt").write_text("nested")
    (tmp_path / "top.csv").write_text("x\n1\n")
    assert sandbox.push(str(tmp_path / "data"), str(tmp_path / "top.csv")) == ["data/sub/c.txt", "top.csv"]
    sandbox.push(pd.DataFrame({"v": [1, 2]}), name="t")
    shown = sorted(f.path or "" for f in sandbox.files())
    assert shown == ["/mnt/data/data/sub/c.txt", "/mnt/data/top.csv"]  # where push said, nothing of cellbox's
    code = "import pandas as pd\n(open('data/sub/c.txt').read(), int(pd.read_csv('top.csv').x.sum()), int(t.v.sum()))"
    assert sandbox.run(code).value == ("nested", 1, 3)
    for _ in range(3):
        assert sandbox.run("None").ok

    # Each run's request is removed by the runtime when it ends (a lagging listing shows that a little later),
    # so the client sends no deletes for them; only the latest run's record is kept.
    def requests_listed() -> list[str]:
        return [f.path or "" for f in sandbox.files(include_private=True) if (f.path or "").endswith("request.json")]

    wait_until(lambda: not requests_listed(), timeout=10, what="the run requests to go")
    every = [f.path or "" for f in sandbox.files(include_private=True)]
    assert len([p for p in every if "/result-" in p]) <= 1
    assert sandbox.runner.cleanup.wait() and faults.count("DELETE", f"/containers/{sandbox.id}/files/") == 0
    # Files the runtime moved into place are files written by code: a lagging listing shows them a little later.
    wait_until(lambda: sorted(f.path or "" for f in sandbox.files()) == shown, timeout=10, what="the placed files")


@pytest.mark.quirks
def test_small_outputs_come_inside_the_result_record(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    run = sandbox.run(
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt, pandas as pd\n"
        "plt.plot([1, 2])\nsmall = pd.DataFrame({'v': [1, 2]})\nsmall",
        outputs=["small"],
    )
    assert run.ok and run.variables["small"].v.tolist() == [1, 2] and run.value.v.tolist() == [1, 2]
    # The open figure comes back as the inline backend would show it: a PNG display, inside the result record.
    assert any("image/png" in shown.data for shown in run.displays)
    # Too big for the logs, the record is a download, found by the response's citation of it: no listing.
    assert faults.listings(sandbox.id) == 0


@pytest.mark.cloud_profiles("plain")
def test_a_file_missing_from_listings_is_reported_and_content_404s_are_retried(
    sandbox: cellbox.Sandbox, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_files, "LISTING_WAIT", 0.5)

    def hide(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/files"):
            body = json.loads(response.read())
            body["data"] = [f for f in body["data"] if not f["path"].endswith("hidden.txt")]
            return httpx.Response(200, json=body, headers={"x-request-id": "req_x"})
        return response

    faults.after.append(hide)
    run = sandbox.run("open('hidden.txt', 'w').write('h')\nopen('shown.txt', 'w').write('s')")
    assert [a.name for a in run.artifacts] == ["shown.txt"]
    (note,) = run.notes
    assert "the run wrote /mnt/data/hidden.txt, not in the container's file list" in note
    missing = {"error": {"message": "File not found on container", "type": "invalid_request_error"}}
    first_404 = [True]

    def not_yet(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/content") and first_404.pop() if first_404 else False:
            return httpx.Response(404, json=missing)
        return None

    faults.before.append(not_yet)
    assert run.artifacts[0].read() == b"s"  # the first 404 was waited out


def refuse_background(request: httpx.Request) -> httpx.Response | None:
    posted = request.method == "POST" and request.url.path.endswith("/responses")
    if posted and "background" in json.loads(request.read()):
        error = {"message": "Unknown parameter: 'background'.", "param": "background", "code": "unknown_parameter"}
        return httpx.Response(400, json={"error": error})
    return None


@pytest.mark.cloud_profiles("plain")
def test_a_backend_without_background_runs_cells_in_the_foreground(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    faults.before.append(refuse_background)
    assert sandbox.run("1").value == 1
    assert sandbox.run("2").value == 2
    bodies = faults.bodies()
    assert ["background" in b for b in bodies] == [True, False, False]  # refused once, then never sent
    assert [b["store"] for b in bodies[1:]] == [True, False]  # stored only while it meant to poll

    def interrupt(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/responses"):
            raise KeyboardInterrupt
        return None

    faults.before.append(interrupt)
    with pytest.raises(KeyboardInterrupt, match=r"may still be running.*foreground"):
        sandbox.run("import time\ntime.sleep(1)")


@pytest.mark.cloud_profiles("plain", "oci")
def test_an_interrupt_cancels_a_background_run(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    sandbox.run("ticks = 0")
    # Ctrl-C as the kernel delivers it: SIGINT to the process, landing wherever the cell's thread waits (for the
    # run's event stream here: OCI streams background responses too).
    # Python's own handler, as a kernel has: an in-process Jupyter server of an earlier test may have left its own.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="the cell was stopped while it ran"):
            sandbox.run("import time\nfor _ in range(100):\n    ticks += 1\n    time.sleep(0.1)")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert faults.count("POST", "/responses/") == 1  # …/cancel
    assert faults.count("GET", "/responses/") == 0
    stopped = sandbox.run("ticks").value
    time.sleep(0.5)
    assert sandbox.run("ticks").value == stopped < 100


@pytest.mark.cloud_profiles("plain")
def test_a_run_past_its_time_limit_is_cancelled(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    started = time.monotonic()
    with pytest.raises(TimeLimit, match=r"stopped after 1 s \(its time limit\)"):
        sandbox.run("import time\ntime.sleep(30)", timeout=1)
    assert time.monotonic() - started < 10 and faults.count("POST", "/responses/") == 1
    assert sandbox.run("'alive'").value == "alive"


@pytest.mark.cloud_profiles("plain", "oci")
def test_a_cells_end_is_told_by_its_stream_where_the_backend_streams(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    events: list[tuple[int, str]] = []
    run = sandbox.run(
        "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')",
        live=LiveOutput(lambda event: events.append((faults.count("GET", "/responses/"), event.get("text", "")))),
    )
    assert run.stdout == "a\nb\n"
    # Followed by its events (OCI streams background responses as OpenAI does): asked once, never polled, and the
    # output printed meanwhile was read while it ran.
    assert [(body.get("stream"), body.get("background")) for body in faults.bodies()] == [(True, True)]
    assert faults.count("GET", "/responses/") == 0
    assert (0, "a\n") in events
    assert sandbox.run("1").value == 1
    assert all(body.get("stream") is True for body in faults.bodies()[1:])  # and asked to stream again


@pytest.mark.cloud_profiles("plain")
def test_a_long_printing_cell_reads_its_output_within_the_budget(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    lines: list[str] = []
    started = time.monotonic()
    run = sandbox.run(
        "import time\nfor i in range(40):\n    print(i, flush=True)\n    time.sleep(0.25)",
        live=LiveOutput(lambda event: lines.append(event.get("text", ""))),
    )
    took = time.monotonic() - started
    assert run.ok and run.stdout == "".join(f"{i}\n" for i in range(40))
    assert "0\n" in lines  # the first line shows while the cell runs
    # Read often at first, then less and less: ~13 reads in 10 s, where every quarter second made 40.
    reads = faults.count("GET", f"/containers/{sandbox.id}/files/")
    assert 3 <= reads <= 4 + took / 1.2, (reads, took)
    containers = sum(1 for _, path, _ in faults.sent if path.startswith("/containers"))
    assert containers <= 60 * max(1.0, took / 60), containers  # the cell's whole share of a minute


@pytest.mark.cloud_profiles("plain")
def test_live_output_waits_when_the_budget_is_nearly_spent(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    sandbox.client.budget.per_minute = sandbox.client.budget.sent_in_last_minute() + 12  # 12 left: 2 over reserve
    lines: list[str] = []
    run = sandbox.run(
        "import time\nfor i in range(12):\n    print(i, flush=True)\n    time.sleep(0.25)",
        live=LiveOutput(lambda event: lines.append(event.get("text", ""))),
    )
    assert run.ok and run.stdout.count("\n") == 12  # everything came, with the record
    reads = faults.count("GET", f"/containers/{sandbox.id}/files/")
    assert reads <= 3, reads  # the rest of the minute is left to the calls that matter


@pytest.mark.cloud_profiles("plain", "oci")
def test_cells_run_one_after_another_reuse_their_connections(
    sandbox: cellbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream closed before its end takes its connection down: over TLS, a new handshake for every cell.
    import socket

    made: list[object] = []
    real = socket.create_connection

    def counted(*args: object, **kwargs: object) -> socket.socket:
        made.append(args[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    for _ in range(3):  # the connections a cell uses at once: the request upload, the response, the tidy-up
        sandbox.run("pass")
    monkeypatch.setattr(socket, "create_connection", counted)
    for n in range(10):
        assert sandbox.run(f"{n} * 2").value == n * 2
    # The pool may still grow when more requests than before happen to overlap (polls, on a backend that refuses
    # streams); a stream that took its connection down would make one per cell.
    assert len(made) <= 2, made


def _is_request_upload(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/files") and b"request.json" in request.read()


@pytest.mark.cloud_profiles("plain", "openai")
def test_a_runs_request_is_uploaded_while_the_model_is_asked_where_the_backend_keeps_names(
    sandbox: cellbox.Sandbox, faults: Faults, cloud_profile: str
) -> None:
    sandbox.run("1")  # the runtime's upload shows whether the backend keeps upload names
    moments: dict[str, float] = {}

    def slow_upload(request: httpx.Request) -> httpx.Response | None:
        if _is_request_upload(request):
            time.sleep(0.5)
            response = faults.real.handle_request(request)
            moments["uploaded"] = time.monotonic()
            return response
        if request.method == "POST" and request.url.path.endswith("/responses"):
            moments.setdefault("asked", time.monotonic())
        return None

    faults.before.append(slow_upload)
    assert sandbox.run("print('here')\n6 * 7").value == 42
    if cloud_profile == "plain":  # kept names: the model was asked while the request was on its way
        assert moments["asked"] < moments["uploaded"]
    else:  # OpenAI's prefixed names: the loader names the path the upload answered, so it goes first
        assert moments["uploaded"] < moments["asked"]


@pytest.mark.cloud_profiles("plain")
def test_a_request_upload_that_fails_cancels_the_run_waiting_for_it(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    sandbox.run("ran = 0")
    full = {"error": {"message": "The disk is full.", "type": "server_error", "code": "disk_full"}}

    def disk_full(request: httpx.Request) -> httpx.Response | None:
        if _is_request_upload(request):
            time.sleep(0.3)  # the model has been asked meanwhile; the runtime waits for the request
            return httpx.Response(507, json=full)
        return None

    faults.before.append(disk_full)
    started = time.monotonic()
    with pytest.raises(CellboxError, match="The disk is full"):
        sandbox.run("ran = 1")
    assert time.monotonic() - started < 10 and faults.count("POST", "/responses/") == 1  # …/cancel
    faults.before.clear()
    assert sandbox.run("ran").value == 0  # nothing ran, and the kernel is free again


class _Stalling(httpx.SyncByteStream):
    """The real event stream up to the code's start, then nothing, and no end: a connection gone quiet."""

    def __init__(self, real: httpx.Response, released: threading.Event) -> None:
        self.real, self.released = real, released
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for line in self.real.iter_lines():
            yield (line + "\n").encode()
            if "code_interpreter_call.interpreting" in line:
                break
        self.released.wait(30)

    def close(self) -> None:
        self.closed = True
        self.real.close()


def _streams_replaced(faults: Faults, stream: Callable[[httpx.Response], _Stalling]) -> list[_Stalling]:
    """Every response's event stream as `stream` gives it instead of the server's; the streams given, in order."""
    given: list[_Stalling] = []

    def replace(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/responses") and response.status_code == 200:
            given.append(stream(response))
            return httpx.Response(200, headers=response.headers, stream=given[-1])
        return response

    faults.after.append(replace)
    return given


@pytest.mark.cloud_profiles("plain")
def test_a_stream_gone_quiet_without_ending_leaves_the_run_to_be_polled(
    sandbox: cellbox.Sandbox, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(running, "STREAM_CHECK", 0.3)
    released = threading.Event()
    stalled = _streams_replaced(faults, lambda response: _Stalling(response, released))
    try:
        started = time.monotonic()
        assert sandbox.run("import time\ntime.sleep(0.5)\n'woke'").value == "woke"
        assert time.monotonic() - started < 5 and faults.count("GET", "/responses/") >= 1
        assert stalled and stalled[0].closed  # the quiet stream is closed, not left to its reading thread
    finally:
        released.set()


class _Lingering(_Stalling):
    """The whole real event stream, then no end: a proxy that keeps a finished stream open."""

    def __iter__(self) -> Iterator[bytes]:
        for line in self.real.iter_lines():
            yield (line + "\n").encode()
        self.released.wait(30)


@pytest.mark.cloud_profiles("plain")
def test_a_finished_stream_kept_open_is_closed_and_not_waited_for_again(
    sandbox: cellbox.Sandbox, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(following, "_lingering", set())
    released = threading.Event()
    monkeypatch.setattr(following, "DRAIN", 2.0)
    kept = _streams_replaced(faults, lambda response: _Lingering(response, released))
    try:
        started = time.monotonic()
        assert sandbox.run("1 + 1").value == 2
        assert time.monotonic() - started >= 2.0  # its end was waited for, DRAIN seconds
        assert kept[0].closed and following._lingering  # then it was closed, and the backend remembered
        started = time.monotonic()
        assert sandbox.run("2 + 2").value == 4
        assert kept[1].closed and time.monotonic() - started < 1.5  # not waited for again (a run takes ~0.1 s)
        assert faults.count("GET", "/responses/") == 0  # the run's end came by its events both times
    finally:
        released.set()


@pytest.mark.integration
def test_a_stream_a_proxy_cuts_short_leaves_the_run_to_be_polled(tmp_path: Path) -> None:
    with running_server(tmp_path, pool_size=1, streaming="cut") as server:
        settings = dataclasses.replace(load_settings(base_url=server.base_url, api_key=server.token), model="x")
        client = Client(settings=dataclasses.replace(settings, model="cellbox-local"))
        with cellbox.Sandbox.create(client=client) as sandbox:
            lines: list[str] = []
            run = sandbox.run(
                "import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.2)\n'done'",
                live=LiveOutput(lambda event: lines.append(event.get("text", ""))),
            )
            assert run.value == "done" and run.stdout == "0\n1\n2\n3\n"
            assert "0\n" in lines  # read while it ran, though the stream had ended
            assert sandbox.run("2 + 2").value == 4
        client.close()


def answer(body: dict) -> Hook:
    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.endswith("/responses"):
            return httpx.Response(200, json={"id": "resp_x", "object": "response", **body})
        return None

    return hook


@pytest.mark.cloud_profiles("plain")
def test_replies_that_never_run_the_cell_are_asked_again_once_then_said_in_words(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    no = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "No."}]}]
    faults.before.append(answer({"status": "completed", "output": no}))
    with pytest.raises(RunFailed, match=r"replied without calling the python tool: 'No\.'\. Asked twice"):
        sandbox.run("1")
    assert faults.count("POST", "/responses") == 2
    failed = {"status": "failed", "output": [], "error": {"code": "rate_limit_exceeded", "message": "Slow down."}}
    faults.before[:] = [answer(failed)]
    with pytest.raises(RunFailed, match=r"the response failed: rate_limit_exceeded: Slow down\."):
        sandbox.run("1")
    assert faults.count("POST", "/responses") == 3  # a failure is said, not asked again


@pytest.mark.cloud_profiles("plain")
def test_revive_deletes_the_old_container_and_delete_confirms(use_cloud_server: str) -> None:
    sb = cellbox.Sandbox.create(name="revived")
    old = sb.id
    sb.revive()
    with Client() as client:
        with pytest.raises(cellbox.api.NotFoundError):
            client.containers.retrieve(old)
        current = sb.id
        sb.delete()
        with pytest.raises(cellbox.api.NotFoundError):
            client.containers.retrieve(current)


@pytest.mark.cloud_profiles("plain")
def test_delete_that_does_not_take_is_said(use_cloud_server: str, faults: Faults, monkeypatch) -> None:
    monkeypatch.setattr("cellbox.session.sandbox.DELETE_WAIT", 0.5)
    with Client(http_client=httpx.Client(transport=faults, timeout=60)) as client:
        sb = cellbox.Sandbox.create(name="sticky", client=client)
        deleted = {"id": sb.id, "object": "container.deleted", "deleted": True}
        faults.before.append(lambda r: httpx.Response(200, json=deleted) if r.method == "DELETE" else None)
        with pytest.raises(cellbox.api.CellboxError, match="still shows it"):
            sb.delete()
        faults.before.clear()
        sb.delete()


@pytest.mark.cloud_profiles("oci")
def test_an_oci_authorization_failure_is_not_a_gone_container(sandbox: cellbox.Sandbox, use_cloud_server: str) -> None:
    with Client(api_key="not-the-key") as wrong:
        intruder = cellbox.Sandbox(wrong, sandbox.container, model="cellbox-local")
        with pytest.raises(NotAuthorized, match="authorization failure, not a missing container"):
            intruder.files()
    assert sandbox.run("'still here'").value == "still here"


@pytest.mark.cloud_profiles("plain")
def test_a_model_that_runs_the_loader_twice_runs_the_cell_once(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    # A backend without max_tool_calls whose model runs the call again (OpenAI's guide: "until it succeeds"):
    # every response here carries a second call of the same code, really run in the container.
    sandbox.client.refused_parameters[("/responses", sandbox.model)] = {"background"}
    seconds: list[dict] = []

    def twice(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/responses"):
            return response
        again = httpx.Request(request.method, request.url, headers=request.headers, content=request.read())
        first, second = json.loads(response.read()), json.loads(faults.real.handle_request(again).read())
        calls = [item for item in second["output"] if item["type"] == "code_interpreter_call"]
        seconds.extend(calls)
        return httpx.Response(200, json={**first, "output": first["output"] + calls})

    faults.after.append(twice)
    sandbox.run("ran = 0")
    for n in (1, 2, 3):
        run = sandbox.run("ran += 1\nraise ValueError(ran)")
        assert run.error is not None and run.error.evalue == str(n)
    assert sandbox.run("ran").value == 3
    assert len(seconds) == 5 and all(
        protocol.REFUSED_MARKER in "".join(o["logs"] for o in c["outputs"]) for c in seconds
    )


@pytest.mark.cloud_profiles("openai")
def test_uploads_a_failed_run_did_not_place_are_placed_by_the_next(
    sandbox: cellbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "late.txt").write_text("placed later")
    sandbox.push(str(tmp_path / "late.txt"))
    with monkeypatch.context() as patched:
        patched.setattr(protocol, "run_prompt", lambda loader: "```python\nprint('something else')\n```")
        with pytest.raises(LoaderMismatch, match="state is uncertain"):
            sandbox.run("1")
    assert sandbox.run("open('late.txt').read()").value == "placed later"


def finished_responses(faults: Faults) -> list[dict]:
    """Every finished response the server sent back (created, polled or cancelled), as JSON, from now on."""
    seen: list[dict] = []

    def keep(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if "/responses" in request.url.path and request.method in ("GET", "POST") and response.status_code == 200:
            for body in answered(response):
                if body.get("object") == "response" and body.get("status") not in ("queued", "in_progress"):
                    seen.append(body)
        return response

    faults.after.append(keep)
    return seen


def _events(response: httpx.Response) -> list[dict]:
    lines = response.read().decode().splitlines()
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


def _streamed(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def answered(response: httpx.Response) -> list[dict]:
    """The response an answer carries: its JSON, or the last response its events carried (read whole; the
    stream is then read again from memory)."""
    if not _streamed(response):
        return [json.loads(response.read())]
    return [event["response"] for event in _events(response) if "response" in event][-1:]


def rewritten(response: httpx.Response, change: Callable[[dict], None]) -> httpx.Response:
    """The answer with `change` made to the response it carries (JSON, or every response its events carry)."""
    if not _streamed(response):
        body = json.loads(response.read())
        change(body)
        return httpx.Response(response.status_code, json=body)
    events = _events(response)
    for event in events:
        if "response" in event:
            change(event["response"])
    text = "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events)
    return httpx.Response(response.status_code, text=text, headers={"content-type": "text/event-stream"})


def loader_logs(response: dict) -> list[str]:
    return [
        "".join(o.get("logs") or "" for o in item.get("outputs") or [] if o.get("type") == "logs")
        for item in response["output"]
        if item["type"] == "code_interpreter_call"
    ]


BIG_CELLS = {
    "print('x' * 100_000)": lambda run: run.stdout == "x" * 100_000 + "\n",
    # Streams keep their first 2,000,000 characters (capture.MAX_TEXT), and say how many more there were.
    "print('y' * 5_000_000)": lambda run: (
        run.stdout.startswith("y" * 2_000_000) and "3000001 more characters not shown" in run.stdout
    ),
    "import pandas as pd\npd.DataFrame({'v': range(5000), 'w': ['z' * 20] * 5000})": lambda run: (
        run.value.shape == (5000, 2) and "<table" in run.value_bundle.data["text/html"]
    ),
    "import matplotlib.pyplot as plt\nplt.plot(range(100))\nplt.title('t' * 50)": lambda run: any(
        "image/png" in shown.data for shown in run.displays
    ),
    "from IPython.display import HTML, display\ndisplay(HTML('<b>' + 'h' * 300_000 + '</b>'))": lambda run: (
        run.displays[0].data["text/html"] == "<b>" + "h" * 300_000 + "</b>"
    ),
    "import subprocess\nsubprocess.run(['sh', '-c', 'head -c 200000 /dev/zero | tr \"\\\\0\" a'])": lambda run: (
        run.stdout.count("a") == 200_000
    ),
    "raise ValueError('e' * 100_000)": lambda run: run.error is not None and run.error.evalue == "e" * 100_000,
}


@pytest.mark.quirks
def test_the_model_reads_a_short_line_whatever_the_cell_prints_or_returns(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    answers = finished_responses(faults)
    runs = []
    for code, complete in BIG_CELLS.items():
        first = len(answers)
        run = sandbox.run(code)
        assert complete(run), code
        ours = answers[first:]
        # Every call of the loader printed one short line for the model (the record goes as a file) ...
        assert ours and all(len(logs.encode()) <= 1000 for answer in ours for logs in loader_logs(answer)), code
        # ... so what it reads (prompt, instructions, logs) stays small, and the run says what it cost.
        assert all(answer["usage"]["input_tokens"] <= 1000 for answer in ours), code
        assert run.usage is not None and run.usage.responses == len(ours)
        assert run.usage.input_tokens == sum(answer["usage"]["input_tokens"] for answer in ours)
        assert run.usage.output_tokens == sum(answer["usage"]["output_tokens"] for answer in ours)
        runs.append(run)
    # The session's total is every response's, and the sum of its runs'.
    assert sandbox.usage is not None and sandbox.runner.responses == len(answers)
    assert sandbox.usage.total_tokens == sum(a["usage"]["total_tokens"] for a in answers)
    assert sandbox.usage.total_tokens == sum(run.usage.total_tokens for run in runs if run.usage)
    assert faults.listings(sandbox.id) == 0  # each record was found by its citation


@pytest.mark.cloud_profiles("plain")
def test_the_reply_is_bounded_and_a_cut_one_is_asked_again_without_the_bound(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    cut = {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"type": "reasoning", "id": "rs_1", "summary": []}],
        "usage": {"input_tokens": 150, "output_tokens": protocol.MAX_OUTPUT_TOKENS, "total_tokens": 4246},
    }
    cut_once = answer(cut)

    def first_reply_cut(request: httpx.Request) -> httpx.Response | None:
        cutting = request.method == "POST" and request.url.path.endswith("/responses") and not faults.bodies()[1:]
        return cut_once(request) if cutting else None

    faults.before.append(first_reply_cut)
    run = sandbox.run("'ran'")
    assert run.value == "ran"
    (note,) = run.notes
    assert "reached its bound (max_output_tokens 4096) before it ran the cell" in note and "asked again" in note
    first, second = faults.bodies()
    effort = {"effort": protocol.REASONING_EFFORT}
    assert first["max_output_tokens"] == protocol.MAX_OUTPUT_TOKENS and first["reasoning"] == effort
    assert "max_output_tokens" not in second and second["reasoning"] == effort
    assert run.usage is not None and run.usage.responses == 2 and run.usage.output_tokens > protocol.MAX_OUTPUT_TOKENS
    assert sandbox.run("1").value == 1 and "max_output_tokens" not in faults.bodies()[-1]  # not sent again


@pytest.mark.cloud_profiles("plain")
def test_a_backend_refusing_the_effort_gets_the_request_without_it(sandbox: cellbox.Sandbox, faults: Faults) -> None:
    def refuse_effort(request: httpx.Request) -> httpx.Response | None:
        posted = request.method == "POST" and request.url.path.endswith("/responses")
        if posted and (json.loads(request.read()).get("reasoning") or {}).get("effort") == protocol.REASONING_EFFORT:
            error = {
                "message": f"Unsupported value: '{protocol.REASONING_EFFORT}' is not supported with this model.",
                "param": "reasoning.effort",
                "code": "unsupported_value",
            }
            return httpx.Response(400, json={"error": error})
        return None

    faults.before.append(refuse_effort)
    assert sandbox.run("2").value == 2 and sandbox.run("3").value == 3
    sent = faults.bodies()
    assert [("reasoning" in body) for body in sent] == [True, False, False]
    assert all(body["max_output_tokens"] == protocol.MAX_OUTPUT_TOKENS for body in sent)


def _cells_on(model: str, faults: Faults, monkeypatch: pytest.MonkeyPatch, effort: str | None = None) -> list:
    """Two cells run on `model` (the local server keeps a real model's reasoning rules): the /responses bodies."""
    monkeypatch.setenv("CELLBOX_MODEL", model)
    if effort is not None:
        monkeypatch.setenv("CELLBOX_REASONING_EFFORT", effort)
    with Client(http_client=httpx.Client(transport=faults, timeout=60)) as client:
        sb = cellbox.Sandbox.create(name="effort", client=client)
        try:
            assert sb.run("2").value == 2 and sb.run("3").value == 3
        finally:
            sb.delete()
    return [body for body in faults.bodies() if "input" in body]


@pytest.mark.cloud_profiles("plain")
def test_gpt5_runs_cells_at_the_default_effort(use_cloud_server: str, faults: Faults, monkeypatch) -> None:
    # gpt-5 refuses hosted tools at `minimal`; the default effort is one every reasoning model takes with them.
    sent = _cells_on("gpt-5", faults, monkeypatch)
    assert [body["reasoning"] for body in sent] == [{"effort": protocol.REASONING_EFFORT}] * 2


@pytest.mark.cloud_profiles("plain")
def test_gpt5_refusing_minimal_with_the_tool_runs_cells_without_an_effort(
    use_cloud_server: str, faults: Faults, monkeypatch
) -> None:
    # OpenAI's answer names `tools` as the parameter: what can go is the effort, once, remembered for the model.
    sent = _cells_on("gpt-5-mini", faults, monkeypatch, effort="minimal")
    assert [body.get("reasoning") for body in sent] == [{"effort": "minimal"}, None, None]
    # A model that takes the effort still gets it from the same client settings.
    later = _cells_on("cellbox-local", faults, monkeypatch, effort="minimal")
    assert later[-1]["reasoning"] == {"effort": "minimal"}


@pytest.mark.cloud_profiles("plain")
def test_a_cell_writing_more_files_than_are_cited_still_has_its_record_cited(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    answers = finished_responses(faults)
    run = sandbox.run(
        "import os\nos.makedirs('many', exist_ok=True)\n"
        "for i in range(150):\n    open(f'many/f{i:03d}.txt', 'w').write('x')\nprint('y' * 5000)"
    )
    assert run.ok and run.stdout == "y" * 5000 + "\n" and len(run.artifacts) == 150
    cited = [
        annotation["filename"]
        for item in answers[-1]["output"]
        if item["type"] == "message"
        for part in item["content"]
        for annotation in part["annotations"]
    ]
    # The reply cites at most 100 files, the latest written: the record, written last, is among them.
    assert len(cited) == 100 and f"result-{run.id}.json" in cited


@pytest.mark.cloud_profiles("plain")
def test_a_record_cited_under_the_services_own_file_name_is_found_by_its_id(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    # OpenAI's example cites a file the code wrote as `cfile_….png`, not by its name.
    def service_names(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if "/responses" not in request.url.path or response.status_code != 200:
            return response

        def renamed(body: dict) -> None:
            for item in body.get("output") or []:
                for part in item.get("content") or [] if item.get("type") == "message" else []:
                    for cited in part.get("annotations") or []:
                        cited["filename"] = f"{cited['file_id']}.{cited['filename'].rsplit('.', 1)[-1]}"

        return rewritten(response, renamed)

    faults.after.append(service_names)
    run = sandbox.run("import json\njson.dump({'mine': 1}, open('data.json', 'w'))\nprint('z' * 10_000)")
    assert run.ok and run.stdout == "z" * 10_000 + "\n"
    assert faults.listings(sandbox.id) == 1  # the artifact's (data.json) only: the record was found by its citation


# -- auto containers ---------------------------------------------------------------------------------------------


def _deleted_responses(faults: Faults) -> set[str]:
    return {path.rsplit("/", 1)[-1] for m, path, _ in faults.sent if m == "DELETE" and path.startswith("/responses/")}


def _refusal(status: int, body: dict) -> cellbox.api.APIError:
    request = httpx.Request("POST", "https://api.example/v1/responses")
    return cellbox.api.errors.error_from_response(httpx.Response(status, json=body, request=request))


@pytest.mark.parametrize(
    ("body", "refuses"),
    [
        ({"code": "InvalidParameter", "message": "A container id is not supported in the code_interpreter tool"}, True),
        ({"error": {"message": "Invalid value.", "param": "tools[0].container", "code": "invalid_value"}}, True),
        ({"code": "InvalidParameter", "message": "Only auto containers are allowed for the python tool"}, True),
        ({"error": {"message": "Container is expired.", "type": "invalid_request_error"}}, False),
        ({"code": "InvalidParameter", "message": "Invalid 'temperature': expected a number."}, False),
    ],
)
def test_a_refusal_of_container_ids_is_told_from_other_400s(body: dict, refuses: bool) -> None:
    error = _refusal(400, body)
    assert isinstance(error, cellbox.api.BadRequestError) and refuses_ids(error) is refuses


@pytest.mark.cloud_profiles("oci-auto")
def test_an_auto_container_is_made_by_one_response_and_every_run_chains_from_the_last(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    (made,) = faults.bodies()
    assert made["tools"][-1]["container"] == {"type": "auto"} and "previous_response_id" not in made
    assert made["store"] is True and "background" not in made  # one short response: it runs `pass`
    assert sandbox.name == "cloud" != sandbox.container.name  # the service names it; the sandbox keeps its own
    chains = [sandbox.link.chain]
    for code in ("n = 1", "n += 1", "n"):
        run = sandbox.run(code)
        chains.append(sandbox.link.chain)
    assert run.value == 2 and len(set(chains)) == 4
    asked = faults.bodies()[1:]
    assert all(body["tools"][-1]["container"] == {"type": "auto", "memory_limit": "1g"} for body in asked)
    # Each response continues from the last one whose call ran in the container (a call that ended incomplete did).
    previous = [body["previous_response_id"] for body in asked]
    assert previous[0] == chains[0] and set(chains[:-1]) <= set(previous) and chains[-1] not in previous
    # No container made but by the first response; every file call on the one it made.
    assert not any(m == "POST" and path == "/containers" for m, path, _ in faults.sent)
    touched = {path.split("/")[2] for _, path, _ in faults.sent if path.startswith("/containers/")}
    assert touched == {sandbox.id}
    # The response the next run needs stays stored; the ones before it are deleted.
    assert sandbox.runner.cleanup.wait()
    assert set(previous) <= _deleted_responses(faults) and chains[-1] not in _deleted_responses(faults)
    assert sandbox.client.responses.retrieve(chains[-1]).id == chains[-1]
    # Gone (as an expired container is), then revived: a new container and a new chain.
    old = sandbox.id
    sandbox.client.containers.delete(old)
    with pytest.raises(cellbox.SandboxGone, match="revive"):
        sandbox.run("n")
    sandbox.revive()
    assert sandbox.id != old and sandbox.link.chain not in chains
    assert "previous_response_id" not in faults.bodies()[-1] and sandbox.run("'new'").value == "new"
    last = sandbox.link.chain
    sandbox.delete()
    assert last in _deleted_responses(faults)  # nothing is left stored


@pytest.mark.cloud_profiles("oci-auto")
def test_a_backend_refusing_container_ids_moves_the_sandbox_to_an_auto_container_once(
    use_cloud_server: str, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", "id")
    with Client(http_client=httpx.Client(transport=faults, timeout=60)) as client:
        assert client.container_binding == "id"
        sb = cellbox.Sandbox.create(name="explicit", client=client)
        try:
            explicit = sb.id
            sb.push(pd.DataFrame({"v": [1, 2]}), name="given")
            run = sb.run("total = int(given.v.sum())\ntotal")
            assert run.value == 3 and sb.id != explicit and sb.link.binding == "auto"
            moved = [note for note in run.notes if "refused a container id" in note]
            assert len(moved) == 1 and f"to an auto container, {sb.id}" in moved[0], run.notes
            with pytest.raises(cellbox.api.NotFoundError):
                client.containers.retrieve(explicit)
            again = sb.run("total + 1")
            assert again.value == 4 and not any("container id" in note for note in again.notes)
            assert client.container_binding == "auto"  # learnt once for the client: the next sandbox is auto
            made = faults.count("POST", "/containers")
            other = cellbox.Sandbox.create(name="second", client=client)
            assert faults.count("POST", "/containers") == made and other.link.binding == "auto"
            other.delete()
        finally:
            sb.delete()


@pytest.mark.cloud_profiles("oci-auto")
@pytest.mark.parametrize("binding", ["auto", "id"])
def test_an_expiry_an_auto_container_cant_take_is_said_once(
    use_cloud_server: str, binding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", binding)  # auto from the start, or after the refused id
    with cellbox.Sandbox.create(name="expiring", expires_after=5) as sb:
        try:
            first, second = sb.run("1"), sb.run("2")
            said = [note for note in first.notes if "expiry of 5 minutes can't be set on an auto container" in note]
            assert len(said) == 1 and "20 minutes after its last use" in said[0], first.notes
            assert not any("expiry" in note for note in second.notes)
            assert sb.link.binding == "auto"
        finally:
            sb.delete()


@pytest.mark.cloud_profiles("oci-auto")
def test_an_attached_container_is_left_as_it_is_when_the_sandbox_moves_to_an_auto_one(
    use_cloud_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", "id")
    with Client() as client:
        theirs = client.containers.create("theirs")
        sb = cellbox.Sandbox.attach(theirs.id, client=client)
        try:
            run = sb.run("1")
            assert run.value == 1 and sb.id != theirs.id
            assert any(f"theirs ({theirs.id}), left as it is" in note for note in run.notes), run.notes
            assert client.containers.retrieve(theirs.id).status == "running"
        finally:
            sb.delete()
            client.containers.delete(theirs.id)


@pytest.mark.cloud_profiles("oci-auto")
def test_an_auto_container_whose_chain_is_lost_is_gone_for_the_sandbox(sandbox: cellbox.Sandbox) -> None:
    sandbox.run("kept = 1")
    sandbox.client.responses.delete(sandbox.link.chain)  # the service no longer knows which container it was
    with pytest.raises(cellbox.SandboxGone, match=r"can't be reached any more: the response .* is gone"):
        sandbox.run("kept")
    sandbox.revive()
    assert sandbox.run("'kept' in globals()").value is False


@pytest.mark.cloud_profiles("oci-auto")
def test_a_container_gone_as_the_model_is_asked_is_said_and_the_one_made_instead_deleted(
    sandbox: cellbox.Sandbox, faults: Faults
) -> None:
    sandbox.run("kept = 1")
    own = sandbox.id

    def expire_first(request: httpx.Request) -> None:  # gone between the cell's upload and the response
        if request.method == "POST" and request.url.path.endswith("/responses"):
            faults.before.clear()
            with Client() as other:
                other.containers.delete(own)

    faults.before.append(expire_first)
    with pytest.raises(cellbox.SandboxGone, match="has expired or was deleted"):
        sandbox.run("kept")
    (made,) = {path.split("/")[2] for m, path, _ in faults.sent if m == "DELETE" and path.startswith("/containers/")}
    assert made != own  # the container the service made instead, deleted
    sandbox.revive()
    assert sandbox.run("1").value == 1
