"""How a container's kernel process is launched: inside a bubblewrap jail, or (when asked) without one.

The jail is what the cloud's containers are: the host's filesystem read-only, the container's folder bound
at /mnt/data (also the working directory), a private /tmp, no network at all, its own pid namespace, no
capabilities, and the server's data, state and home folders masked. The kernel talks to the server over ipc
sockets in a runtime folder bound at the same path inside and out (TCP cannot cross the network namespace).
Memory is capped with RLIMIT_DATA, which makes an over-allocating cell raise MemoryError while the kernel lives
on (RLIMIT_AS made some native writers hang instead).

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


def _parents(path: str, made: set[str]) -> list[str]:
    """bwrap arguments making the folders above `path` traversable (bwrap would make them 0700, which only root
    could pass through), except those the jail already has."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder in made or folder in ("/tmp", "/mnt") or _under_bound(folder):
            continue
        made.add(folder)
        args += ["--perms", "0755", "--dir", folder]
    return args


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
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IsolationUnavailable(f"bubblewrap failed to run: {exc}") from exc
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
    python: str = sys.executable
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
    _groups: dict[int, Cgroup] = field(default_factory=dict, repr=False)

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
        argv = self.argv(workdir, script, sockets, limits.memory_bytes)
        passed: tuple[int, ...] = ()
        if self.isolated and self.seccomp is not None:
            passed = (seccomp.descriptor(self.seccomp),)
            argv[1:1] = ["--seccomp", str(passed[0])]
        try:
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

    def argv(self, workdir: Path, script: Path, sockets: tuple[int, int], memory_bytes: int | None) -> list[str]:
        kernel = [self.python, str(script), *map(str, sockets)]
        if not self.isolated:
            return kernel
        bwrap = shutil.which("bwrap") or "bwrap"
        argv = [bwrap]
        # Only what Python needs, read-only: the system's programs, libraries and /etc, and the interpreter's own
        # prefixes (which may live in a home or a project folder that is otherwise not there at all).
        for path in _SYSTEM_PATHS:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        argv += ["--dev", "/dev", "--proc", "/proc"]
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
        made: set[str] = set()
        for prefix in dict.fromkeys([sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(self.python))]):
            argv += [*_parents(prefix, made), "--ro-bind", prefix, prefix]
        # Only this kernel's own runtime folder (its script), read-only: it is on the host's disk, outside the
        # container's quota, and removed by the server when the kernel ends.
        own = str(script.parent)
        argv += [*_parents(own, made), "--ro-bind", own, own]
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
        bindir = os.path.dirname(self.python)
        return {
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
