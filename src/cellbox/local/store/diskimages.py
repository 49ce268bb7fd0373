"""Each container's /mnt/data as a filesystem of its own: a sparse ext4 image the size of the disk limit,
loop-mounted at the container's folder, so the kernel refuses a write past the limit (ENOSPC) whoever writes,
whenever (a thread left behind after its cell, a process in the background) and however deep.

Layout in the data dir::

    disks/<name>.img       the image of containers/<name> (a container's id, or a warm kernel's `.pool-…`)
    disks/template.img     formatted once at start; each image is a sparse copy of it (~2 ms, where mkfs takes ~40)
    containers/<name>/     where its image is mounted (nosuid, nodev)

An image is mounted when its container is made (or ahead of it, with a warm kernel, and handed over by a bind
mount: a mount point can't be renamed), unmounted and removed when the container is deleted or expires, and
unmounted at shutdown (it stays, for the next start). At start, whatever a killed server left mounted under the
containers folder is unmounted, the images of running containers are checked (e2fsck -p) and mounted again, and
the others removed. Unmounting is lazy: a kernel still dying keeps its view until it is gone, and its loop device
is freed by the kernel then (autoclear).

Images are sparse: a container takes on the host disk what it holds, not its limit. It also means that when the
host disk itself runs out (another process filled it), writes the host has not stored yet can fail at
write-back; the server's reserve and its stopping of writers on a full disk (disk.py) are what keep that rare, and
uploads are synced before they are answered.

Needs root (mount) and loop devices; `start` says why not otherwise, and the server measures usage instead.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

from . import mounts

log = logging.getLogger("cellbox.local")

TEMPLATE = "template"
_MIB = 1 << 20
# mkfs.ext4 for a scratch disk: no reserved blocks, no journal (nothing to replay after a crash, and blocks freed
# are free at once, so an upload right after a delete finds the room), an inode per 4 KiB (many small files fit
# as on the host; the inode tables of a sparse image take no room until used), and lazily initialised tables
# (mounted with noinit_itable: the image's holes already read as zeros).
_MKFS = ["-q", "-F", "-m", "0", "-T", "default", "-i", "4096", "-O", "^has_journal,^resize_inode"]
_MKFS += ["-E", "lazy_itable_init=1,nodiscard"]
_MOUNT_OPTIONS = "loop,nosuid,nodev,noinit_itable"


class DiskImagesUnavailable(RuntimeError):
    """This host can't give containers filesystems of their own; the message says why."""


def slack(limit: int) -> int:
    """Room an image has beyond the limit: what a file of exactly the limit needs besides its data (its extent
    blocks, the root folder), so one file stops at the limit (EFBIG, as everywhere) rather than just short of it."""
    return max(_MIB, limit // 256)


class DiskImages:
    """The images of one data dir's containers, and their mounts."""

    def __init__(self, data_dir: Path, containers_dir: Path, limit: int) -> None:
        self.folder = data_dir / "disks"
        self.containers_dir = containers_dir
        self.limit = limit
        self.making = False  # whether new containers get an image (start() succeeded)
        self._mounted: set[str] = set()  # names whose image is mounted at containers/<name>
        self._lock = threading.Lock()

    # -- start and stop ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Makes the template new containers' images are copied from; DiskImagesUnavailable when this host can't
        mount them (new containers' usage is then measured, disk.py)."""
        if os.geteuid() != 0:
            raise DiskImagesUnavailable("mounting a filesystem per container needs the server to run as root")
        for tool in ("mkfs.ext4", "mount"):
            if shutil.which(tool) is None:
                raise DiskImagesUnavailable(f"{tool} is not installed (e2fsprogs, util-linux)")
        if not os.path.exists("/dev/loop-control"):
            raise DiskImagesUnavailable("this host has no loop devices (/dev/loop-control)")
        self.folder.mkdir(mode=0o700, exist_ok=True)
        for point in mounts.mounts_under(self.folder):  # a test mount of a server killed while starting
            with contextlib.suppress(OSError):
                self._unmount(Path(point))
        want = self.limit + slack(self.limit)
        size = want + want // 12 + 4 * _MIB  # ext4's own tables: about 7% at an inode per 4 KiB
        try:
            # The room files get is what is left of the size once ext4 has its tables: a few tries make it the
            # limit and its slack, not much more.
            for _ in range(6):
                size = -(-size // 4096) * 4096
                capacity = self._make_template(size)
                if want <= capacity <= want + slack(self.limit):
                    break
                size = size * want // max(capacity, 1) + (4096 if capacity < want else 0)
            else:
                raise DiskImagesUnavailable(f"no image size gives {want} bytes of room (the last: {capacity})")
        except OSError as exc:
            self._image(TEMPLATE).unlink(missing_ok=True)
            raise DiskImagesUnavailable(f"a test image could not be made and mounted: {_said(exc)}") from exc
        self.making = True

    def _make_template(self, size: int) -> int:
        """Formats the template at `size` bytes; returns the bytes files can take in it."""
        image = self._image(TEMPLATE)
        image.unlink(missing_ok=True)
        with open(image, "wb") as f:
            f.truncate(size)
        _run(["mkfs.ext4", *_MKFS, str(image)])
        probe = self.folder / ".probe"
        probe.mkdir(exist_ok=True)
        _run(["mount", "-t", "ext4", "-o", _MOUNT_OPTIONS, str(image), str(probe)])
        try:
            os.rmdir(probe / "lost+found")  # a container's /mnt/data starts empty
            found = os.statvfs(probe)
        finally:
            self._unmount(probe, detach=False)
            probe.rmdir()
        return found.f_blocks * found.f_frsize

    def recover(self, running: set[str]) -> None:
        """At start: unmounts what a killed server left mounted, mounts the images of running containers again
        and removes the others."""
        self.unmount_stale()
        if not self.folder.is_dir():
            return
        for image in self.folder.glob("*.img"):
            name = image.name.removesuffix(".img")
            if name == TEMPLATE:
                continue
            if name not in running:
                image.unlink(missing_ok=True)
                continue
            folder = self.containers_dir / name
            try:
                folder.mkdir(exist_ok=True)
                self._check(image)
                self._mount(image, folder)
            except (OSError, subprocess.SubprocessError) as exc:
                log.error("container %s: its disk image could not be mounted (%s); its files are kept in %s", name,
                          _said(exc), image)  # fmt: skip

    def unmount_stale(self) -> None:
        """Unmounts everything mounted under the containers folder (left by a server that was killed)."""
        for point in sorted(mounts.mounts_under(self.containers_dir), key=len, reverse=True):
            with contextlib.suppress(OSError):
                self._unmount(Path(point))
        self._mounted.clear()

    def close(self) -> None:
        """At shutdown: every image unmounted (they stay, for the next start; the template is made anew)."""
        with self._lock:
            names = list(self._mounted)
        for name in names:
            with contextlib.suppress(OSError):
                self._unmount(self.containers_dir / name)
            self._mounted.discard(name)
        self._image(TEMPLATE).unlink(missing_ok=True)

    # -- one container's ---------------------------------------------------------------------------------

    def owns(self, folder: Path) -> bool:
        """Whether `folder` is a container's folder with its image mounted there."""
        return folder.parent == self.containers_dir and folder.name in self._mounted

    def make(self, folder: Path) -> None:
        """A new image mounted at `folder` (made here); OSError when it can't be (the folder is then not made)."""
        image = self._image(folder.name)
        _sparse_copy(self._image(TEMPLATE), image)
        try:
            folder.mkdir()
            try:
                self._mount(image, folder)
            except BaseException:
                folder.rmdir()
                raise
        except BaseException:
            image.unlink(missing_ok=True)
            raise

    def hand_over(self, old: Path, new: Path) -> None:
        """The image mounted at `old` (a warm kernel's) becomes `new`'s: bound there, then unmounted from `old`
        (the kernel's jail keeps its own mount of it)."""
        os.rename(self._image(old.name), self._image(new.name))
        new.mkdir()
        mounts.mount(old, new, None, mounts.MS_BIND, None)
        with self._lock:
            self._mounted.add(new.name)
        self._unmount(old)
        old.rmdir()

    def release(self, folder: Path) -> None:
        """Unmounts `folder`'s image and removes it and the folder."""
        with contextlib.suppress(OSError):
            self._unmount(folder)
        with contextlib.suppress(OSError):
            folder.rmdir()
        self._image(folder.name).unlink(missing_ok=True)

    # -- helpers -----------------------------------------------------------------------------------------

    def _image(self, name: str) -> Path:
        return self.folder / f"{name}.img"

    def _mount(self, image: Path, folder: Path) -> None:
        _run(["mount", "-t", "ext4", "-o", _MOUNT_OPTIONS, str(image), str(folder)])
        with self._lock:
            self._mounted.add(folder.name)

    def _unmount(self, folder: Path, detach: bool = True) -> None:
        with self._lock:
            if folder.parent == self.containers_dir:
                self._mounted.discard(folder.name)
        mounts.unmount(folder, detach)

    def _check(self, image: Path) -> None:
        """e2fsck -p on an image about to be mounted again: one the host stopped with mounted (a crash) may need
        it; a clean one is looked at in a moment."""
        if shutil.which("e2fsck") is None:
            return
        done = subprocess.run(["e2fsck", "-p", str(image)], capture_output=True, text=True, timeout=600)
        if done.returncode >= 4:
            log.warning("e2fsck could not repair %s: %s", image, (done.stdout + done.stderr).strip()[-500:])


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise OSError(errno.ETIMEDOUT, f"{argv[0]} did not finish in {exc.timeout:.0f} s") from None
    if done.returncode != 0:
        raise OSError(errno.EIO, f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")


def _said(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _sparse_copy(source: Path, target: Path) -> None:
    """Copies a sparse file's data, leaving its holes holes (the template's few MB, not its size)."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src).st_size
            os.ftruncate(dst, size)
            offset = 0
            while offset < size:
                try:
                    offset = os.lseek(src, offset, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:  # only a hole is left
                        break
                    raise
                end = os.lseek(src, offset, os.SEEK_HOLE)
                while offset < end:
                    copied = os.copy_file_range(src, dst, end - offset, offset, offset)
                    if copied == 0:
                        raise OSError(errno.EIO, f"{source} ended before its size")
                    offset += copied
        except BaseException:
            os.close(dst)
            target.unlink(missing_ok=True)
            raise
        os.close(dst)
    finally:
        os.close(src)
