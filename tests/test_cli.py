"""The `cellbox` command against a real local server, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cellbox.api import Client, NotFoundError
from cellbox.cli import main
from cellbox.common.endpoint import claimed
from cellbox.local.testing import RunningServer, wait_until


def cellbox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellbox", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.fixture
def client(use_local_server: RunningServer) -> Client:
    with Client() as c:
        yield c


def test_ls_lists_containers_with_status_memory_and_expiry(client: Client) -> None:
    box = client.containers.create("cli-ls", memory_limit="4g", expires_after=30)
    result = cellbox("ls")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATUS", "MEMORY"]
    row = next(r for r in rows if r.startswith(box.id))
    assert "cli-ls" in row and "running" in row and "4g" in row
    assert "29m" in row or "30m" in row  # time to expiry, counted down from 30 minutes
    client.containers.delete(box.id)


def test_ls_json_and_name_filter(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    wanted = client.containers.create("cli-json-a")
    other = client.containers.create("cli-json-b")
    assert main(["ls", "--json", "--name", "cli-json-a"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in records] == [wanted.id]
    for box in (wanted, other):
        client.containers.delete(box.id)


def test_files_by_name_shows_path_size_and_source(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    box = client.containers.create("cli-files")
    client.containers.files.create(box.id, b"x" * 2500, filename="notes.txt")
    assert main(["files", "cli-files"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "/mnt/data/notes.txt" in line)
    assert "2.5 kB" in line and "user" in line
    client.containers.delete(box.id)


def test_rm_by_id_and_name(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    first = client.containers.create("cli-rm-1")
    second = client.containers.create("cli-rm-2")
    assert main(["rm", first.id, "cli-rm-2"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {first.id}" in out and f"deleted {second.id}" in out
    for box in (first, second):
        with pytest.raises(NotFoundError):
            client.containers.retrieve(box.id)


def test_rm_unknown_is_one_clear_line_and_exit_1(use_local_server: RunningServer) -> None:
    result = cellbox("rm", "no-such-box")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "no-such-box" in result.stderr and "cellbox ls" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_names_backend_url_and_auth_but_never_the_key(use_local_server: RunningServer) -> None:
    secret = use_local_server.token
    result = cellbox("config")
    assert result.returncode == 0, result.stderr
    assert use_local_server.base_url in result.stdout
    assert "api_key" in result.stdout and "set" in result.stdout
    assert secret not in result.stdout + result.stderr
    described = json.loads(cellbox("config", "--json").stdout)
    assert described["auth"] == "api_key" and described["base_url"] == use_local_server.base_url
    assert secret not in json.dumps(described)


def test_unreachable_backend_fails_in_one_line_without_secret() -> None:
    secret = "sk-test-must-not-leak-123456"
    result = cellbox("ls", env={"CELLBOX_BASE_URL": "http://127.0.0.1:9/v1", "CELLBOX_API_KEY": secret})
    assert result.returncode == 1
    assert result.stderr.startswith("cellbox: ") and result.stderr.count("\n") == 1
    assert "could not connect" in result.stderr and "127.0.0.1:9" in result.stderr
    assert secret not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_rejected_key_is_reported_as_authentication_failure(use_local_server: RunningServer) -> None:
    result = cellbox("ls", env={"CELLBOX_API_KEY": "wrong-key-abcdef"})
    assert result.returncode == 1
    assert "401" in result.stderr and "CELLBOX_API_KEY" in result.stderr
    assert "wrong-key-abcdef" not in result.stderr


def test_no_backend_configured_names_what_to_do() -> None:
    result = cellbox("ls")
    assert result.returncode == 1
    assert "cellbox serve" in result.stderr and "CELLBOX_BASE_URL" in result.stderr


def test_bad_configuration_is_one_line(tmp_path) -> None:
    result = cellbox("ls", env={"CELLBOX_AUTH": "password"})
    assert result.returncode == 1 and "unknown auth kind 'password'" in result.stderr


@pytest.mark.integration
def test_serve_then_commands_find_it_with_no_configuration_and_stop_stops_it(tmp_path) -> None:
    # A user's first steps: `cellbox serve` in one terminal, `cellbox ls` in another, nothing configured.
    env = {**os.environ, "CELLBOX_STATE_DIR": str(tmp_path / "state")}
    server = subprocess.Popen(
        [sys.executable, "-m", "cellbox", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = tmp_path / "state" / "server.json"

        def written() -> bool:
            assert server.poll() is None, server.stderr.read()
            return endpoint.exists()

        wait_until(written, timeout=30, what="cellbox serve to write its endpoint file")
        info = json.loads(endpoint.read_text())
        assert oct(endpoint.stat().st_mode & 0o777) == "0o600"
        created = cellbox("config", env={"CELLBOX_STATE_DIR": str(tmp_path / "state")})
        assert "local" in created.stdout and info["base_url"] in created.stdout and info["token"] not in created.stdout
        listed = cellbox("ls", env={"CELLBOX_STATE_DIR": str(tmp_path / "state")})
        assert listed.returncode == 0 and listed.stdout.startswith("ID")
        stopped = cellbox("stop", env={"CELLBOX_STATE_DIR": str(tmp_path / "state")})
        assert stopped.returncode == 0 and f"stopped the local server at {info['base_url']}" in stopped.stdout
        assert not claimed(endpoint)  # the state folder is free the moment `stop` returns
        # `stop` alone must end the process; a SIGTERM of our own could land in its interpreter's shutdown.
        _, errors = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, errors
    assert not endpoint.exists()  # a clean stop takes the endpoint file with it
    again = cellbox("stop", env={"CELLBOX_STATE_DIR": str(tmp_path / "state")})
    assert again.returncode == 0 and "no local server is running" in again.stdout


def test_rm_refuses_to_guess_between_containers_sharing_a_name(client: Client) -> None:
    first = client.containers.create("cli-twin")
    second = client.containers.create("cli-twin")
    result = cellbox("rm", "cli-twin")
    assert result.returncode == 1 and "2 running containers are named 'cli-twin'" in result.stderr
    assert first.id in result.stderr and second.id in result.stderr
    assert {b.id for b in client.containers.list(name="cli-twin")} >= {first.id, second.id}  # nothing deleted
    for box in (first, second):
        client.containers.delete(box.id)
