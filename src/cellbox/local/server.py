"""Running the local server: checks, wiring, uvicorn, and the endpoint file clients find it by.

The endpoint file (`cellbox.common.paths.endpoint_file()` unless told otherwise) holds
`{"base_url": "http://HOST:PORT/v1", "token": "...", "pid": N}`, mode 0600, written atomically once the server
accepts requests and removed on a clean shutdown if it is still ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import uvicorn

from ..common import endpoint, isolation, paths
from .http.app import build_app
from .jail import cgroups, seccomp
from .jail.containers import Containers
from .jail.launcher import IsolationUnavailable, Launcher, check_isolation, host_memory_bytes, jail_user
from .jail.overlays import OverlaysUnavailable, PrefixOverlays
from .options import DEFAULT_PORT, ServerOptions, parse_size
from .sandbox_env import Environment, SandboxEnvError, Spec, configured_packages, ensure
from .store import Store, disk
from .store.diskimages import DiskImages, DiskImagesUnavailable

log = logging.getLogger("cellbox.local")


def write_endpoint_file(path: Path, base_url: str, token: str) -> None:
    running = endpoint.read(path)
    if running is not None and running.pid not in (None, os.getpid()):
        log.warning("another local server (pid %s) is running; clients will now find this one", running.pid)
    endpoint.write(path, base_url, token)


def _hidden_folders(data_dir: Path, endpoint_file: Path) -> list[Path]:
    """Host folders a jail must not see: homes, the server's data and state (token, other containers)."""
    candidates = [Path.home(), Path("/home"), Path("/root"), data_dir, endpoint_file.parent, paths.state_dir()]
    tmp = Path("/tmp")
    hidden = []
    for folder in candidates:
        folder = folder.resolve()
        if folder == Path("/") or folder == tmp or tmp in folder.parents:
            continue
        hidden.append(folder)
    return list(dict.fromkeys(hidden))


def serve(options: ServerOptions) -> int:
    """Runs the server until SIGINT/SIGTERM; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="cellbox serve: %(message)s", stream=sys.stderr)
    raise_open_files_limit()
    if not options.unsafe_no_isolation:
        unable = isolation.missing()
        if unable is None:
            try:
                check_isolation()
            except IsolationUnavailable as exc:
                unable = str(exc)
        if unable is not None:
            # One line, the last one: a client that started this server says it as the reason.
            print(f"cellbox serve: {isolation.refusal(unable)}", file=sys.stderr)
            return 2
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach it and has the token can run code", options.host)
    data_dir = Path(options.data_dir or paths.default_data_dir()).absolute()
    endpoint_file = Path(options.endpoint_file or paths.endpoint_file()).absolute()
    running = endpoint.claim(endpoint_file)  # a second server refuses to start: it never takes the file over
    if running is not None:
        where = f" at {running.base_url}" if running.base_url else ""
        pid = f" (pid {running.pid})" if running.pid else ""
        print(
            f"cellbox serve: another local server{pid} is running{where} and owns {endpoint_file}; clients use "
            "that one. Stop it first (`cellbox stop`), or give this server its own state folder (CELLBOX_STATE_DIR).",
            file=sys.stderr,
        )
        return 1
    try:
        environment = sandbox_environment(options)
    except SandboxEnvError as exc:
        print(f"cellbox serve: cannot make the sandbox environment containers run in: {exc}", file=sys.stderr)
        return 2
    token = options.token or secrets.token_urlsafe(32)
    port = DEFAULT_PORT if options.port is None else options.port
    try:
        sock = _listen(options.host, port)
    except OSError as exc:
        if options.port is None and exc.errno == errno.EADDRINUSE:
            # Clients find the server through the endpoint file, so any port does.
            sock = _listen(options.host, 0)
        else:
            print(f"cellbox serve: cannot listen on {options.host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
    # ipc socket paths must stay under ~100 bytes, so the runtime folder gets a short name in /tmp.
    _remove_stale_runtime_dirs()
    runtime_dir = Path(tempfile.mkdtemp(prefix=f"cbx-{os.getpid()}-", dir="/tmp"))
    handlers: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on these, then re-raises them with the handlers it found installed:
        # no-op handlers let our own cleanup (endpoint file, runtime folder) run before we exit. The caller's own
        # come back when serving ends (a process that goes on must still stop on Ctrl-C).
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, lambda *_: None)
    try:
        return asyncio.run(_serve(options, sock, data_dir, endpoint_file, token, runtime_dir, environment))
    finally:
        for restored, handler in handlers.items():
            signal.signal(restored, handler)
        sock.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)


def sandbox_spec(options: ServerOptions) -> Spec:
    """The environment these options ask for: the lock, config.toml's sandbox_packages and --sandbox-package."""
    return Spec(packages=(*configured_packages(), *options.sandbox_package), root=options.sandbox_env_dir)


def sandbox_environment(options: ServerOptions) -> Environment | None:
    """The environment containers run in, built now if this is its first use (said as it goes, in the log a user
    sees while the server or a notebook's first cell waits); None: the server's own interpreter (--own-interpreter).
    """
    if options.own_interpreter:
        return None
    environment = ensure(sandbox_spec(options), say=log.info, hold=True)
    log.info(
        "containers run the sandbox environment in %s (%d packages: `cellbox env` lists them)",
        environment.folder,
        len(environment.distributions),
    )
    return environment


def _disk_images(options: ServerOptions, data_dir: Path, limit: int) -> DiskImages | None:
    """The containers' disk images, ready to make new ones if the host allows it (and --disk-quota doesn't say
    otherwise); says at start which way the disk limit is kept. None: --disk-quota filesystem, and it can't be."""
    disks = DiskImages(data_dir, data_dir / "containers", limit)
    why = "--disk-quota measured"
    if options.disk_quota != "measured":
        try:
            disks.start()
        except DiskImagesUnavailable as exc:
            if options.disk_quota == "filesystem":
                print(f"cellbox serve: --disk-quota filesystem: {exc}", file=sys.stderr)
                return None
            why = str(exc)
    said = disk.size_said(limit)
    if disks.making:
        log.info("disk limit %s per container, kept by a filesystem of its own for each (ext4 images)", said)
    else:
        log.warning(
            "disk limit %s per container, measured (%s): usage is measured every second or so, between runs too, "
            "and a kernel past it stopped; about a second's worth of writing can pass it",
            said,
            why,
        )
    return disks


def raise_open_files_limit() -> int:
    """Lifts this process's open-file limit to the hard limit (each container's kernel costs descriptors, and at
    the usual 1,024 a server with ~80 containers stops accepting connections); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def default_max_containers() -> int:
    """As many containers as the host can hold: ~20 descriptors and ~96 MiB of RAM each, room left for the rest."""
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    by_files = (files - 256) // 20 if files != resource.RLIM_INFINITY else 10_000
    return max(1, min(by_files, host_memory_bytes() // (96 << 20)))


def _remove_stale_runtime_dirs() -> None:
    """Runtime folders of servers that were killed (kill -9 leaves no chance to clean up)."""
    for folder in Path("/tmp").glob("cbx-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not endpoint.pid_alive(int(pid)) and folder.stat().st_uid == os.getuid():
            shutil.rmtree(folder, ignore_errors=True)


def _prefix_overlays(launcher: Launcher, data_dir: Path) -> PrefixOverlays | None:
    """The interpreter's folders mounted where the jail shows no host path (jail/overlays.py), when it can be."""
    if not launcher.isolated:
        return None
    overlays = PrefixOverlays(data_dir / "prefixes")
    try:
        launcher.sources = overlays.show(host for host, _ in launcher.jail_python.binds)
    except OverlaysUnavailable as exc:
        log.warning("containers see where the interpreter is on this host in /proc/self/mountinfo: %s", exc)
        return None
    return overlays


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listen(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP, and
    # without it every response on a kept-alive connection waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(
    options: ServerOptions,
    sock: socket.socket,
    data_dir: Path,
    endpoint_file: Path,
    token: str,
    runtime_dir: Path,
    environment: Environment | None = None,
) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    reserve = disk.Reserve(data_dir)
    if disk.free_bytes(data_dir) < reserve.size:
        reserve.release()  # a full disk: give the reserve back so SQLite can open and deletes can free room
    user = jail_user() if not options.unsafe_no_isolation else None
    if user is None and not options.unsafe_no_isolation:
        log.warning(
            "code in containers runs as this server's own user (%s): run the server as root to run it "
            "as an unprivileged user instead",
            os.getuid(),
        )
    disk_limit = parse_size(options.disk_limit) if options.disk_limit else disk.default_limit(data_dir)
    disks = _disk_images(options, data_dir, disk_limit)
    if disks is None:
        return 2
    store = Store(data_dir, on_full=reserve.release, owner=user, disks=disks if os.geteuid() == 0 else None)
    filter_program = seccomp.program()
    if filter_program is None and not options.unsafe_no_isolation:
        log.warning("no seccomp filter for this machine's architecture: system calls are not filtered")
    reserve.hold()
    cgroups.remove_stale()
    tree = cgroups.CgroupTree.detect()
    for limit in tree.not_enforced:
        log.warning("this host does not let the server limit %s per container: not enforced", limit)
    python, base_prefix, prefix, version = (sys.executable, sys.base_prefix, sys.prefix, sys.version_info[:2])
    if environment is not None:
        python, base_prefix, prefix = environment.python, environment.base_prefix, str(environment.folder)
        version = environment.version
    launcher = Launcher(
        python=python,
        base_prefix=base_prefix,
        prefix=prefix,
        version=(version[0], version[1]),
        isolated=not options.unsafe_no_isolation,
        runtime_dir=runtime_dir,
        hidden=_hidden_folders(data_dir, endpoint_file),
        processes=options.max_processes,
        cpus=options.cpu_limit or max(1.0, float((os.cpu_count() or 1) - 1)),
        disk_bytes=disk_limit,
        user=user,
        seccomp=filter_program,
        cgroups=tree if tree.bases else None,
    )
    overlays = _prefix_overlays(launcher, data_dir)
    containers = Containers(
        store,
        launcher,
        pool_size=options.pool_size,
        exec_timeout=options.exec_timeout,
        seconds_per_minute=options.seconds_per_minute,
        max_containers=options.max_containers or default_max_containers(),
        quota=disk.Quota(store.containers_dir, disk_limit, reserve, disks if disks.making else None),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await containers.open()
        try:
            yield
        finally:
            await app.state.stored.close()
            await containers.close()
            tree.close()
            if overlays is not None:
                overlays.close()

    app = build_app(containers, options, token, lifespan=lifespan)
    # The access log shows method, path and status; the Authorization header never reaches it.
    config = uvicorn.Config(
        app,
        log_level="info" if options.access_log else "warning",
        access_log=options.access_log,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown_host}:{port}/v1"
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                break
            await asyncio.sleep(0.02)
        if server.started:
            write_endpoint_file(endpoint_file, base_url, token)
            isolation = "unsafe, no isolation" if options.unsafe_no_isolation else "bubblewrap jails"
            log.info("serving %s (%s); data in %s; token in %s", base_url, isolation, data_dir, endpoint_file)
        await task
    finally:
        endpoint.remove(endpoint_file, base_url)
        store.close()
    return 0 if server.started else 1
