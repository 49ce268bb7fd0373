"""`cellbox serve --help` documents every limit a container runs under."""

from __future__ import annotations

import subprocess
import sys


def test_help_names_every_limit():
    shown = subprocess.run(
        [sys.executable, "-m", "cellbox", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for limit in ["--max-processes", "--cpu-limit", "--disk-limit", "--max-containers", "--exec-timeout",
                  "--max-upload-mb", "memory_limit", "/dev/shm", "64 images", "seccomp", "nobody"]:  # fmt: skip
        assert limit in shown, limit
