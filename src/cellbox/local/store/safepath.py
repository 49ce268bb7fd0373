"""Paths inside a container's /mnt/data that cannot escape it.

Code in a container can plant symlinks in /mnt/data that point anywhere on the host once the server follows
them, so every server-side access walks the path one directory at a time with `O_NOFOLLOW` from a descriptor
of the container's root. That leaves no window between checking a path and using it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024
# Bounds of a scan of /mnt/data, whatever the code left there: deeper folders are not entered, and entries past
# the cap are not listed.
MAX_SCAN_DEPTH = 64
MAX_SCAN_ENTRIES = 200_000
MOUNT = "/mnt/data"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    """A name that would leave /mnt/data or that no filesystem can hold."""


class NotARegularFile(OSError):
    """A FIFO, device, socket or folder where a file's bytes were expected: never read."""


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


def open_parent(root: str, parts: list[str], *, create: bool, owner: tuple[int, int] | None = None) -> int:
    """A descriptor of the directory that holds `parts[-1]`, never following a symlink on the way; folders it
    creates are given to `owner` (uid, gid) if one is named."""
    fd = open_root(root)
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                    if owner is not None:
                        os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
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
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, freezing whoever called.
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
    finally:
        os.close(parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(parts[-1])
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlink(root: str, parts: list[str]) -> None:
    parent = open_parent(root, parts, create=False)
    try:
        os.unlink(parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


def walk_files(root: str, *, nameable: bool = True, under: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, stat) of every regular file under root that a client could name.

    Iterative, with one open descriptor per level of the current path only, so no folder chain can exhaust the
    stack or the descriptors: folders deeper than MAX_SCAN_DEPTH are not entered, paths longer than
    MAX_PATH_BYTES are not listed, and the walk stops after MAX_SCAN_ENTRIES entries. Symlinks are neither
    followed nor listed; a folder swapped for a symlink mid-walk is not entered (each is opened with
    O_NOFOLLOW from its parent's descriptor); anything vanishing or unreadable mid-walk is skipped. With
    `nameable=False` files no client could name are yielded too (to count what they take). With `under`, only
    that folder (relative to root, reached without following symlinks) is walked; paths stay relative to root.
    """
    try:
        top = open_parent(root, [*under.split("/"), "."], create=False) if under else open_root(root)
    except OSError:
        return
    # Each level: its descriptor, its path relative to root, and the iterator over its entries.
    stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = []
    seen = 0
    try:
        stack.append((top, under, _entries(top)))
        while stack:
            fd, rel, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                os.close(fd)
                continue
            seen += 1
            if seen > MAX_SCAN_ENTRIES:
                return
            path = f"{rel}/{entry.name}" if rel else entry.name
            if nameable and (len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES or not _is_utf8(path)):
                continue  # no client can name it: a name that is not UTF-8 cannot travel in JSON
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield path, st
            elif stat.S_ISDIR(st.st_mode) and len(stack) < MAX_SCAN_DEPTH:
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                stack.append((child, path, _entries(child)))
    finally:
        for fd, _rel, _entries_left in stack:
            os.close(fd)


def _entries(fd: int) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(fd) as it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    return
                except OSError:
                    return
                yield entry
    except OSError:
        return


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Removes a file or a folder tree of any depth, whatever code in a container left in it.

    `shutil.rmtree` recurses (a chain of a few thousand folders ends in RecursionError, and paths longer than
    PATH_MAX fail), so folders are removed by flattening: every sub-folder found is renamed up into the top folder
    and emptied there in turn. That needs three descriptors at most and no path longer than two components.
    """
    parent_path, name = os.path.split(os.fspath(path).rstrip("/"))
    try:
        parent = os.open(parent_path or ".", _DIR_FLAGS)
    except OSError:
        return
    try:
        _remove_at(parent, name)
    finally:
        os.close(parent)


def _remove_at(parent: int, name: str) -> None:
    kind = _kind(parent, name)
    if kind == "other":
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=parent)
    elif kind == "dir":
        try:
            top = _open_writable_dir(parent, name)
        except OSError:
            return
        try:
            _flatten_and_empty(top)
        finally:
            os.close(top)
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=parent)


def _flatten_and_empty(top: int) -> None:
    left: list[str] = []
    while True:
        names = sorted(_names(top))
        if not names or names == left:  # empty, or what is left can't be removed: stop rather than spin
            return
        left = names
        for name in names:
            kind = _kind(top, name)
            if kind == "dir":
                _lift_children(top, name)  # no recursion: what was below is now beside it, in `top`
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=top)
            elif kind == "other":
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=top)


def _lift_children(top: int, name: str) -> None:
    """Moves the sub-folders of `top/name` up into `top` and removes its other entries."""
    try:
        sub = _open_writable_dir(top, name)
    except OSError:
        return
    try:
        for child in _names(sub):
            if _kind(sub, child) == "dir":
                with contextlib.suppress(OSError):
                    os.rename(child, f".rm-{secrets.token_hex(8)}", src_dir_fd=sub, dst_dir_fd=top)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(child, dir_fd=sub)
    finally:
        os.close(sub)


def _kind(dir_fd: int, name: str) -> str | None:
    """ "dir", "other", or None when nothing is there any more."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "other"


def _names(fd: int) -> list[str]:
    try:
        return os.listdir(fd)
    except OSError:
        return []


def open_folder(parent: int, name: str) -> int:
    """A descriptor of the folder `name` in `parent` (never a symlink). One the code made unreadable (it can only
    where it runs as the server's own user) is made readable to its owner again: nothing in /mnt/data may hide
    from a measure of what it takes."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except PermissionError:
        return _open_writable_dir(parent, name)


def _open_writable_dir(parent: int, name: str) -> int:
    """A descriptor of the folder `name` (never a symlink), made readable and writable by us if the code in the
    container took those permissions away."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except PermissionError:
        fd = None
    if fd is None or not os.access(f"/proc/self/fd/{fd}", os.R_OK | os.W_OK | os.X_OK):
        # chmod through an O_PATH descriptor: a path-based chmod could follow a symlink swapped in meanwhile.
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.chmod(f"/proc/self/fd/{handle}", 0o700)
        finally:
            os.close(handle)
        if fd is None:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    return fd


def is_nameable(path: str) -> bool:
    """Whether a client could name this path (UTF-8, not too long, not too deep): only such files are listed."""
    return (
        len(path.encode("utf-8", "surrogateescape")) <= MAX_PATH_BYTES
        and path.count("/") < MAX_SCAN_DEPTH
        and _is_utf8(path)
    )


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
