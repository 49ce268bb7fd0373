"""Which backend a Sandbox talks to, and the model that runs its code.

With nothing configured, cellbox starts the embedded local server in the background (`cellbox serve`, detached,
so other kernels and the JupyterLab sidebar share it) and finds it through its endpoint file. The server is a
separate process reached over HTTP like any remote; nothing here imports it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from . import paths
from .api import Client, ConfigurationError, Settings, load_settings

LOCAL_MODEL = "cellbox-local"
_START_TIMEOUT = 30.0


def _start_local_server() -> None:
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    log = (state / "server.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "cellbox", "serve", "--port", "0"],  # any free port: the endpoint file says which
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives this kernel: other notebooks and the sidebar share it
        close_fds=True,
    )
    log.close()
    # Reaped when it exits (should this process still be alive), so it never lingers as a zombie.
    threading.Thread(target=server.wait, name="cellbox-server-reaper", daemon=True).start()


def _wait_for_endpoint(timeout: float) -> Settings:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        settings = load_settings()
        if settings.base_url:
            return settings
        time.sleep(0.1)
    log = paths.state_dir() / "server.log"
    raise ConfigurationError(
        f"the local server did not start within {timeout:.0f}s; see {log}, or run `cellbox serve` yourself."
    )


def settings(autostart: bool = True) -> Settings:
    """The configured settings; with no backend configured, those of the local server (started if needed)."""
    found = load_settings()
    if found.base_url or not autostart:
        return found
    _start_local_server()
    return _wait_for_endpoint(_START_TIMEOUT)


def rediscover(autostart: bool = True) -> Settings | None:
    """Where the local server is now (its endpoint file, read again), starting one when none runs and `autostart`;
    None when the configuration names another backend. A client given this hook follows a local server that
    restarted on another port or with another token (`cellbox stop`, then any use)."""
    found = load_settings()
    if found.base_url:
        return found if found.backend == "local" else None
    return settings(autostart) if autostart else None


def connect(autostart: bool = True, **client_options: object) -> Client:
    """A `Client` for the configured backend, starting the local server when nothing else is configured. With the
    local server, a refused connection makes the client read the endpoint file again (starting the server if none
    runs) and send the request once more: see `rediscover`."""
    found = settings(autostart)
    if found.backend == "local" and "rediscover" not in client_options:
        client_options["rediscover"] = lambda: rediscover(autostart)
    return Client(settings=found, **client_options)  # type: ignore[arg-type]


def model_for(found: Settings) -> str:
    """The model that runs code: CELLBOX_MODEL, else `cellbox-local` on the local server."""
    if found.model:
        return found.model
    if found.backend == "local":
        return LOCAL_MODEL
    raise ConfigurationError(
        "running code on a remote backend needs a model: set CELLBOX_MODEL (e.g. a model your OCI project or "
        "OpenAI account can use with the code_interpreter tool)."
    )
