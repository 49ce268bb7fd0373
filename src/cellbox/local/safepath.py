"""Paths inside a container's /mnt/data that cannot escape it.

Code in the sandbox can plant symlinks in /mnt/data that point anywhere on the host once the server follows
them, so every server-side access walks the path one directory at a time with `O_NOFOLLOW` from a descriptor
of the container's root. That leaves no window between checking a path and using it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024
MOUNT = "/mnt/data"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    """A name that would leave /mnt/data or that no filesystem can hold."""


def split_name(name: str) -> list[str]:
    """The components of a file name relative to /mnt/data; raises UnsafePath for anything that escapes.

    `/mnt/data/x` is accepted as `x` (clients echo the `path` field back); any other absolute path is not.
    """
    if not isinstance(name, str) or not name:
        raise UnsafePath("The file name is empty.")
    if "\x00" in name:
        raise UnsafePath("The file name contains a NUL character.")
    if any(ord(ch) < 32 for ch in name):
        raise UnsafePath("The file name contains a control character.")
    if name.startswith(MOUNT + "/"):
        name = name[len(MOUNT) + 1 :]
    if name.startswith("/"):
        raise UnsafePath("The file name must be relative to /mnt/data, not an absolute path.")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePath(f"The file name is longer than {MAX_PATH_BYTES} bytes.")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath("The file name must not contain empty, '.' or '..' components.")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise UnsafePath(f"A component of the file name is longer than {MAX_COMPONENT_BYTES} bytes.")
    return parts


def open_root(root: str) -> int:
    return os.open(root, _DIR_FLAGS)


def open_parent(root: str, parts: list[str], *, create: bool) -> int:
    """A descriptor of the directory that holds `parts[-1]`, never following a symlink on the way."""
    fd = open_root(root)
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise
    return fd


def open_file(root: str, parts: list[str]) -> int:
    """A read descriptor of a regular file under root (no symlinks anywhere on the path)."""
    parent = open_parent(root, parts, create=False)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(parts[-1])
    return fd


def unlink(root: str, parts: list[str]) -> None:
    parent = open_parent(root, parts, create=False)
    try:
        os.unlink(parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


def walk_files(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, stat) of every regular file under root; symlinks are neither followed nor listed.

    `os.fwalk` holds a descriptor of each directory, so a directory swapped for a symlink mid-walk is not
    entered.
    """
    for dirpath, _dirs, names, dirfd in os.fwalk(root, follow_symlinks=False):
        rel = os.path.relpath(dirpath, root)
        for name in names:
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            path = name if rel == "." else f"{rel}/{name}"
            # A name that is not UTF-8 cannot travel in JSON (nor be stored as text): it is not listed.
            if stat.S_ISREG(st.st_mode) and _is_utf8(path):
                yield path, st


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
