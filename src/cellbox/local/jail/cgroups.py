"""Per-container limits the Linux kernel enforces: memory (children and tmpfs pages included), processes, CPU.

Each kernel gets a control group of its own inside a subtree that belongs to this server, so nothing outside it
is touched: `<the server's own cgroup>/cellbox-<server pid>/<kernel>`. Both hierarchies are supported:

- cgroup v2 (one unified tree): the server's own cgroup must have the controllers delegated to it (listed in its
  `cgroup.subtree_control`, as systemd's `Delegate=yes` does); `memory.max`, `memory.swap.max`, `pids.max`,
  `cpu.max`; a kernel's processes are ended together through `cgroup.kill`.
- cgroup v1 (a tree per controller, as on this project's CI machines): `memory.limit_in_bytes` (and
  `memory.memsw.limit_in_bytes`, so swap is no way around it), `pids.max`, `cpu.cfs_quota_us`.

Where a controller is missing or not writable, `CgroupTree.detect` says which limit is not enforced, and the
server prints that at start. A process joins its group in the child before exec, so everything it starts is
counted from the first instruction.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int | None = None
    pids: int | None = None
    cpus: float | None = None  # CPU time per wall second, in CPUs (1.5 = one and a half cores)


@dataclass
class Cgroup:
    """One kernel's group: a folder per hierarchy (one on v2, one per controller on v1)."""

    folders: list[Path]
    version: int
    _oom: int | None = field(default=None, repr=False)  # the open file that counts memory kills, read at offset 0

    def join(self) -> None:
        """Moves the calling process into the group; meant for the child, between fork and exec."""
        pid = str(os.getpid())
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(pid)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
        return found

    def oom_kills(self) -> int:
        """How many processes of the group the memory limit has killed so far (read before and after each run:
        the file is kept open)."""
        if self._oom is None:
            name = "memory.events" if self.version == 2 else "memory.oom_control"
            for folder in self.folders:
                with contextlib.suppress(OSError):
                    self._oom = os.open(folder / name, os.O_RDONLY | os.O_CLOEXEC)
                    break
            else:
                return 0
        with contextlib.suppress(OSError, ValueError):
            for line in os.pread(self._oom, 4096, 0).decode().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def memory_peak(self) -> int | None:
        """The most memory the group has used at once since it was made, in bytes (None where not counted)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                return int((folder / name).read_text())
        return None

    def remove(self) -> None:
        """Ends whatever is still running in the group and removes it: at once when it is already empty, else
        from a thread once the killed processes are gone (the caller may be the server's event loop)."""
        if self._oom is not None:
            os.close(self._oom)
            self._oom = None
        if not self._try_remove():
            threading.Thread(target=self._remove_when_empty, daemon=True).start()

    def _try_remove(self) -> bool:
        if self.version == 2 and self.folders:
            with contextlib.suppress(OSError):
                (self.folders[0] / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for folder in self.folders:
            with contextlib.suppress(FileNotFoundError):
                try:
                    folder.rmdir()
                except OSError:  # EBUSY: processes still dying
                    return False
        return True

    def _remove_when_empty(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._try_remove() and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class CgroupTree:
    """This server's subtree, where kernels' groups are made."""

    version: int
    # controller -> this server's folder for it (v2: every controller shares one folder)
    bases: dict[str, Path]
    not_enforced: list[str] = field(default_factory=list)

    @classmethod
    def detect(cls, root: Path = ROOT, proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> CgroupTree:
        """The subtree for this server, made now; what can't be enforced is listed in `not_enforced`."""
        try:
            memberships = _memberships(proc_self_cgroup.read_text())
        except OSError:
            return cls(0, {}, ["memory, processes and CPU (no /proc/self/cgroup)"])
        if (root / "cgroup.controllers").is_file():
            return cls._v2(root, memberships.get("", "/"))
        return cls._v1(root, memberships)

    @classmethod
    def _v2(cls, root: Path, own: str) -> CgroupTree:
        parent = root / own.lstrip("/")
        try:
            delegated = set((parent / "cgroup.subtree_control").read_text().split())
        except OSError:
            delegated = set()
        wanted = ["memory", "pids", "cpu"]
        usable = [c for c in wanted if c in delegated]
        base = parent / f"cellbox-{os.getpid()}"
        try:
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in usable))
        except OSError:
            return cls(2, {}, [_NAMES[c] for c in wanted])
        missing = [_NAMES[c] for c in wanted if c not in usable]
        return cls(2, dict.fromkeys(usable, base), missing)

    @classmethod
    def _v1(cls, root: Path, memberships: dict[str, str]) -> CgroupTree:
        bases: dict[str, Path] = {}
        missing: list[str] = []
        for controller in ("memory", "pids", "cpu"):
            own = memberships.get(controller)
            hierarchy = root / controller
            if own is None or not hierarchy.is_dir():
                missing.append(_NAMES[controller])
                continue
            base = hierarchy / own.lstrip("/") / f"cellbox-{os.getpid()}"
            try:
                base.mkdir(exist_ok=True)
            except OSError:
                missing.append(_NAMES[controller])
                continue
            bases[controller] = base
        return cls(1, bases, missing)

    def create(self, limits: CgroupLimits) -> Cgroup | None:
        """A new group with these limits, or None when no controller is usable here."""
        if not self.bases:
            return None
        name = f"k-{secrets.token_hex(6)}"
        folders: dict[Path, Path] = {}
        for base in self.bases.values():
            if base not in folders:
                folder = base / name
                folder.mkdir()
                folders[base] = folder
        group = Cgroup(list(folders.values()), self.version)
        try:
            self._limit(limits, name)
        except OSError:
            group.remove()
            raise
        return group

    def _limit(self, limits: CgroupLimits, name: str) -> None:
        def write(controller: str, file: str, value: str) -> None:
            base = self.bases.get(controller)
            if base is not None:
                (base / name / file).write_text(value)

        if limits.memory_bytes is not None:
            if self.version == 2:
                write("memory", "memory.max", str(limits.memory_bytes))
                with contextlib.suppress(OSError):  # no swap accounting on this host: nothing to close
                    write("memory", "memory.swap.max", "0")
            else:
                write("memory", "memory.limit_in_bytes", str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    write("memory", "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        if limits.pids is not None:
            write("pids", "pids.max", str(limits.pids))
        if limits.cpus is not None:
            quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
            if self.version == 2:
                write("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
                write("cpu", "cpu.cfs_quota_us", str(quota))

    def close(self, timeout: float = 5.0) -> None:
        """Removes this server's subtree (every kernel's group must be gone or is ended now). The groups are
        ended together and waited for once, not one after another: a server with many kernels stops at once."""
        bases = set(self.bases.values())
        left = [Cgroup([folder], self.version) for base in bases for folder in _children(base)]
        deadline = time.monotonic() + timeout
        while True:
            left = [group for group in left if not group._try_remove()]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for base in bases:
            with contextlib.suppress(OSError):
                base.rmdir()


def remove_stale(root: Path = ROOT, proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> None:
    """Subtrees of servers that were killed (kill -9 leaves no chance to clean up)."""
    try:
        memberships = _memberships(proc_self_cgroup.read_text())
    except OSError:
        return
    parents = (
        [root / memberships.get("", "/").lstrip("/")]
        if (root / "cgroup.controllers").is_file()
        else [root / c / memberships[c].lstrip("/") for c in ("memory", "pids", "cpu") if c in memberships]
    )
    for parent in parents:
        for base in _children(parent):
            pid = base.name.removeprefix("cellbox-")
            if base.name.startswith("cellbox-") and pid.isdigit() and not _alive(int(pid)):
                version = 2 if (root / "cgroup.controllers").is_file() else 1
                for folder in _children(base):
                    Cgroup([folder], version)._remove_when_empty(timeout=5.0)
                with contextlib.suppress(OSError):
                    base.rmdir()


_NAMES = {"memory": "memory (children and tmpfs included)", "pids": "processes", "cpu": "CPU"}


def _memberships(text: str) -> dict[str, str]:
    """controller -> path from /proc/self/cgroup ("" is the v2 tree)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _children(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
