"""Where a container's files may land on the host, and how they are written there.

A file's name in a container is chosen by the code that ran there, so it is untrusted input: a pull of `*` into
the home folder must not leave `.ipython/profile_default/startup/00-x.py` (run at the next IPython start), replace
the user's notebook, or follow a link out of the folder. Every path cellbox writes a container's file to is made
here, from the remote name's components, each one checked:

- a component is a plain name: not empty, `.` or `..`, no NUL, control character or backslash, not longer than
  a file name may be; on Windows no drive or stream (`:`), no character Windows refuses and no reserved device
  name (`CON`, `nul.txt`, `COM1` …);
- a hidden name (any component starting with ".") is written only when asked (`hidden=True`, `--hidden`);
- a file Python would load as code in place of a module is written only when asked (`modules=True`,
  `--modules`): at the top of the folder a `NAME.py`, `.pyc`, `.pyd` or `NAME*.so`, or a folder `NAME/` holding
  such files, where NAME is importable here or loaded by Python itself (`sitecustomize`); a `.pth` anywhere;
  bytecode in a `__pycache__`. The folder a notebook runs in is first on its kernel's `sys.path`, so a pulled
  `pandas.py` would run at the next `import pandas`. Other `.py` files (`helpers.py`) are written as any file;
- an existing file is replaced only when asked (`force=True`, `--force`); a folder never is;
- the folders on the way are opened one at a time without following links; a link already there is followed
  only when it leads to a folder inside the target;
- the bytes go to a new temporary file in the final folder, which is then linked to its name (refused when the
  name exists by then: nothing planted meanwhile is followed or replaced) or, when forced, renamed over it.

`Landing` is one pull into one folder: what it wrote, and what it skipped (`Skipped`, said in one line). Only
`cellbox.api` is imported, so the session layer and the Jupyter server extension use the same rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib.machinery
import importlib.util
import os
import secrets
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

from ..api import CellboxError, Client

__all__ = [
    "Landing",
    "Pulled",
    "Refused",
    "Skipped",
    "copy_into",
    "create",
    "is_hidden",
    "name_parts",
    "parts_under",
    "shadows",
]

WINDOWS = os.name == "nt"
NAME_MAX = 255  # bytes in one component: what Linux, macOS and Windows filesystems allow
WINDOWS_REFUSED = set('<>:"|?*')
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
WINDOWS_RESERVED |= {f"{port}{n}" for port in ("COM", "LPT") for n in [*"123456789", "\u00b9", "\u00b2", "\u00b3"]}
SHOWN = 3  # names a skip line lists before "…"
HIDDEN_HINT = ("--hidden / hidden=True brings it", "--hidden / hidden=True brings them")
FORCE_HINT = ("--force / force=True replaces it", "--force / force=True replaces them")
MODULES_HINT = ("--modules / modules=True brings it", "--modules / modules=True brings them")
_DIR_FDS = {os.open, os.mkdir, os.link, os.rename, os.unlink, os.stat} <= os.supports_dir_fd
_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

Kind = Literal["hidden", "module", "existing", "unsafe"]


class Refused(CellboxError):
    """A container's file that is not written where it was headed: `kind` says why (a hidden name, code that would
    shadow a Python module, an existing file, or a name or place that is not safe), `name` is the remote name and
    `reason` the words for it."""

    def __init__(self, kind: Kind, name: str, reason: str) -> None:
        self.kind, self.name, self.reason = kind, name, reason
        super().__init__(f"{shown(name)}: {reason}")


# --- names ------------------------------------------------------------------------------------------------------


def name_parts(name: str, *, windows: bool = WINDOWS) -> tuple[str, ...]:
    """The components of a relative `/`-separated name, each checked to be a plain file name; `Refused` (unsafe)
    says which rule one breaks."""
    if not isinstance(name, str) or not name:
        raise Refused("unsafe", str(name), "an empty name")
    if name.startswith("/"):
        raise Refused("unsafe", name, "an absolute path")
    parts = tuple(name.split("/"))
    for part in parts:
        problem = _part_problem(part, windows)
        if problem is not None:
            raise Refused("unsafe", name, problem)
    return parts


def _part_problem(part: str, windows: bool) -> str | None:
    if part == "":
        return "an empty folder name"
    if part in (".", ".."):
        return "a '.' or '..' in its path"
    if "\0" in part:
        return "a NUL character"
    if "\\" in part:
        return "a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in part):
        return "a control character"
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid text"
    if size > NAME_MAX:
        return f"a name longer than {NAME_MAX} bytes"
    if windows:
        if ":" in part:
            return "a drive or stream (':')"
        if WINDOWS_REFUSED & set(part):
            return "a character Windows refuses"
        if part.endswith((".", " ")):
            return "a name ending in a dot or space"
        if part.split(".")[0].rstrip(" ").upper() in WINDOWS_RESERVED:
            return "a device name Windows reserves"
    return None


def parts_under(path: str, base: str, *, windows: bool = WINDOWS) -> tuple[str, ...]:
    """The checked components of container path `path` below folder `base` (`/mnt/data`): where it lands in a
    local folder. A path outside `base` is refused: only the data folder's layout is copied."""
    prefix = base.rstrip("/") + "/"
    if not path.startswith(prefix):
        raise Refused("unsafe", path, f"not under {base}")
    return name_parts(path[len(prefix) :], windows=windows)


def is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") for part in parts)


# Code Python loads for a module: sources, bytecode and extensions (`NAME.cpython-311-x86_64-linux-gnu.so`, any
# `NAME*.so` or `NAME*.pyd`); compared in lower case, as Windows' import compares suffixes.
CODE_SUFFIXES = {".py", ".pyw", ".pyc", ".pyd", ".so", *(s.lower() for s in importlib.machinery.all_suffixes())}
STARTUP_MODULES = {"sitecustomize", "usercustomize"}  # imported by Python itself at start-up, when found
_CASELESS = sys.platform.startswith(("win", "cygwin", "darwin"))  # file systems that may match `Pandas.py`


def _is_code(part: str) -> bool:
    stem, dot, rest = part.partition(".")
    suffix = "." + rest.lower()
    return bool(stem and dot) and (suffix in CODE_SUFFIXES or suffix.endswith((".so", ".pyd")))


def shadows(parts: Sequence[str], folder: str | os.PathLike[str] | None = None) -> str | None:
    """Why a file at `parts` below `folder` is code Python would load, or None when it is not: a module or
    package at the top of the folder named like a module importable in this interpreter (or one Python imports by
    itself), a `.pth` file anywhere (site runs its `import` lines at start-up), bytecode in a `__pycache__`. A
    module found at the top of `folder` itself is that folder's own (what a forced pull replaces), not shadowed."""
    parts = tuple(parts)
    last = parts[-1] if parts else ""
    if last.lower().endswith(".pth"):
        return "a .pth file, whose import lines Python runs at start-up"
    if len(parts) > 1 and parts[-2] == "__pycache__" and last.lower().endswith(".pyc"):
        return "bytecode Python would run in place of a module's source"
    if not _is_code(last):
        return None
    name = parts[0] if len(parts) > 1 else last.partition(".")[0]  # a package folder, or the module's own name
    if "." in name:  # not a module name; a dotted one would have find_spec import its parent
        return None
    if _importable(name, folder) or (_CASELESS and name.lower() != name and _importable(name.lower(), folder)):
        return f"would shadow the Python module {name!r}"
    return None


def _importable(name: str, folder: str | os.PathLike[str] | None) -> bool:
    """Whether `import name` finds something now, elsewhere than in `folder` (or is one Python imports itself)."""
    known = STARTUP_MODULES | set(sys.stdlib_module_names)
    if name in known or (_CASELESS and name.lower() in {n.lower() for n in known}):
        return True
    try:
        spec = importlib.util.find_spec(name)  # a top-level name: found, never imported
    except (ImportError, ValueError):  # in sys.modules without a spec, or a finder that fails: taken as found
        return True
    if spec is None:
        return False
    if folder is None:
        return True
    if spec.submodule_search_locations is not None:  # a package: its folders
        places = list(spec.submodule_search_locations)
    else:
        places = [spec.origin] if spec.has_location and spec.origin else []
    root = os.path.realpath(folder)
    return not places or any(os.path.dirname(os.path.realpath(place)) != root for place in places)


def shown(name: str, limit: int = 60) -> str:
    """A container's name as it may be printed: control characters escaped, long names cut."""
    if not name:
        return "''"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- writing ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def create(
    folder: str | os.PathLike[str],
    parts: Sequence[str],
    *,
    hidden: bool = False,
    force: bool = False,
    modules: bool = False,
    windows: bool = WINDOWS,
) -> Iterator[BinaryIO]:
    """`with create(folder, parts) as out: out.write(...)`: a new file at `folder`/`parts` (folders on the way
    made), appearing only once the block ends without error. `Refused` before anything is written when a part is
    unsafe or hidden (unless `hidden`), the file would shadow a Python module (unless `modules`, see `shadows`),
    the file exists (unless `force`) or the path leaves `folder`; also at the end when a file of that name
    appeared meanwhile. `folder` is the caller's and is made when missing."""
    parts = tuple(parts)
    name = "/".join(parts)
    name_parts(name, windows=windows)
    if is_hidden(parts) and not hidden:
        raise Refused("hidden", name, "hidden")
    if not modules and (why := shadows(parts, folder)) is not None:
        raise Refused("module", name, why)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(root)
    with _Folder.open(real) as place:
        for part in parts[:-1]:
            place = place.enter(part, name)
        with place:
            yield from place.write(parts[-1], name, force)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Folder:
    """An open folder below the target: by descriptor where the OS allows it (nothing swapped in later is
    followed), by path elsewhere."""

    def __init__(self, path: str, root: str, fd: int | None) -> None:
        self.path, self.root, self.fd = path, root, fd

    @classmethod
    def open(cls, root: str) -> _Folder:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _FLAGS) if _DIR_FDS else None
        return cls(root, root, fd)

    def __enter__(self) -> _Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _where(self, part: str) -> str:
        return part if self.fd is not None else os.path.join(self.path, part)

    def lstat(self, part: str) -> os.stat_result | None:
        try:
            return os.stat(self._where(part), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def enter(self, part: str, name: str) -> _Folder:
        """The subfolder `part`, made when missing; this folder is closed."""
        with self:
            path = os.path.join(self.path, part)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self._where(part), dir_fd=self.fd)
            if self.fd is not None:
                try:
                    fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _FLAGS, dir_fd=self.fd)
                    return _Folder(path, self.root, fd)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.EMLINK):
                        raise
            found = self.lstat(part)
            if found is not None and stat.S_ISLNK(found.st_mode):
                target = os.path.realpath(path)
                if not _inside(target, self.root):
                    raise Refused("unsafe", name, f"{shown(part)} is a link leading out of the folder")
                if os.path.isdir(target):
                    return _Folder.open_inside(target, self.root)
            if found is None or not stat.S_ISDIR(found.st_mode):
                raise Refused("unsafe", name, f"{shown(part)} is a file here, not a folder")
            return _Folder(path, self.root, None)

    @classmethod
    def open_inside(cls, path: str, root: str) -> _Folder:
        """A folder a link inside the target leads to (checked just before), opened by its real path."""
        folder = cls.open(path)
        folder.root = root
        return folder

    def write(self, part: str, name: str, force: bool) -> Iterator[BinaryIO]:
        found = self.lstat(part)
        if found is not None:
            if stat.S_ISDIR(found.st_mode):
                raise Refused("unsafe", name, "a folder of that name is there")
            if not force:
                raise Refused("existing", name, "exists")
        temp = f".cellbox-{secrets.token_hex(8)}.part"
        fd = os.open(
            self._where(temp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _FLAGS, 0o666, dir_fd=self.fd
        )
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            if force:
                os.replace(self._where(temp), self._where(part), src_dir_fd=self.fd, dst_dir_fd=self.fd)
            else:
                self._link(temp, part, name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._where(temp), dir_fd=self.fd)

    def _link(self, temp: str, part: str, name: str) -> None:
        """The new file under its name, only if nothing has that name by now."""
        try:
            os.link(self._where(temp), self._where(part), src_dir_fd=self.fd, dst_dir_fd=self.fd)
            return
        except FileExistsError:
            raise Refused("existing", name, "exists") from None
        except OSError as exc:  # a filesystem without hard links: copied into a file made exclusively
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
        try:
            fd = os.open(
                self._where(part), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _FLAGS, 0o666, dir_fd=self.fd
            )
        except FileExistsError:
            raise Refused("existing", name, "exists") from None
        try:
            source = os.open(self._where(temp), os.O_RDONLY | _FLAGS, dir_fd=self.fd)
            with os.fdopen(fd, "wb") as out, os.fdopen(source, "rb") as inp:
                while chunk := inp.read(1 << 20):
                    out.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self._where(part), dir_fd=self.fd)
            raise


def copy_into(
    client: Client, container_id: str, file_id: str, out: BinaryIO, report: Callable[[int], object] | None = None
) -> None:
    """A container file's bytes streamed into `out` (a file `create` opened); `report` hears each chunk's size."""
    with client.containers.files.stream(container_id, file_id) as body:
        for chunk in body:
            out.write(chunk)
            if report is not None:
                report(len(chunk))


# --- one pull ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Skipped:
    """The files a pull left out, by remote name: hidden ones, existing ones, unsafe ones with the reason, and
    ones that would shadow a Python module."""

    hidden: list[str] = dataclasses.field(default_factory=list)
    existing: list[str] = dataclasses.field(default_factory=list)
    unsafe: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    modules: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.hidden or self.existing or self.unsafe or self.modules)

    def __add__(self, other: Skipped) -> Skipped:
        return Skipped(
            self.hidden + other.hidden,
            self.existing + other.existing,
            self.unsafe + other.unsafe,
            self.modules + other.modules,
        )

    def add(self, refused: Refused) -> None:
        if refused.kind == "hidden":
            self.hidden.append(refused.name)
        elif refused.kind == "module":
            self.modules.append(refused.name)
        elif refused.kind == "existing":
            self.existing.append(refused.name)
        else:
            self.unsafe.append((refused.name, refused.reason))

    @property
    def note(self) -> str | None:
        """One line saying what was skipped and what would bring it (None when nothing was)."""
        said = []
        if self.hidden:
            hidden = _listed(_hidden_label(name) for name in sorted(self.hidden))
            hint = HIDDEN_HINT[len(self.hidden) > 1]
            said.append(f"{_count(len(self.hidden), 'hidden file')} ({hidden}; {hint})")
        if self.modules:
            modules = _listed(_module_label(name) for name in sorted(self.modules))
            hint = MODULES_HINT[len(self.modules) > 1]
            what = (
                "files that would shadow Python modules"
                if len(self.modules) > 1
                else "file that would shadow a Python module"
            )
            said.append(f"{len(self.modules)} {what} ({modules}; {hint})")
        if self.existing:
            existing = _listed(sorted(self.existing))
            hint = FORCE_HINT[len(self.existing) > 1]
            said.append(f"{_count(len(self.existing), 'existing file')} ({existing}; {hint})")
        if self.unsafe:
            unsafe = sorted(self.unsafe)
            reasons = "; ".join(f"{shown(name)}: {reason}" for name, reason in unsafe[:SHOWN])
            more = "; …" if len(unsafe) > SHOWN else ""
            what = "file with an unsafe path" if len(unsafe) == 1 else "files with unsafe paths"
            said.append(f"{len(unsafe)} {what} ({reasons}{more})")
        if not said:
            return None
        return "skipped " + (said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1])


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _listed(names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(names))
    return ", ".join(shown(name) for name in unique[:SHOWN]) + (", …" if len(unique) > SHOWN else "")


def _hidden_label(name: str) -> str:
    """A hidden file as the skip line names it: up to its first hidden component (`.ipython/…`)."""
    parts = name.split("/")
    first = next(i for i, part in enumerate(parts) if part.startswith("."))
    return "/".join(parts[: first + 1]) + ("/…" if first < len(parts) - 1 else "")


def _module_label(name: str) -> str:
    """A file that would shadow a module as the skip line names it: a package by its folder (`pandas/…`)."""
    first, slash, _ = name.partition("/")
    if not slash or name.lower().endswith(".pth") or "__pycache__/" in name:
        return name
    return first + "/…"


class Pulled(list[Path]):
    """The local files a pull wrote, in order (a list of paths), with what it skipped and the line saying so."""

    def __init__(self, paths: Iterable[Path] = (), skipped: Skipped | None = None) -> None:
        super().__init__(paths)
        self.skipped = skipped if skipped is not None else Skipped()

    @property
    def note(self) -> str | None:
        return self.skipped.note


class Landing:
    """One pull into `folder`: each remote name checked (`check`), then written (`save`); what was skipped is
    kept in `skipped`. `hidden`, `force` and `modules` as for `create`. Safe to use from several threads at once."""

    def __init__(
        self, folder: str | os.PathLike[str], *, hidden: bool = False, force: bool = False, modules: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.hidden = hidden
        self.force = force
        self.modules = modules
        self.skipped = Skipped()
        self._lock = threading.Lock()

    def check(self, name: str, parts: Callable[[str], tuple[str, ...]] = name_parts) -> tuple[str, ...] | None:
        """The local components for remote `name` (made by `parts`), or None when it is skipped; an existing file
        is looked for here too, so nothing is downloaded for it."""
        try:
            made = parts(name)
            if is_hidden(made) and not self.hidden:
                raise Refused("hidden", "/".join(made), "hidden")
            if not self.modules and (why := shadows(made, self.folder)) is not None:
                raise Refused("module", "/".join(made), why)
            if not self.force and _exists(self.folder, made):
                raise Refused("existing", "/".join(made), "exists")
            return made
        except Refused as refused:
            self._skip(refused)
            return None

    def save(self, parts: Sequence[str], fill: Callable[[BinaryIO], object]) -> Path | None:
        """Write one file: `fill` writes its bytes into the open file. Its local path, or None when it was
        refused (and said in `skipped`)."""
        try:
            with create(self.folder, parts, hidden=self.hidden, force=self.force, modules=self.modules) as out:
                fill(out)
        except Refused as refused:
            self._skip(refused)
            return None
        return self.folder.joinpath(*parts)

    def _skip(self, refused: Refused) -> None:
        with self._lock:
            self.skipped.add(refused)


def _exists(folder: Path, parts: Sequence[str]) -> bool:
    """Whether something already has this name (a dangling link counts). A link on the way answers no: where it
    leads is for `create` to judge."""
    try:
        for depth in range(1, len(parts)):
            if stat.S_ISLNK(os.lstat(folder.joinpath(*parts[:depth])).st_mode):
                return False
        os.lstat(folder.joinpath(*parts))
    except OSError:
        return False
    return True
