"""The environment every local container runs in: a virtual environment cellbox declares and owns, built from the
lock file shipped beside this module, the same whichever Python starts the server.

What a container can import is `requirements.lock` (made from `requirements.in` by the command in its header: the
versions and hashes of the data stack and of what the container's kernel imports), plus the extra packages the
user asks for (`sandbox_packages` in config.toml, `cellbox serve --sandbox-package`). An environment is built once
with uv, on first use, and kept under a folder named after everything that decides its contents::

    <root>/<key>/                 the virtual environment (bin/python, lib/python3.11/site-packages, ...)
    <root>/<key>/cellbox-env.json its manifest, written last: the interpreter it runs and every distribution in it
    <root>/<key>.lock             held while it is built (servers starting at once build it once)

`<root>` is `--sandbox-env-dir`, else `$CELLBOX_SANDBOX_ENV_DIR`, else the user's cache folder
(`~/.cache/cellbox/sandbox-env`). `<key>` hashes the lock, the extra packages and the kind of interpreter (CPython
3.11 on this machine's architecture), not which one: a server started by any Python finds the same environment. It
is built on the server's own interpreter when that is a CPython 3.11, else on one uv finds on the host; its
manifest names that interpreter, and an environment whose interpreter is gone is built again.

A folder without its manifest is a build that did not finish: it is removed and built again. An environment is
built beside its final place and renamed into it, so a reader never finds half of one.

A server holds its environment for as long as it runs (a shared lock on the manifest, `ensure(hold=True)`): its
containers see that environment's files through mounts made at start. So a build that replaces an environment
(`cellbox env upgrade`) moves the old one aside as `<key>.retired-<n>` rather than deleting it under a running
server, and the old one goes once nothing holds it. Each use marks the manifest's time: an environment of another
key (an older lock, other extra packages) that nothing holds and that was not used for STALE_DAYS is removed
(`sweep`, at every `ensure`), so upgrades don't pile up gigabytes in the cache folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ...common import paths

HERE = Path(__file__).parent
LOCK = HERE / "requirements.lock"
ROOT_VARIABLE = "CELLBOX_SANDBOX_ENV_DIR"
CONFIG_KEY = "sandbox_packages"
PYTHON_VERSION = (3, 11)  # what the lock is made for
MANIFEST = "cellbox-env.json"
# How an environment is made, in the key: a change to the recipe builds environments anew, as a new lock does.
RECIPE = 2
# Long enough for a first build that downloads everything on a slow link; a build never takes this long otherwise.
BUILD_TIMEOUT = 1800.0
_HEARTBEAT = 15.0
# An environment of another key that nothing holds is removed this long after its last use.
STALE_DAYS = 30
RETIRED = ".retired-"
# The manifests this process holds open, each with a shared lock, until it exits.
_held: dict[Path, Any] = {}

Say = Callable[[str], None]


class SandboxEnvError(RuntimeError):
    """The sandbox environment can't be built or found; the message says why and what to do."""


def default_root() -> Path:
    """Where environments are kept unless told otherwise: $CELLBOX_SANDBOX_ENV_DIR, else the user's cache folder."""
    explicit = os.environ.get(ROOT_VARIABLE)
    if explicit:
        return Path(explicit)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cellbox", appauthor=False)) / "sandbox-env"


def configured_packages(config_file: Path | None = None) -> tuple[str, ...]:
    """The extra packages config.toml asks for (`sandbox_packages = ["duckdb", "xgboost==2.1"]`)."""
    import tomllib

    path = config_file or paths.config_file()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return ()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SandboxEnvError(f"can't read {path}: {exc}") from None
    table = data.get("cellbox", data)
    value = table.get(CONFIG_KEY, []) if isinstance(table, dict) else []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SandboxEnvError(f'{path}: {CONFIG_KEY} must be a list of package names, like ["duckdb"]')
    return tuple(value)


def _requirement(text: str) -> str:
    cleaned = text.strip()
    # A requirement, not an option or a path: uv would read `--index-url ...` or `./x` as something else.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-\[\], ]*(\s*[<>=!~]=?\s*[A-Za-z0-9.*+!_\-]+\s*,?)*", cleaned):
        raise SandboxEnvError(f"not a package requirement: {text!r} (expected a name, optionally with a version)")
    return cleaned


@dataclass(frozen=True)
class Spec:
    """What decides an environment's contents, and where it is kept."""

    packages: tuple[str, ...] = ()  # extras beyond the lock
    root: Path | None = None
    lock: Path = LOCK

    def __post_init__(self) -> None:
        if self.root is not None:
            object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "packages", tuple(sorted(dict.fromkeys(map(_requirement, self.packages)))))

    @property
    def kind(self) -> str:
        major, minor = PYTHON_VERSION
        return f"cpython-{major}.{minor}-{sys.platform}-{platform.machine()}"

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.lock.read_bytes())
        digest.update(json.dumps([self.kind, list(self.packages), RECIPE]).encode())
        return digest.hexdigest()[:16]

    @property
    def folder(self) -> Path:
        return (self.root or default_root()) / self.key


@dataclass(frozen=True)
class Environment:
    """A built environment, as its manifest says."""

    folder: Path
    python: str  # its interpreter (bin/python, a link to the base interpreter)
    base_prefix: str
    version: tuple[int, int]
    packages: tuple[str, ...]  # the extras it was built with
    distributions: tuple[tuple[str, str], ...]  # (name, version), sorted by name
    seconds: float  # how long its build took

    @classmethod
    def read(cls, folder: Path) -> Environment | None:
        """The environment in `folder`, or None if it is not a complete one whose interpreter is still there."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            found = cls(
                folder=folder,
                python=str(folder / "bin" / "python"),
                base_prefix=manifest["base_prefix"],
                version=(int(manifest["version"][0]), int(manifest["version"][1])),
                packages=tuple(manifest["packages"]),
                distributions=tuple((name, version) for name, version in manifest["distributions"]),
                seconds=float(manifest.get("seconds", 0.0)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return found if os.path.exists(os.path.realpath(found.python)) else None

    def as_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "python": ".".join(map(str, self.version)),
            "extra_packages": list(self.packages),
            "packages": [{"name": name, "version": version} for name, version in self.distributions],
        }


def find(spec: Spec) -> Environment | None:
    """The spec's environment if it is built."""
    return Environment.read(spec.folder)


def ensure(spec: Spec, say: Say = lambda _: None, rebuild: bool = False, hold: bool = False) -> Environment:
    """The spec's environment, built first if it is not there yet (or anew when `rebuild`): one builder at a time
    for each environment, whoever else is waiting for it. With `hold`, this process holds it until it exits (a
    server, whose containers use it): a later rebuild leaves it in place for as long. Then what nothing holds of
    the other environments goes (`sweep`)."""
    found = None if rebuild or hold else find(spec)
    if found is None:
        found = _ensure_locked(spec, say, rebuild, hold)
    _mark_used(found.folder)
    sweep(found.folder.parent, say)
    return found


def _ensure_locked(spec: Spec, say: Say, rebuild: bool, hold: bool) -> Environment:
    folder = spec.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder) + ".lock", timeout=BUILD_TIMEOUT)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another process is building the sandbox environment in {folder}; waiting for it")
        lock.acquire()
    try:
        found = None if rebuild else find(spec)
        if found is None:
            found = _build(spec, say)
        if hold:  # under the build lock: no rebuild retires it between finding it and holding it
            _hold(found.folder)
        return found
    finally:
        lock.release()


def sweep(root: Path, say: Say = lambda _: None) -> list[Path]:
    """Removes what no process holds of the environments in `root`: those a rebuild retired, and those of other
    keys not used for STALE_DAYS; what it removed."""
    removed: list[Path] = []
    stale_before = time.time() - STALE_DAYS * 86400
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.is_dir() or entry.is_symlink() or entry.name.endswith(".building"):
            continue
        retired = RETIRED in entry.name
        if not retired:
            try:
                if (entry / MANIFEST).stat().st_mtime > stale_before:
                    continue
            except OSError:
                continue  # not an environment (or one being built): not ours to remove
        if _held_by_anyone(entry):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not retired:
            _remove_free_lock(entry.with_name(entry.name + ".lock"))
        removed.append(entry)
        say(f"removed the sandbox environment {entry.name} ({'replaced' if retired else 'unused'}), held by nothing")
    return removed


def _hold(folder: Path) -> None:
    if folder in _held:
        return
    handle = (folder / MANIFEST).open("rb")
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # released when this process exits, however it does
    _held[folder] = handle


def _held_by_anyone(folder: Path) -> bool:
    """Whether a process (this one included: a lock taken through another open file conflicts) holds the
    environment in `folder`."""
    try:
        handle = (folder / MANIFEST).open("rb")
    except FileNotFoundError:
        return False  # a retired build without its manifest: nothing can hold it
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _remove_free_lock(path: Path) -> None:
    lock = FileLock(str(path), timeout=0)
    try:
        with lock:
            path.unlink(missing_ok=True)
    except Timeout:
        pass


def _mark_used(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache folder: it is then never swept either
        os.utime(folder / MANIFEST)


def interpreter() -> str:
    """The CPython 3.11 an environment is built on: the server's own when it is one, else one uv finds here."""
    if sys.implementation.name == "cpython" and sys.version_info[:2] == PYTHON_VERSION:
        return os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    wanted = ".".join(map(str, PYTHON_VERSION))
    done = _uv(["python", "find", "--system", "--no-python-downloads", wanted], capture=True, check=False)
    found = done.stdout.strip()
    if done.returncode != 0 or not found:
        raise SandboxEnvError(
            f"containers run CPython {wanted}, and none was found on this host: install it (apt-get install "
            f"python{wanted}, or `uv python install {wanted}`)"
        )
    return os.path.realpath(found)


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise SandboxEnvError("uv is needed to build the sandbox environment: pip install uv") from None
        return found


def _uv(
    argv: list[str], capture: bool = False, check: bool = True, say: Say | None = None
) -> subprocess.CompletedProcess[str]:
    # The user's uv settings (an index mirror, a cache folder) hold; an active venv is not the one being built.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PYTHON", "UV_SYSTEM_PYTHON")}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the host's interpreters only
    if say is None:
        done = subprocess.run(
            [uv_binary(), *argv], capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT, check=False
        )
    else:
        done = _run_saying([uv_binary(), *argv], env, say)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip().splitlines()[-12:]
        raise SandboxEnvError(f"uv {argv[0]} {argv[1]} failed (status {done.returncode}):\n" + "\n".join(detail))
    return done


def _run_saying(argv: list[str], env: dict[str, str], say: Say) -> subprocess.CompletedProcess[str]:
    """Runs uv, saying its summary lines as they come (not one per package)."""
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            lines.append(line)
            if line and not line.lstrip().startswith(("+", "-", "~")):
                say(line.strip())
    return subprocess.CompletedProcess(argv, process.returncode, "", "\n".join(lines))


def _build(spec: Spec, say: Say) -> Environment:
    folder = spec.folder
    staging = folder.with_name(f"{folder.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    python = interpreter()
    extra = f" and {', '.join(spec.packages)}" if spec.packages else ""
    say(
        f"building the sandbox environment containers run in (once: the locked data stack{extra}, on {python}) "
        f"in {folder}"
    )
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(_HEARTBEAT):
            say(f"still building the sandbox environment ({time.monotonic() - started:.0f} s so far)")

    threading.Thread(target=heartbeat, name="cellbox-sandbox-env-heartbeat", daemon=True).start()
    try:
        _uv(["venv", "--quiet", "--relocatable", "--python", python, str(staging)])
        target = str(staging / "bin" / "python")
        # Compiled now: the jail's copy is read-only, so a module without its .pyc would be compiled again at every
        # import in every container (a data cell's imports took three times as long).
        _uv(["pip", "sync", "--compile-bytecode", "--python", target, "--require-hashes", str(spec.lock)], say=say)
        if spec.packages:
            _uv(["pip", "install", "--compile-bytecode", "--python", target, *spec.packages], say=say)
        seconds = time.monotonic() - started
        manifest = _describe(target)
        manifest.update(packages=list(spec.packages), seconds=round(seconds, 1), key=spec.key)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        done.set()
    built = Environment.read(folder)
    if built is None:
        raise SandboxEnvError(f"the sandbox environment built in {folder} can't be read back")
    say(f"sandbox environment ready in {built.seconds:.0f} s: {len(built.distributions)} packages")
    return built


def _replace(staging: Path, folder: Path) -> None:
    """Puts the new build in place; an old one is retired (`sweep` removes it once no server holds it)."""
    if folder.exists():
        folder.rename(folder.with_name(f"{folder.name}{RETIRED}{time.time_ns()}"))
    staging.rename(folder)


_DESCRIBE = """
import json, sys
from importlib import metadata
names = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        names[name.lower().replace("_", "-")] = (name, dist.version)
print(json.dumps({"base_prefix": sys.base_prefix, "version": list(sys.version_info[:3]),
                  "distributions": sorted(names.values(), key=lambda d: d[0].lower())}))
"""


def _describe(python: str) -> dict[str, Any]:
    done = subprocess.run([python, "-I", "-c", _DESCRIBE], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SandboxEnvError(f"the new sandbox environment's Python does not run: {done.stderr.strip()[-500:]}")
    described: dict[str, Any] = json.loads(done.stdout)
    return described


def table(distributions: Iterable[tuple[str, str]]) -> str:
    """Name and version, one a line, aligned."""
    rows = list(distributions)
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {version}" for name, version in rows)
