"""Which backend a Sandbox talks to, and the model that runs its code.

With nothing configured, cellbox starts the embedded local server in the background (`cellbox serve`, detached,
so other kernels and the JupyterLab sidebar share it) and finds it through its endpoint file: one client at a time,
and never while a server is starting or stopping on the same state folder (that one is waited for instead). The
server is a separate process reached over HTTP like any remote; nothing here imports it. Where it could not
isolate code (not Linux, no bubblewrap) none is started: the first use says so at once, with the choices left.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from ..api import Client, ConfigurationError, Settings, load_settings
from ..common import endpoint, extras, isolation, paths
from ..common.polling import Backoff

LOCAL_MODEL = "cellbox-local"
# Bounds the whole autostart: waiting for another client's, for a server that is stopping, and the start itself,
# which the first time builds the sandbox environment containers run in (downloads of a few hundred MB).
_START_TIMEOUT = 900.0
# A server that just stopped may be restarting (`cellbox stop`, then `cellbox serve` with the user's own options):
# it is given this long to claim the state folder before a client starts one with the defaults in its place.
_RESTART_GRACE = 2.0
_POLL = 0.05
# How much of the end of the server's log is read for the line it said as it exited.
_LOG_TAIL = 16 * 1024


def _start_local_server() -> subprocess.Popen[bytes]:
    absent = extras.missing("local")
    if absent:  # said here, not as a server that exits at once with the reason in its log
        raise ConfigurationError(
            f"no backend is configured, and the local server cellbox would start needs {', '.join(absent)}, not "
            f"installed here: {extras.install_line('local')}, or configure a remote backend (CELLBOX_BASE_URL or "
            "CELLBOX_OCI_REGION)."
        )
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    log = (state / "server.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "cellbox", "serve", "--port", "0"],  # any free port: the endpoint file says which
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives this kernel: other notebooks and the sidebar share it
        close_fds=True,  # and holds none of this process's locks
    )
    log.close()
    # Reaped when it exits (should this process still be alive), so it never lingers as a zombie. A thread of its
    # own, not a kept one: it blocks for as long as the server lives, usually past this process.
    threading.Thread(target=server.wait, name="cellbox-server-reaper", daemon=True).start()
    return server


def _autostart(timeout: float) -> Settings:
    """The local server's settings once it serves: one that another client is starting, or that is starting or
    stopping on this state folder, is waited for; one is started only when none is (at most one client at a time
    does, under the autostart lock). Raises ConfigurationError, naming the state folder, if none comes up in time."""
    from filelock import Timeout

    state, file = paths.state_dir(), paths.endpoint_file()
    pause = Backoff(timeout, first=_POLL, most=_POLL)
    try:
        with endpoint.autostarting(file, timeout):
            return _find_or_start(file, timeout, pause)
    except Timeout:
        raise ConfigurationError(
            f"another process kept starting the local server for state folder {state} for {timeout:.0f}s; see "
            f"{state / 'server.log'}, or run `cellbox serve` yourself."
        ) from None


def _find_or_start(file: Path, timeout: float, pause: Backoff) -> Settings:
    state = paths.state_dir()
    log = state / "server.log"
    started: subprocess.Popen[bytes] | None = None
    logged = 0  # the log's size when this client started the server: what it says after that is its own
    held = False  # a server process held the state folder while this client waited
    free_since: float | None = None  # when it let go without having served
    while True:
        found = load_settings()
        if found.base_url:
            return found
        now = time.monotonic()
        if endpoint.claimed(file):  # starting (no endpoint file yet) or stopping (its file already gone)
            held, free_since = True, None
        elif started is not None and started.poll() is not None:
            raise ConfigurationError(_exited(started.returncode, log, logged))
        elif started is None and held and (free_since is None or now - free_since < _RESTART_GRACE):
            free_since = now if free_since is None else free_since
        elif started is None:
            unable = isolation.missing()
            if unable is not None:
                raise ConfigurationError(isolation.refusal(unable))
            logged = log.stat().st_size if log.exists() else 0
            started = _start_local_server()
        if not pause.wait():
            raise ConfigurationError(
                f"the local server for state folder {state} did not come up within {timeout:.0f}s (its first start "
                f"builds the sandbox environment containers run in); see {log}, or run `cellbox serve` yourself."
            )


def _exited(status: int, log: Path, since: int) -> str:
    """Why a server this client started exited before serving: the last line it wrote to its log (one line that
    names the cause, as the server says it), else where to look."""
    try:
        with log.open("rb") as f:
            f.seek(max(since, log.stat().st_size - _LOG_TAIL))
            lines = f.read(_LOG_TAIL).decode(errors="replace").splitlines()
    except OSError:
        lines = []
    said = next((line.strip() for line in reversed(lines) if line.strip()), "")
    said = said.removeprefix("cellbox serve: ")
    if said.startswith("the local server"):
        return said
    where = f"the local server for state folder {log.parent} exited (status {status}) before serving"
    return f"{where}: {said} (see {log})" if said else f"{where}; see {log}, or run `cellbox serve` yourself."


def settings(autostart: bool = True) -> Settings:
    """The configured settings; with no backend configured, those of the local server (started if needed, or
    waited for if another client is starting it or it is starting or stopping)."""
    found = load_settings()
    if found.base_url or not autostart:
        return found
    return _autostart(_START_TIMEOUT)


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
