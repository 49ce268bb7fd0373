"""The client runs on every laptop OS: `cellbox`, its API client, the magics and the Jupyter server extension
import and work where the POSIX-only modules and functions are missing, as on Windows, and none of them imports
the local server (which stays Linux's)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Run in a fresh interpreter: the modules must be missing before anything imports them. It starts no server,
# kernel or Jupyter: only imports.
WINDOWS_LIKE = textwrap.dedent(
    """
    import importlib.abc
    import os
    import sys
    import warnings

    POSIX_ONLY = {"fcntl", "resource", "pwd", "grp", "termios", "pty", "tty"}


    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in POSIX_ONLY:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    for name in POSIX_ONLY:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, Refuse())

    warnings.filterwarnings("ignore", "only soft file lock")  # filelock without fcntl on Linux: Windows has its own
    # The libraries cellbox stands on handle Windows themselves: they are imported as they would be here, then
    # the functions Windows lacks go, so that only cellbox's own use of them shows.
    import filelock, httpx, pandas, platformdirs, pyarrow  # noqa
    import IPython.core.interactiveshell, jupyter_server.extension.application  # noqa

    for name in ("getuid", "geteuid", "getgid", "getegid", "fchmod", "fchown", "getpgid", "killpg", "setsid",
                 "O_CLOEXEC", "sysconf"):
        if hasattr(os, name):
            delattr(os, name)

    import cellbox, cellbox.api, cellbox.notebook, cellbox.jupyter  # noqa
    from cellbox.common import inuse, paths
    from cellbox.jupyter.core import Sidebar
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "cellbox")
    assert "container" in shell.magics_manager.magics["cell"]

    # A client against a backend that is not there: made, and a download through it lands atomically.
    served = []

    def answer(request):
        served.append(str(request.url))
        return httpx.Response(200, content=b"rows")

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with cellbox.api.Client("https://api.example.invalid/v1", api_key="sk-test", http_client=http) as client:
        target = client.containers.files.download("cntr_1", "cfile_1", sys.argv[1])
    assert target.read_bytes() == b"rows" and served, served

    inuse.record("k1", "cntr_1", "demo")
    assert inuse.read() == {"k1": "cntr_1"}
    Sidebar(sys.argv[2], autostart=False)
    assert paths.config_file().name == "config.toml"

    loaded = sorted(name for name in sys.modules if name.startswith("cellbox.local"))
    assert not loaded, loaded
    print("ok")
    """
)


@pytest.mark.slow  # ~5 s: a fresh interpreter imports pandas, pyarrow, IPython and jupyter_server
def test_the_client_imports_and_works_without_posix_only_modules(tmp_path: Path) -> None:
    env = {
        "CELLBOX_STATE_DIR": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path),
        "PATH": "",
    }
    script = tmp_path / "windows_like.py"
    script.write_text(WINDOWS_LIKE)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out" / "rows.csv"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
