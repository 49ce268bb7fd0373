"""With nothing configured, cellbox starts the local server itself, and later sessions reuse it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cellbox
from cellbox.api import ConfigurationError, Settings
from cellbox.common import endpoint, paths
from cellbox.local.testing import isolation_available, wait_until
from cellbox.session import backend
from cellbox.session.backend import connect, model_for

pytestmark = pytest.mark.integration  # every test here starts a local server, as a user's first session does


def test_nothing_configured_starts_the_local_server_once() -> None:
    assert not paths.endpoint_file().exists()
    sandbox = cellbox.Sandbox.create(name="autostarted")
    info = json.loads(paths.endpoint_file().read_text())
    try:
        assert sandbox.client.base_url == info["base_url"] and sandbox.model == "cellbox-local"
        assert sandbox.run("6 * 7").value == 42
        with connect() as again:  # a second session finds the running server instead of starting another
            assert again.base_url == info["base_url"]
            assert model_for(again.settings) == "cellbox-local"
            assert any(box.id == sandbox.id for box in again.containers.list())
        sandbox.delete()
    finally:
        os.kill(info["pid"], signal.SIGTERM)
    wait_until(lambda: not paths.endpoint_file().exists(), timeout=30, what="the stopped server's endpoint file to go")


def test_a_client_follows_the_local_server_when_it_restarts(tmp_path) -> None:
    """`cellbox stop`, then any use: the client reads the endpoint file again, starts a server when none runs, and
    sends the request once more. The container and its files outlive the restart; its Python state does not."""
    sandbox = cellbox.Sandbox.create(name="restarted")
    first = json.loads(paths.endpoint_file().read_text())
    try:
        assert sandbox.run("x = 41").error is None
        os.kill(first["pid"], signal.SIGTERM)
        wait_until(lambda: not paths.endpoint_file().exists(), timeout=30, what="the server to stop")
        run = sandbox.run("6 * 7")  # no server at all: one is started, and found
        assert run.value == 42
        second = json.loads(paths.endpoint_file().read_text())
        assert second["pid"] != first["pid"] and sandbox.client.base_url == second["base_url"]
        assert sandbox.run("x").error is not None  # the state was reset (the server says so in the run's logs)
        sandbox.delete()
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(json.loads(paths.endpoint_file().read_text())["pid"], signal.SIGTERM)
        wait_until(lambda: not paths.endpoint_file().exists(), timeout=30, what="the endpoint file to go")


def test_a_second_server_refuses_to_take_over_the_endpoint_file(tmp_path) -> None:
    endpoint_file = tmp_path / "server.json"
    argv = [sys.executable, "-m", "cellbox.local", "--port", "0", "--endpoint-file", str(endpoint_file)]
    if not isolation_available():
        argv.append("--unsafe-no-isolation")
    first = subprocess.Popen([*argv, "--data-dir", str(tmp_path / "one")], stderr=subprocess.DEVNULL)
    try:
        wait_until(endpoint_file.exists, timeout=30, what="the first server's endpoint file")
        written = endpoint_file.read_text()
        second = subprocess.run(
            [*argv, "--data-dir", str(tmp_path / "two")], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"another local server (pid {first.pid}) is running at" in second.stderr
        assert "cellbox stop" in second.stderr
        assert endpoint_file.read_text() == written  # still the first one's: clients keep finding it
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert not endpoint_file.exists()


# -- one server per state folder, whoever asks and whenever ------------------------------------------------------

# Stands in for a server part-way through starting or stopping: on "claim" it takes the state folder's claim, as
# a server does for its whole life, with no endpoint file yet; then on "serve" it goes on to serve, as a server
# that was starting, or on end of input it exits, as one that was stopping.
_STAND_IN = """
import sys
from cellbox.common import endpoint, paths
from cellbox.local.cli import main
print("ready", flush=True)
for line in sys.stdin:
    if line == "claim\\n":
        assert endpoint.claim(paths.endpoint_file()) is None
        print("claimed", flush=True)
    elif line == "serve\\n":
        sys.exit(main(["--port", "0", *sys.argv[1:]]))
"""


class StandIn:
    def __init__(self, log: Path, *server_args: str) -> None:
        args = [*server_args] + ([] if isolation_available() else ["--unsafe-no-isolation"])
        self.log = log
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _STAND_IN, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self._expect("ready")

    def _expect(self, line: str) -> None:
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == line + "\n", self.log.read_text()

    def _say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def claim(self) -> StandIn:
        self._say("claim")
        self._expect("claimed")
        return self

    def serve(self) -> None:
        self._say("serve")

    def exit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _stop_the_server() -> None:
    running = endpoint.read(paths.endpoint_file())
    if running is not None and running.pid is not None:
        os.kill(running.pid, signal.SIGTERM)
    wait_until(lambda: endpoint.read(paths.endpoint_file()) is None, timeout=30, what="the server to stop")
    wait_until(lambda: not endpoint.claimed(paths.endpoint_file()), timeout=30, what="the server to exit")


def _autostart_in_thread() -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(backend.settings())
        except Exception as exc:  # handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread, outcome


def _autostart_log() -> Path:
    return paths.state_dir() / "server.log"  # where a client's own `cellbox serve` writes


def _servers_of_this_state_folder() -> set[int]:
    """The `cellbox serve` processes running for this test's state folder (Linux: read from /proc)."""
    ours = f"CELLBOX_STATE_DIR={paths.state_dir()}".encode()
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and ours in environ:
            found.add(int(proc.name))
    return found


_ASK = (
    "import json; from cellbox.session import backend; s = backend.settings(); "
    "print(json.dumps([s.base_url, s.endpoint.pid]))"
)


def test_two_clients_autostarting_at_once_get_one_server(tmp_path) -> None:
    """Two kernels' first cells at the same moment: one starts the server, the other waits for it and uses it;
    no second `cellbox serve` is ever launched (it would have said so in server.log)."""
    go = tmp_path / "go"
    wait_for_go = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
    clients = [
        subprocess.Popen([sys.executable, "-c", wait_for_go + _ASK], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(1.0)  # both interpreters up and polling, so they ask together
    go.touch()
    try:
        answers = [json.loads(client.communicate(timeout=120)[0]) for client in clients]
        assert all(client.returncode == 0 for client in clients)
        running = endpoint.read(paths.endpoint_file())
        assert running is not None
        assert answers == [[running.base_url, running.pid]] * 2
        # A second server launched beside it would refuse to start, saying so in the log, but only once it has
        # given up waiting for the state folder's claim: so the log is read once no other is left.
        wait_until(lambda: _servers_of_this_state_folder() == {running.pid}, timeout=30, what="no other server")
        log = _autostart_log().read_text()
        assert log.count("cellbox serve: serving http://") == 1, log
        assert "another local server" not in log, log
    finally:
        _stop_the_server()


def test_a_client_waits_for_a_server_that_is_starting_and_uses_it(tmp_path) -> None:
    starting = StandIn(tmp_path / "starting.log").claim()
    try:
        thread, outcome = _autostart_in_thread()
        thread.join(timeout=1.5)
        assert not outcome  # still waiting: a server holds the state folder, so none may be started beside it
        starting.serve()
        thread.join(timeout=120)
        assert outcome and isinstance(outcome[0], Settings), outcome
        assert outcome[0].endpoint is not None and outcome[0].endpoint.pid == starting.process.pid
        assert not _autostart_log().exists()  # the client never launched a server of its own
        with connect() as client:
            assert list(client.containers.list()) == []
    finally:
        _stop_the_server()
        starting.kill()


def test_a_server_restarting_with_its_own_options_is_not_raced_by_a_default_one(tmp_path) -> None:
    """`cellbox stop`, then `cellbox serve --data-dir MINE`: a client asking in between waits out the stopping
    server and gives the restart its moment, instead of starting a default server that takes the state folder
    (the user's containers would seem gone, and their restart would be refused)."""
    mine = tmp_path / "mine"
    stopping = StandIn(tmp_path / "stopping.log").claim()
    restart = StandIn(tmp_path / "restart.log", "--data-dir", str(mine))
    try:
        thread, outcome = _autostart_in_thread()
        thread.join(timeout=1.0)
        assert not outcome
        stopping.exit()  # the old server is gone ...
        restart.claim().serve()  # ... and the user's own takes the folder at once, then serves
        thread.join(timeout=120)
        assert outcome and isinstance(outcome[0], Settings), outcome
        assert outcome[0].endpoint is not None and outcome[0].endpoint.pid == restart.process.pid
        assert not _autostart_log().exists()
        assert f"data in {mine}" in restart.log.read_text()
    finally:
        stopping.kill()
        _stop_the_server()
        restart.kill()


def test_a_client_starts_a_server_once_a_stopping_one_is_gone(tmp_path) -> None:
    stopping = StandIn(tmp_path / "stopping.log").claim()
    try:
        thread, outcome = _autostart_in_thread()
        thread.join(timeout=1.0)
        assert not outcome and not _autostart_log().exists()  # nothing started while the old server exits
        stopping.exit()
        thread.join(timeout=120)
        assert outcome and isinstance(outcome[0], Settings), outcome
        assert outcome[0].endpoint is not None and outcome[0].endpoint.pid != stopping.process.pid
        assert "cellbox serve: serving http://" in _autostart_log().read_text()
    finally:
        stopping.kill()
        _stop_the_server()


def test_the_wait_is_bounded_and_says_which_state_folder(tmp_path, monkeypatch) -> None:
    stuck = StandIn(tmp_path / "stuck.log").claim()  # a server that never finishes starting
    monkeypatch.setattr(backend, "_START_TIMEOUT", 1.0)
    try:
        with pytest.raises(ConfigurationError) as info:
            connect()
        message = str(info.value)
        assert "\n" not in message
        assert f"the local server for state folder {paths.state_dir()} did not come up within 1s" in message
        assert not _autostart_log().exists()
    finally:
        stuck.kill()
