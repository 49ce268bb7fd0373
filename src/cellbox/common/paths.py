"""Where cellbox keeps its files on this machine.

The bottom layer: no imports from the rest of cellbox. The endpoint file is how a running local server tells
clients where it listens and which token it wants, so `Client()` finds it with no configuration.

The folders are each OS's own, as platformdirs names them: on Linux the XDG ones (`~/.config/cellbox`,
`~/.local/state/cellbox`, or under `$XDG_CONFIG_HOME` / `$XDG_STATE_HOME`), on macOS
`~/Library/Application Support/cellbox`, on Windows `%APPDATA%\\cellbox` for the configuration (it roams with
the user) and `%LOCALAPPDATA%\\cellbox` for state (it names this machine's processes and ports).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def _dirs(roaming: bool = False) -> platformdirs.api.PlatformDirsABC:
    # Looked up at each call, not bound at import: a test swaps in another OS's layout.
    return platformdirs.PlatformDirs("cellbox", appauthor=False, roaming=roaming)


def config_file() -> Path:
    """`config.toml` in the user's config folder: `~/.config/cellbox/config.toml` on Linux."""
    return Path(_dirs(roaming=True).user_config_dir) / "config.toml"


def state_dir() -> Path:
    """Per-user state: `$CELLBOX_STATE_DIR`, else the user's state folder (`~/.local/state/cellbox` on Linux)."""
    explicit = os.environ.get("CELLBOX_STATE_DIR")
    if explicit:
        return Path(explicit)
    return Path(_dirs().user_state_dir)


def endpoint_file() -> Path:
    """JSON `{"base_url": ..., "token": ..., "pid": ...}` written by a running `cellbox serve`."""
    return state_dir() / "server.json"


def default_data_dir() -> Path:
    """Where `cellbox serve` keeps containers and files unless `--data-dir` says otherwise."""
    return state_dir() / "data"
