"""A client sends the local server's token, or anything else, only to the server that wrote the endpoint file: what
answers at the recorded port must first prove it holds the token, without the client revealing it.

The impostor here is a plain HTTP server on loopback that records everything it is sent; the endpoint file names it
with a live pid (this test's own), as a file left by a crashed server does once its pid and port are reused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import cellbox
from cellbox.api import AsyncClient, Client, ConfigurationError
from cellbox.common import endpoint, paths
from cellbox.local.testing import RunningServer, running_server
from cellbox.session import backend

TOKEN = "tok-" + "s3cret" * 6


class Impostor(ThreadingHTTPServer):
    """Answers every request as a Containers API would, and the proof with a made-up HMAC."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def everything_sent(self) -> str:
        return json.dumps(
            [[method, path, headers, body.decode(errors="replace")] for method, path, headers, body in self.received]
        )


class _Recorder(BaseHTTPRequestHandler):
    server: Impostor

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith(endpoint.PROOF_PATH):
            answer: dict[str, object] = {"proof": "0" * 64}
        else:
            answer = {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    server = Impostor()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _record(base_url: str, token: str | None = TOKEN, pid: int | None = None) -> Path:
    """Writes the state folder's endpoint file as a server would."""
    path = paths.endpoint_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"base_url": base_url, "token": token, "pid": pid or os.getpid()}))
    return path


def _refused(message: str, base_url: str) -> None:
    assert "\n" not in message
    assert f"the process answering at {base_url} could not prove it is the local cellbox server" in message
    assert "neither the token nor any data was sent to it" in message
    assert TOKEN not in message


def _only_asked_for_proof(impostor: Impostor) -> None:
    assert impostor.received, "the client never asked"
    assert {(method, path.split("?")[0]) for method, path, _, _ in impostor.received} == {("GET", endpoint.PROOF_PATH)}
    assert TOKEN not in impostor.everything_sent()
    assert all("authorization" not in {name.lower() for name in headers} for _, _, headers, _ in impostor.received)


def test_an_impostor_on_the_recorded_port_gets_no_token(impostor: Impostor) -> None:
    _record(impostor.base_url)
    with backend.connect() as client, pytest.raises(ConfigurationError) as info:
        client.containers.list_page()
    _refused(str(info.value), impostor.base_url)
    with pytest.raises(ConfigurationError) as info:
        cellbox.Sandbox.create(name="never-sent")
    _refused(str(info.value), impostor.base_url)

    async def listing() -> None:
        async with AsyncClient() as client:  # the sidebar's client
            await client.containers.list_page()

    with pytest.raises(ConfigurationError) as info:
        asyncio.run(listing())
    _refused(str(info.value), impostor.base_url)
    _only_asked_for_proof(impostor)


def test_the_command_line_says_so_in_one_line(impostor: Impostor) -> None:
    _record(impostor.base_url)
    done = subprocess.run(
        [sys.executable, "-m", "cellbox", "ls"], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    _refused(lines[0], impostor.base_url)
    _only_asked_for_proof(impostor)


def test_an_endpoint_file_without_a_token_proves_nothing(impostor: Impostor, monkeypatch: pytest.MonkeyPatch) -> None:
    """cellbox never writes one; a key meant for a remote service is then never sent to what answers there."""
    _record(impostor.base_url, token=None)
    monkeypatch.setenv("CELLBOX_API_KEY", TOKEN)
    with Client() as client, pytest.raises(ConfigurationError) as info:
        client.containers.list_page()
    _refused(str(info.value), impostor.base_url)
    _only_asked_for_proof(impostor)


def test_another_cellbox_server_with_its_own_token_is_refused(local_server: RunningServer) -> None:
    """Another user's server at the port, say: a real cellbox server, but not the one that wrote the file."""
    _record(local_server.base_url, pid=local_server.process.pid)
    with Client() as client, pytest.raises(ConfigurationError) as info:
        client.containers.list_page()
    _refused(str(info.value), local_server.base_url)


def test_the_proof_succeeds_against_the_real_server_once_per_client(local_server: RunningServer) -> None:
    """The server that wrote the endpoint file proves itself once; every later request is sent as before."""
    _record(local_server.base_url, token=local_server.token, pid=local_server.process.pid)
    sent: list[httpx.Request] = []
    with Client(http_client=httpx.Client(event_hooks={"request": [sent.append]})) as client:
        box = client.containers.create(name="proven")
        assert any(found.id == box.id for found in client.containers.list())
        client.containers.delete(box.id)
    proofs = [request for request in sent if request.url.path == endpoint.PROOF_PATH]
    assert len(proofs) == 1 and sent[0] is proofs[0]
    assert "authorization" not in proofs[0].headers and local_server.token not in str(proofs[0].url)
    assert all(request.headers["authorization"] == f"Bearer {local_server.token}" for request in sent[1:])
    assert len(sent) >= 4  # create, list (one page or more), delete


def test_the_server_answers_the_proof_without_credentials(local_server: RunningServer) -> None:
    root = local_server.base_url.removesuffix("/v1")
    nonce = endpoint.new_nonce()
    answer = httpx.get(f"{root}{endpoint.PROOF_PATH}", params={"nonce": nonce})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert endpoint.proves(local_server.token, nonce, answer.json()["proof"])
    assert not endpoint.proves("another-token", nonce, answer.json()["proof"])
    assert local_server.token not in answer.text
    for bad in ["", "short", "x" * 129, "a b" * 8, "é" * 16]:
        refused = httpx.get(f"{root}{endpoint.PROOF_PATH}", params={"nonce": bad})
        assert refused.status_code == 400, bad
    assert httpx.post(f"{root}{endpoint.PROOF_PATH}", params={"nonce": nonce}).status_code == 400
    assert httpx.get(f"{local_server.base_url}/containers").status_code == 401  # the rest still needs the token


@pytest.mark.integration
def test_a_client_following_a_restart_makes_the_new_server_prove_itself(tmp_path, impostor: Impostor) -> None:
    """The server stops; the endpoint file now names another port (and a live pid), where an impostor listens:
    the client's next request finds the server gone, reads the file again, and asks the new one for its proof."""
    with running_server(tmp_path / "data") as server:
        _record(server.base_url, token=server.token, pid=server.process.pid)
        client = backend.connect(autostart=False)
        assert list(client.containers.list()) == []
        server.stop()
    _record(impostor.base_url)
    with client, pytest.raises(ConfigurationError) as info:
        client.containers.list_page()
    _refused(str(info.value), impostor.base_url)
    _only_asked_for_proof(impostor)


def test_the_token_of_the_endpoint_file_wins_over_a_key_meant_for_a_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CELLBOX_API_KEY set for OpenAI or OCI, with no base URL: the local server gets its own token, not that key."""
    _record("http://127.0.0.1:9/v1")
    monkeypatch.setenv("CELLBOX_API_KEY", "sk-meant-for-openai")
    found = backend.settings(autostart=False)
    assert found.api_key == TOKEN and found.origin["api_key"] == "endpoint file"
    with contextlib.closing(Client(api_key="given-here")) as client:  # an argument still wins: the caller said so
        assert client.settings.api_key == "given-here"
        assert client.settings.endpoint is not None and client.settings.endpoint.token == TOKEN
