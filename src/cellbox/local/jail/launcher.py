"""How a container's kernel process is launched: inside a bubblewrap jail, or (when asked) without one.

The jail is what the cloud's containers are: the host's filesystem read-only, the container's folder bound
at /mnt/data (also the working directory), a private /tmp, no network at all, its own pid namespace, no
capabilities, and the server's data, state and home folders masked. The kernel talks to the server over a socket
pair it inherits (TCP cannot cross the network namespace). Memory is capped with RLIMIT_DATA, which makes an
over-allocating cell raise MemoryError while the kernel lives on (RLIMIT_AS made some native writers hang
instead).

No host path of the server's is shown to the code (where the interpreter, the project or the data live is what
makes an attack easy to aim): the interpreter's prefixes are bound at fixed paths under /opt/cellbox (`Jail
Python`), a virtual environment's pyvenv.cfg is rewritten to name them, and the kernel's script is a copy in the
jail's own read-only tmpfs. /proc/self/mountinfo gives each bind mount's root within its filesystem, so the
prefixes are bound from overlays that hide their host folders (overlays.py, `Launcher.sources`) where the server
can mount them; without root, mountinfo names the prefixes' host folders, and the container's folder when it is
not a filesystem of its own (store/disk.py).

`Launcher.spawn` starts a kernel under a `Limits` value and `Launcher.cleanup` releases what spawning set up once
the process is gone: the two hooks where per-container enforcement (cgroups, quotas) plugs in.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import seccomp
from .cgroups import Cgroup, CgroupLimits, CgroupTree

MOUNT = "/mnt/data"
# Where the jail shows the interpreter and cellbox's own files, whatever their paths on the host.
JAIL_ROOT = "/opt/cellbox"
JAIL_PYTHON = f"{JAIL_ROOT}/python"  # the interpreter's base prefix
JAIL_VENV = f"{JAIL_ROOT}/venv"  # its virtual environment, when it runs in one
JAIL_BIN = f"{JAIL_ROOT}/bin"  # the interpreter's folder, when it is in neither prefix
JAIL_KERNEL = f"{JAIL_ROOT}/kernel.py"
# What answers `pip` there (containers have no network): a program first on PATH and a `pip` module first on
# sys.path, so `pip install`, `!pip`, `%pip` and `python -m pip` all end at once, saying how to add a package.
JAIL_OFFLINE = f"{JAIL_ROOT}/offline"
MEMORY_LIMITS = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}

_PR_SET_PDEATHSIG = 1


# What a jail sees of the host, read-only (symlinks, as /bin is on merged-/usr systems, are recreated as such).
_SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"]
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
NOBODY = (65534, 65534)


def jail_user() -> tuple[int, int] | None:
    """The user code runs as: `nobody` when the server is root and can switch to it, else None (the server's)."""
    if os.geteuid() != 0 or not os.path.exists(SETPRIV):
        return None
    return NOBODY


def _under_bound(folder: str) -> bool:
    return any(folder == p or folder.startswith(p.rstrip("/") + "/") for p in _SYSTEM_PATHS)


# Host places a jail has no business reading: service sockets (a unix socket on a read-only mount still
# accepts connections), service data, and secrets root can read even without capabilities.
_MASKED_FOLDERS = ["/run", "/var", "/srv", "/media", "/etc/ssh", "/etc/ssl/private"]
_MASKED_FILES = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"]


def host_memory_bytes() -> int:
    """The host's RAM (MemTotal), or no limit where /proc/meminfo can't say."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


@dataclass(frozen=True)
class JailPython:
    """The interpreter as a jail shows it: its host folders bound at fixed paths, and the files made for it."""

    binds: tuple[tuple[str, str], ...]  # (host folder, path in the jail), read-only
    symlinks: tuple[tuple[str, str], ...]  # (target, path in the jail)
    files: tuple[tuple[bytes, str], ...]  # (content, path in the jail)
    executable: str  # what the jail runs
    library_path: str | None  # LD_LIBRARY_PATH its shared libraries need there, if any

    @classmethod
    def of(
        cls,
        python: str,
        base_prefix: str = sys.base_prefix,
        prefix: str = sys.prefix,
        version: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
    ) -> JailPython:
        base = os.path.realpath(base_prefix)
        venv = os.path.realpath(prefix) if os.path.realpath(prefix) != base else None
        real = os.path.realpath(python)
        binds = [(base, JAIL_PYTHON)]
        if not _within(real, base):
            binds.append((os.path.dirname(real), JAIL_BIN))
        if venv is not None and os.path.isdir(os.path.join(venv, "lib")):
            binds.append((os.path.join(venv, "lib"), f"{JAIL_VENV}/lib"))

        def inside(path: str) -> str | None:
            for host, jail in binds:
                if _within(path, host):
                    return jail + path[len(host) :]
            return None

        base_executable = inside(real)
        assert base_executable is not None
        symlinks: list[tuple[str, str]] = []
        files: list[tuple[bytes, str]] = []
        config = os.path.join(venv, "pyvenv.cfg") if venv is not None else ""
        if venv is not None and os.path.isfile(config):
            if os.path.islink(os.path.join(venv, "lib64")):
                symlinks.append(("lib", f"{JAIL_VENV}/lib64"))
            versioned = f"python{version[0]}.{version[1]}"
            for name in dict.fromkeys([os.path.basename(python), "python", "python3", versioned]):
                symlinks.append((base_executable, f"{JAIL_VENV}/bin/{name}"))
            files.append((_jail_venv_config(config, inside), f"{JAIL_VENV}/pyvenv.cfg"))
            executable = f"{JAIL_VENV}/bin/{os.path.basename(python)}"
        else:
            # Not in a virtual environment (or one without its pyvenv.cfg): the interpreter as it is named.
            executable = inside(os.path.abspath(python)) or base_executable
        return cls(tuple(binds), tuple(symlinks), tuple(files), executable, _library_path(real, inside))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _jail_venv_config(path: str, inside: Callable[[str], str | None]) -> bytes:
    """The environment's pyvenv.cfg as the jail needs it: `home` names the base interpreter's folder where the
    jail has it (Python finds its base prefix from there), and keys naming host paths are left out."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as config:
        for line in config:
            key, _, value = line.partition("=")
            key = key.strip().lower()
            if key == "home":
                home = inside(os.path.realpath(value.strip()))
                if home is None:
                    continue
                line = f"home = {home}\n"
            elif key in ("executable", "command", "prompt"):
                continue
            lines.append(line if line.endswith("\n") else line + "\n")
    return "".join(lines).encode()


def _library_path(executable: str, inside: Callable[[str], str | None]) -> str | None:
    """Where the jail finds the shared libraries the interpreter loads from its own prefix: a build that names
    them by absolute path (RUNPATH, as pyenv's does) would look for them at their host path."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run([ldd, executable], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    folders: list[str] = []
    for line in done.stdout.splitlines():
        _, arrow, found = line.partition("=>")
        library = found.split("(")[0].strip() if arrow else ""
        if not library.startswith("/") or _under_bound(os.path.dirname(library)):
            continue  # the system's own: the jail has it where the host does
        where = inside(os.path.realpath(os.path.dirname(library)))
        if where is not None and where not in folders:
            folders.append(where)
    return ":".join(folders) or None


class IsolationUnavailable(RuntimeError):
    """bubblewrap cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    """What one container's processes may use; None is "not limited"."""

    memory_bytes: int | None = None
    processes: int | None = None
    cpus: float | None = None
    disk_bytes: int | None = None


def check_isolation() -> None:
    """Raises IsolationUnavailable unless a bubblewrap jail with every namespace we use can start."""
    if not sys.platform.startswith("linux"):
        raise IsolationUnavailable(f"containers need Linux namespaces (bubblewrap); this is {sys.platform}")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise IsolationUnavailable("bubblewrap is not installed (on Debian/Ubuntu: apt-get install bubblewrap)")
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--cap-drop", "ALL", "true"]
    for _ in range(3):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IsolationUnavailable(f"bubblewrap failed to run: {exc}") from exc
        # Binding / remounts every mount under it: one another process unmounts meanwhile (another server's
        # container going) fails the probe with ENOENT on that mount, and says nothing about this host.
        if done.returncode == 0 or "No such file or directory" not in done.stderr:
            break
    if done.returncode != 0:
        reason = done.stderr.strip() or f"exit status {done.returncode}"
        raise IsolationUnavailable(
            f"bubblewrap cannot create a jail here ({reason}); unprivileged user namespaces may be disabled "
            "(sysctl kernel.unprivileged_userns_clone=1 or kernel.apparmor_restrict_unprivileged_userns=0)"
        )


@dataclass
class Launcher:
    """Starts kernels: the command, environment and process setup of one, under its container's limits."""

    isolated: bool
    runtime_dir: Path
    hidden: list[Path] = field(default_factory=list)
    # The interpreter code runs, and its prefixes: the sandbox environment's (sandbox_env), or the server's own.
    python: str = sys.executable
    base_prefix: str = sys.base_prefix
    prefix: str = sys.prefix
    version: tuple[int, int] = (sys.version_info[0], sys.version_info[1])
    # Server-wide limits every container gets, whatever its memory limit.
    processes: int | None = None
    cpus: float | None = None
    disk_bytes: int | None = None
    cgroups: CgroupTree | None = None
    # The unprivileged (uid, gid) code runs as, when the server can switch to it (it runs as root); else None and
    # code runs as the server's own user.
    user: tuple[int, int] | None = None
    # The seccomp program bwrap loads for the code (seccomp.program()), or None.
    seccomp: bytes | None = None
    # What the jail binds in place of an interpreter folder (JailPython.binds): its overlay, which shows no host path.
    sources: dict[str, str] = field(default_factory=dict)
    _groups: dict[int, Cgroup] = field(default_factory=dict, repr=False)
    _jail_python: JailPython | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.isolated:  # now, not at the first kernel's start on the event loop (it runs ldd)
            self._jail_python = self._jail()

    @property
    def jail_python(self) -> JailPython:
        if self._jail_python is None:
            self._jail_python = self._jail()
        return self._jail_python

    def _jail(self) -> JailPython:
        return JailPython.of(self.python, self.base_prefix, self.prefix, self.version)

    def limits_for(self, memory_limit: str) -> Limits:
        """The limits of a container created with this `memory_limit` (1g, 4g, 16g, 64g)."""
        return Limits(
            memory_bytes=MEMORY_LIMITS[memory_limit],
            processes=self.processes,
            cpus=self.cpus,
            disk_bytes=self.disk_bytes,
        )

    def spawn(
        self, workdir: Path, script: Path, home: Path, limits: Limits, log: int | IO[bytes], sockets: tuple[int, int]
    ) -> subprocess.Popen:
        """The kernel's process (`script` run with the descriptors of its two `sockets`, kernel.py), started in its
        jail and its control group with `log` as its stdout and stderr."""
        group = None
        if self.cgroups is not None:
            group = self.cgroups.create(CgroupLimits(limits.memory_bytes, limits.processes, limits.cpus))
        passed: list[int] = []
        try:
            argv = self.argv(workdir, script, sockets, limits.memory_bytes, passed)
            if self.isolated and self.seccomp is not None:
                passed.append(seccomp.descriptor(self.seccomp))
                argv[1:1] = ["--seccomp", str(passed[-1])]
            process = subprocess.Popen(
                argv,
                env=self.env(home),
                cwd=self.cwd(workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=preexec(limits.memory_bytes, group, limits.disk_bytes),
                start_new_session=True,
                pass_fds=(*passed, *sockets),
            )
        except BaseException:
            if group is not None:
                group.remove()
            raise
        finally:
            for fd in passed:
                os.close(fd)
        if group is not None:
            self._groups[process.pid] = group
        return process

    def give(self, path: Path) -> None:
        """Hands a file or folder the server made to the jail's user, so the code can change it."""
        if self.user is not None:
            os.chown(path, *self.user, follow_symlinks=False)

    def cleanup(self, process: subprocess.Popen) -> None:
        """Releases what spawn set up for a process that has ended: ends what it left running, removes its group."""
        group = self._groups.pop(process.pid, None)
        if group is not None:
            group.remove()

    def counts_memory_kills(self) -> bool:
        """Whether `memory_kills` can tell: the memory limit is a cgroup's here."""
        return self.cgroups is not None and "memory" in self.cgroups.bases

    def memory_kills(self, process: subprocess.Popen) -> int:
        """How many of the process's jail the memory limit has killed (0 where the limit isn't a cgroup's)."""
        group = self._groups.get(process.pid)
        return group.oom_kills() if group is not None else 0

    def memory_peak(self, process: subprocess.Popen) -> int | None:
        """The most memory the process's jail has used at once, in bytes (None where the limit isn't a cgroup's)."""
        group = self._groups.get(process.pid)
        return group.memory_peak() if group is not None else None

    def argv(
        self,
        workdir: Path,
        script: Path,
        sockets: tuple[int, int],
        memory_bytes: int | None,
        passed: list[int],
    ) -> list[str]:
        """The command line of a kernel; descriptors it opens for bubblewrap to read are added to `passed` (the
        caller passes them to the child and closes them)."""
        if not self.isolated:
            return [self.python, str(script), *map(str, sockets)]
        python = self.jail_python
        kernel = [python.executable, JAIL_KERNEL, *map(str, sockets)]
        bwrap = shutil.which("bwrap") or "bwrap"
        argv = [bwrap]
        # Only what Python needs, read-only: the system's programs, libraries and /etc, and the interpreter's own
        # prefixes (at fixed paths: see JailPython).
        for path in _SYSTEM_PATHS:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        argv += ["--dev", "/dev", "--proc", "/proc"]
        # POSIX semaphores and shared memory live in /dev/shm (multiprocessing's locks, joblib's workers and the
        # arrays it shares with them): writable by all, RAM bounded inside the container's memory.
        argv += ["--size", str(memory_bytes // 2 if memory_bytes else 64 << 20), "--perms", "1777"]
        argv += ["--tmpfs", "/dev/shm"]
        if memory_bytes:
            # /tmp is RAM; without a size a cell could fill memory there, past its limit.
            argv += ["--size", str(memory_bytes)]
        argv += ["--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/mnt"]
        for folder in [*_MASKED_FOLDERS, *map(str, self.hidden)]:
            if os.path.isdir(folder) and not os.path.islink(folder) and _under_bound(folder):
                argv += ["--size", str(1 << 20), "--tmpfs", folder]
        for path in _MASKED_FILES:
            if os.path.isfile(path):
                argv += ["--ro-bind", "/dev/null", path]
        argv += ["--perms", "1777", "--dir", "/var/tmp"]
        # /opt/cellbox: a small tmpfs of its own, made read-only once filled (the kernel's script is a copy there,
        # outside the container's quota, and no one's to change).
        argv += ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--size", str(1 << 20), "--tmpfs", JAIL_ROOT]
        made = {JAIL_ROOT}
        with open(script, "rb") as source:
            files = [(c, p, "0444") for c, p in python.files] + [(source.read(), JAIL_KERNEL, "0444")]
        files += offline_files(python.executable, self.version)
        for inside in [p for _, p in python.binds] + [p for _, p in python.symlinks] + [p for _, p, _ in files]:
            # Folders bubblewrap makes on the way are 0700: only root could pass through.
            folder = os.path.dirname(inside)
            if folder not in made:
                made.add(folder)
                argv += ["--perms", "0755", "--dir", folder]
        for host, inside in python.binds:
            argv += ["--ro-bind", self.sources.get(host, host), inside]
        for target, inside in python.symlinks:
            argv += ["--symlink", target, inside]
        for content, inside, perms in files:
            passed.append(_memory_file(content))
            argv += ["--perms", perms, "--file", str(passed[-1]), inside]
        argv += ["--remount-ro", JAIL_ROOT]
        argv += ["--bind", str(workdir), MOUNT, "--chdir", MOUNT]
        argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox"]
        argv += ["--unshare-cgroup-try", "--cap-drop", "ALL", "--new-session", "--die-with-parent"]
        if self.user is not None:
            # bwrap needs root for its mounts; the code gets none of it: setpriv becomes the jail's own user,
            # with no capabilities left to gain, before Python starts.
            uid, gid = self.user
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
            kernel = [
                SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--", *kernel,
            ]  # fmt: skip
        return [*argv, "--", *kernel]

    def env(self, home: Path) -> dict[str, str]:
        """A scrubbed environment: nothing of the server's (no token, no cloud credentials) reaches the code."""
        home_dir = "/tmp" if self.isolated else str(home)
        bindir = os.path.dirname(self.jail_python.executable if self.isolated else self.python)
        extra = {}
        if self.isolated and self.jail_python.library_path:
            extra["LD_LIBRARY_PATH"] = self.jail_python.library_path
        if self.isolated:
            bindir = f"{JAIL_OFFLINE}/bin:{bindir}"
            # A real pip, should one be installed, fails at once too rather than retrying a network there isn't.
            extra.update(PYTHONPATH=f"{JAIL_OFFLINE}/site", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        return {
            **extra,
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": home_dir,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": "/tmp" if self.isolated else str(home),
            "IPYTHONDIR": f"{home_dir}/.ipython",
            "MPLCONFIGDIR": f"{home_dir}/.matplotlib",
            "JUPYTER_RUNTIME_DIR": f"{home_dir}/.jupyter-runtime",
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # What `!commands` run in, as in a notebook's kernel started from a login shell (bash, where there is one).
            "SHELL": "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh",
        }

    def cwd(self, workdir: Path) -> str:
        return "/" if self.isolated else str(workdir)


OFFLINE_PIP = """\
import sys

from importlib import metadata

args = sys.argv[1:]
if args[:1] in (["list"], ["freeze"]):
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = (name, dist.version)
    rows = sorted(found.values(), key=lambda row: row[0].lower())
    width = max((len(name) for name, _ in rows), default=0)
    for name, version in rows:
        print(f"{name}=={version}" if args[0] == "freeze" else f"{name:<{width}}  {version}")
    sys.exit(0)
wanted = [a for a in args[1:] if not a.startswith("-")] if args[:1] == ["install"] else []
name = wanted[0] if len(wanted) == 1 else "NAME"
listed = ", ".join(f'"{w}"' for w in wanted) or '"NAME"'
print(
    f"pip: this container has no network, so nothing can be installed in it. To add a package to the local "
    f"sandbox environment: sandbox_packages = [{listed}] in cellbox's config.toml (or `cellbox serve "
    f"--sandbox-package {name}`), then restart the server (`cellbox stop`); `cellbox env` lists what it has.",
    file=sys.stderr,
)
sys.exit(1)
"""


def offline_files(python: str, version: tuple[int, int]) -> list[tuple[bytes, str, str]]:
    """The jail's `pip`: (content, path in the jail, permissions)."""
    program = f'#!/bin/sh\nexec {python} -m pip "$@"\n'.encode()
    names = ("pip", f"pip{version[0]}", f"pip{version[0]}.{version[1]}")
    files = [(program, f"{JAIL_OFFLINE}/bin/{name}", "0555") for name in names]
    files += [(b"", f"{JAIL_OFFLINE}/site/pip/__init__.py", "0444")]
    files += [(OFFLINE_PIP.encode(), f"{JAIL_OFFLINE}/site/pip/__main__.py", "0444")]
    return files


def _memory_file(content: bytes) -> int:
    """A descriptor of an anonymous file holding `content`, at its start (for bubblewrap's --file)."""
    fd = os.memfd_create("cellbox", os.MFD_CLOEXEC)
    try:
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def preexec(memory_bytes: int | None, group: Cgroup | None = None, file_bytes: int | None = None) -> Callable[[], None]:
    """Runs in the child before exec: join the container's control group, die with the server, cap the data
    segment (a process over it gets MemoryError and lives on; the group's limit covers its children too) and the
    size of any one file (the disk quota: a write past it fails with EFBIG)."""

    def setup() -> None:
        if group is not None:
            group.join()
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
        if file_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))

    return setup
