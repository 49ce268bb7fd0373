"""Where cellbox keeps its files on this machine.

The bottom layer: no imports from the rest of cellbox. The endpoint file is how a running local server tells
clients where it listens and which token it wants, so `Client()` finds it with no configuration.
"""

from __future__ import annotations

import os
from pathlib import Path


def config_file() -> Path:
    """`~/.config/cellbox/config.toml` (or under `$XDG_CONFIG_HOME`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cellbox" / "config.toml"


def state_dir() -> Path:
    """Per-user state: `$CELLBOX_STATE_DIR`, else `~/.local/state/cellbox` (or under `$XDG_STATE_HOME`)."""
    explicit = os.environ.get("CELLBOX_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "cellbox"


def endpoint_file() -> Path:
    """JSON `{"base_url": ..., "token": ..., "pid": ...}` written by a running `cellbox serve`."""
    return state_dir() / "server.json"


def default_data_dir() -> Path:
    """Where `cellbox serve` keeps containers and files unless `--data-dir` says otherwise."""
    return state_dir() / "data"
