"""Where the local server can't isolate code (no bubblewrap, not Linux), the first use of the default backend
fails within seconds in one line naming the cause and the choices left, whichever way it is reached: a
`%%container` cell, `Sandbox.create()`, `cellbox doctor`, `cellbox serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kernelhelp import Kernel

import cellbox
from cellbox import cli
from cellbox.api import ConfigurationError
from cellbox.common import endpoint, isolation, paths
from cellbox.session import backend

# Well inside the autostart's 60 s: the point is that nobody waits for a server that will never serve.
QUICK = 5.0
CHOICES = ("CELLBOX_BASE_URL", "CELLBOX_OCI_REGION")


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A PATH without bubblewrap on it (nor anything else): the interpreter is found by its full path."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return str(empty)


@pytest.fixture
def failing_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A bubblewrap that is installed but can't make a jail, as where unprivileged user namespaces are off."""
    folder = tmp_path / "bin"
    folder.mkdir()
    bwrap = folder / "bwrap"
    bwrap.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    bwrap.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return str(folder)


def _one_line(message: str) -> None:
    assert "\n" not in message and "server.log" not in message, message
    assert all(choice in message for choice in CHOICES), message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux advice")
@pytest.mark.usefixtures("no_bwrap")
def test_without_bubblewrap_the_first_sandbox_says_why_at_once_and_starts_nothing() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as caught:
        cellbox.Sandbox.create()
    assert time.monotonic() - started < QUICK
    said = str(caught.value)
    _one_line(said)
    assert said.startswith("the local server can't isolate code: bubblewrap is not installed. Install it")
    assert "sudo apt-get install bubblewrap" in said and "cellbox serve --unsafe-no-isolation" in said
    assert not (paths.state_dir() / "server.log").exists()  # no server was started to find it out


@pytest.mark.parametrize(("platform", "name"), [("darwin", "macOS"), ("win32", "Windows")])
def test_on_macos_and_windows_it_points_to_the_cloud_or_a_linux_vm(
    monkeypatch: pytest.MonkeyPatch, platform: str, name: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    with pytest.raises(ConfigurationError) as caught:
        backend.settings()
    said = str(caught.value)
    _one_line(said)
    assert f"it needs Linux (bubblewrap), and this is {name}" in said
    assert "Linux VM or WSL2" in said
    assert "apt-get" not in said and "--unsafe-no-isolation" not in said  # neither would help there


@pytest.mark.usefixtures("no_bwrap")
def test_a_server_already_running_is_used_whatever_this_machine_lacks() -> None:
    """A server the user started (with --unsafe-no-isolation, or on another PATH) is found, not refused."""
    endpoint.write(paths.endpoint_file(), "http://127.0.0.1:9/v1", "token")
    assert backend.settings().base_url == "http://127.0.0.1:9/v1"


@pytest.mark.usefixtures("no_bwrap")
def test_doctor_fails_its_configuration_check_with_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert cli.main(["doctor", "--no-run", "--json"]) == cli.EXIT_ERROR
    assert time.monotonic() - started < QUICK
    checks = {check["name"]: check for check in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["configuration"]["status"] == "fail"
    assert checks["configuration"]["detail"] == isolation.refusal("bubblewrap is not installed")
    assert "configure a cloud backend" in checks["configuration"]["next_step"]  # not "fix the setting named above"


@pytest.mark.integration
def test_a_bubblewrap_that_cannot_make_a_jail_is_said_from_the_servers_exit(failing_bwrap: str) -> None:
    """bubblewrap is there, so a server is started; its own check fails, it exits, and its one line is the
    reason the client gives, rather than its exit status and where its log is."""
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as caught:
        cellbox.Sandbox.create()
    took = time.monotonic() - started
    said = str(caught.value)
    _one_line(said)
    assert said.startswith("the local server can't isolate code: bubblewrap cannot create a jail here (bwrap: ")
    assert "unprivileged user namespaces may be disabled" in said and "apt-get" not in said
    assert took < 3 * QUICK, took  # a server process started and exited: its imports take the time


@pytest.mark.integration
def test_cellbox_serve_itself_says_the_same_line(no_bwrap: str, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "cellbox.local", "--port", "0", "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [*argv, "--endpoint-file", str(tmp_path / "server.json")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr == f"cellbox serve: {isolation.refusal('bubblewrap is not installed')}\n"


@pytest.mark.integration
def test_a_container_cell_in_a_kernel_fails_at_once_in_one_line(no_bwrap: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLBOX_", "OCI_"))}
    env.update(CELLBOX_STATE_DIR=str(tmp_path / "state"), PATH=no_bwrap)
    kernel = Kernel(env)
    try:
        assert kernel.run("%load_ext cellbox")[0] == "ok"
        status, took, messages = kernel.timed("%%container\n6 * 7")
    finally:
        kernel.stop()
    assert status == "error" and took < QUICK, (status, took)
    [error] = [m for m in messages if m["type"] == "error"]
    assert error["traceback"] == [f"ConfigurationError: {isolation.refusal('bubblewrap is not installed')}"]


@pytest.mark.parametrize(("platform", "name"), [("darwin", "macOS"), ("win32", "Windows")])
def test_cellbox_serve_on_macos_and_windows_says_so_before_importing_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], platform: str, name: str
) -> None:
    """The server's modules import POSIX-only ones (resource, fcntl): `cellbox serve` answers before them."""
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setitem(sys.modules, "cellbox.local.server", None)  # importing it now would raise
    assert cli.main(["serve", "--port", "0"]) == 2
    said = capsys.readouterr().err
    assert said == f"cellbox serve: {isolation.refusal(f'it needs Linux (bubblewrap), and this is {name}')}\n"
