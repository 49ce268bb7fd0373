"""The baseline a benchmark compares with when it is an earlier commit: its package checked out beside this one."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checkout(commit: str, into: Path) -> Iterator[Path]:
    """`commit` checked out at `into` (a git worktree, removed after); yields its `src` folder, for PYTHONPATH."""
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "-q", "--detach", str(into), commit], check=True)
    try:
        yield into / "src"
    finally:
        subprocess.run([*git, "remove", "--force", str(into)], check=False)
