"""Where cellbox keeps its configuration and state on each OS: the XDG folders on Linux, as before platformdirs
chose them; each other OS's own folders there; `CELLBOX_STATE_DIR` first everywhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path, PureWindowsPath

import platformdirs
import platformdirs.macos
import platformdirs.windows
import pytest

from cellbox.common import endpoint, inuse, paths

ROAMING = r"C:\Users\ada\AppData\Roaming"
LOCAL = r"C:\Users\ada\AppData\Local"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user with a home and nothing set: no CELLBOX_STATE_DIR, no XDG folders."""
    for name in ("CELLBOX_STATE_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Windows' layout, its known folders given as Windows resolves them (platformdirs reads these overrides
    first, so the answer is the one a Windows machine with these folders would give)."""
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.windows.Windows)
    monkeypatch.setenv("WIN_PD_OVERRIDE_APPDATA", ROAMING)
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", LOCAL)
    # What Windows sets in every session, and what older platformdirs reads when it runs elsewhere.
    monkeypatch.setenv("APPDATA", ROAMING)
    monkeypatch.setenv("LOCALAPPDATA", LOCAL)


def _windows(path: Path) -> PureWindowsPath:
    return PureWindowsPath(str(path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG layout is Linux's")
def test_on_linux_the_folders_are_the_xdg_ones_as_before(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.config_file() == home / ".config" / "cellbox" / "config.toml"
    assert paths.state_dir() == home / ".local" / "state" / "cellbox"
    assert paths.endpoint_file() == home / ".local" / "state" / "cellbox" / "server.json"
    assert paths.default_data_dir() == home / ".local" / "state" / "cellbox" / "data"

    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "xdg-state"))
    assert paths.config_file() == home / "xdg-config" / "cellbox" / "config.toml"
    assert paths.state_dir() == home / "xdg-state" / "cellbox"

    monkeypatch.setenv("XDG_STATE_HOME", "")  # set but empty: as if unset
    assert paths.state_dir() == home / ".local" / "state" / "cellbox"

    monkeypatch.setenv("CELLBOX_STATE_DIR", str(home / "mine"))
    assert paths.state_dir() == home / "mine" and paths.endpoint_file() == home / "mine" / "server.json"


@pytest.mark.usefixtures("windows")
def test_on_windows_config_roams_and_state_stays_on_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "/not/on/windows")  # an XDG variable left in the environment is not read
    assert _windows(paths.config_file()) == PureWindowsPath(ROAMING, "cellbox", "config.toml")
    assert _windows(paths.state_dir()) == PureWindowsPath(LOCAL, "cellbox")
    assert _windows(paths.endpoint_file()) == PureWindowsPath(LOCAL, "cellbox", "server.json")
    assert not any(part.startswith(".") for part in _windows(paths.state_dir()).parts)  # no ~/.local, ~/.config

    monkeypatch.setenv("CELLBOX_STATE_DIR", r"D:\cellbox-state")
    assert _windows(paths.state_dir()) == PureWindowsPath(r"D:\cellbox-state")
    assert _windows(paths.endpoint_file()) == PureWindowsPath(r"D:\cellbox-state\server.json")


def test_on_macos_both_live_in_application_support(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.macos.MacOS)
    support = home / "Library" / "Application Support" / "cellbox"
    assert paths.config_file() == support / "config.toml"
    assert paths.state_dir() == support and paths.endpoint_file() == support / "server.json"


@pytest.mark.usefixtures("windows")
def test_on_windows_asking_whether_a_kernel_runs_never_signals_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`os.kill(pid, 0)` ends a process on Windows: the sidebar's look at which notebook uses which container
    must ask Windows instead."""
    monkeypatch.setenv("CELLBOX_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state" / "kernels").mkdir(parents=True)
    (tmp_path / "state" / "kernels" / "k1.json").write_text(
        json.dumps({"container_id": "cntr_1", "name": None, "pid": os.getpid()})
    )
    asked: list[int] = []

    def killed(pid: int, sig: int) -> None:
        raise AssertionError(f"os.kill({pid}, {sig}) on Windows")

    def alive(pid: int) -> bool:
        asked.append(pid)
        return True

    monkeypatch.setattr(os, "kill", killed)
    monkeypatch.setattr(endpoint, "_alive_on_windows", alive)
    assert inuse.read() == {"k1": "cntr_1"}
    assert asked == [os.getpid()]
