"""One stateful Python kernel (jail_kernel.py: an IPython shell) in its jail, and the server's side of it.

The kernel takes code and answers in frames on a socket pair; its text (prints, a subprocess's output,
tracebacks) comes through the pipe of its descriptors 1 and 2, in the order it was written. Everything here runs
on the server's event loop (both are read with the loop's readers), so a long cell never blocks other requests.
The kernel runs hostile code, which can write anything on its socket and pipe: frames that aren't the documented
shape are skipped, sizes are capped as they arrive, a frame past the cap is skipped without being held, and a
kernel sending more frames than a run can have is restarted.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import jail_kernel
from .launcher import Launcher, Limits

MAX_LOG_CHARS = 4 * 1024 * 1024
# Images of one run, as the base64 text they travel in: past either cap they are counted, not kept.
MAX_IMAGE_CHARS = 16 * 1024 * 1024
MAX_IMAGES = 64
MAX_FRAME = MAX_IMAGE_CHARS + 4096  # an image at the cap, in its frame: the kernel sends none longer
SMALL_FRAME = 4096  # a frame that is not an image (the end of a run): longer ones, when no image fits, skipped
# Frames a kernel may send in a run (and until the next): the images it keeps (jail_kernel.py stops at the cap)
# and its few others. More is code writing to the kernel's socket itself, and the kernel is restarted: each frame
# costs the server's event loop, which every container shares.
MAX_FRAMES = MAX_IMAGES + 8
STDERR_TAIL = 64 * 1024  # bytes of a kernel's own output kept, to say why it failed
INTERRUPT_GRACE = 5.0  # seconds an interrupted run gets to stop before its kernel is killed
_HEADER = struct.Struct("!I")
log = logging.getLogger("cellbox.local")


class KernelError(RuntimeError):
    """The kernel could not be started or died."""


@dataclass
class Execution:
    """What one run of code produced, in the order the cloud reports it."""

    logs: str = ""
    images: list[str] = field(default_factory=list)  # data: URLs
    error: str | None = None  # exception class name when the code raised
    status: str = "completed"  # or "incomplete" (interrupted, timed out) / "failed" (kernel died)
    killed: bool = False  # we killed the kernel because the code would not stop
    memory_kills: int = 0  # processes of the run the container's memory limit killed
    memory_peak: int | None = None  # the most memory the kernel's jail has used at once (None: not counted)
    image_bytes: int = 0
    images_dropped: int = 0


class _Run:
    """The run in progress: its output as it arrives, and its end (the kernel's `done` frame, or None when the
    kernel is gone)."""

    def __init__(self, number: int, loop: asyncio.AbstractEventLoop) -> None:
        self.number = number
        self.result = Execution()
        self.logs = _Logs()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.ended: asyncio.Future[dict | None] = loop.create_future()
        self.kills_before = 0

    def image(self, url: object) -> None:
        result = self.result
        if not isinstance(url, str) or not url.startswith("data:image/"):
            return
        if result.image_bytes + len(url) > MAX_IMAGE_CHARS or len(result.images) >= MAX_IMAGES:
            result.images_dropped += 1
        else:
            result.images.append(url)
            result.image_bytes += len(url)

    def end(self, done: dict | None) -> None:
        if not self.ended.done():
            self.ended.set_result(done)


class Kernel:
    def __init__(self, launcher: Launcher, workdir: Path, limits: Limits) -> None:
        self.launcher = launcher
        self.workdir = workdir
        self.limits = limits
        self._proc: subprocess.Popen | None = None
        self._dir: Path | None = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runs: socket.socket | None = None  # frames both ways
        self._interrupts: socket.socket | None = None  # a run's number interrupts that run
        self._frames = _Frames()
        self._frames_left = MAX_FRAMES
        self._ready: asyncio.Future[bool] | None = None  # True once the kernel says so, False if it closed first
        self._run: _Run | None = None
        self._numbers = 0
        self._closed = False
        self._output_fd: int | None = None  # the kernel's descriptors 1 and 2
        self._tail = bytearray()

    @property
    def alive(self) -> bool:
        # Its socket closed: gone, even in the moment before its process is seen to end.
        return self._proc is not None and not self._closed and self._proc.poll() is None

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def memory_kills(self) -> int:
        """Processes of this kernel's jail the memory limit has killed so far."""
        return self.launcher.memory_kills(self._proc) if self._proc is not None else 0

    async def start(self, timeout: float = 60.0) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._dir = self.launcher.runtime_dir / secrets.token_hex(4)
        self._dir.mkdir(mode=0o755)  # the jail's user reads the script, and writes nothing here
        home = self._dir / "home"  # HOME where there is no jail (in one, /tmp)
        home.mkdir()
        script = self._dir / "kernel.py"
        shutil.copyfile(jail_kernel.__file__, script)
        for path in (home, self.workdir):
            self.launcher.give(path)
        runs, runs_end = socket.socketpair()
        interrupts, interrupts_end = socket.socketpair()
        # The kernel's stdout and stderr are one pipe: its output, in order, and why it failed if it does.
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self._proc = self.launcher.spawn(
                self.workdir, script, home, self.limits, write_end, (runs_end.fileno(), interrupts_end.fileno())
            )
        except BaseException:
            for sock in (runs, interrupts):
                sock.close()
            os.close(read_end)
            raise
        finally:
            for sock in (runs_end, interrupts_end):
                sock.close()
            os.close(write_end)
        for sock in (runs, interrupts):
            sock.setblocking(False)
        self._runs, self._interrupts = runs, interrupts
        self._ready = loop.create_future()
        loop.add_reader(runs.fileno(), self._read_frames)
        os.set_blocking(read_end, False)
        self._output_fd = read_end
        loop.add_reader(read_end, self._read_output)
        try:
            await self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        assert self._ready is not None
        deadline = time.monotonic() + timeout
        while not self._ready.done():
            if not self.alive:
                raise KernelError(f"The kernel failed to start: {self._output_tail()}")
            if time.monotonic() > deadline:
                raise KernelError(f"The kernel did not start within {timeout:.0f} s: {self._output_tail()}")
            await asyncio.wait([self._ready], timeout=0.1)
        if not self._ready.result():
            raise KernelError(f"The kernel failed to start: {self._output_tail()}")

    # -- what the kernel sends ----------------------------------------------------------------------------

    def _read_frames(self) -> None:
        assert self._runs is not None
        try:
            data = self._runs.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        messages = self._frames.feed(data, self._frame_limit(), self._frames_left)
        self._frames_left -= len(messages)
        for message in messages:
            self._take(message)
        if self._frames.over:
            self._flooded()

    def _frame_limit(self) -> int:
        """The longest frame worth reading now: an image that still fits the run's room, else a small one."""
        run = self._run
        if run is None or len(run.result.images) >= MAX_IMAGES:
            return SMALL_FRAME
        return max(SMALL_FRAME, MAX_IMAGE_CHARS - run.result.image_bytes + 64)

    def _flooded(self) -> None:
        if self._run is not None:
            self._run.logs.append(
                f"\nThe code sent its kernel's messages itself (more than {MAX_FRAMES} in one run, or one longer than "
                "the kernel sends); the kernel was restarted (variables lost).\n"
            )
        log.warning("the code in a kernel sent messages on the kernel's socket itself; the kernel was restarted")
        self.kill()

    def _take(self, message: object) -> None:
        run = self._run
        if message is _Frames.TOO_BIG:
            if run is not None:
                run.result.images_dropped += 1
            return
        if not isinstance(message, dict):
            return
        if "image" in message:
            if run is not None:
                run.image(message["image"])
        elif "done" in message:
            if run is not None and message["done"] == run.number:
                run.end(message)
        elif message.get("ready") is True and self._ready is not None and not self._ready.done():
            self._ready.set_result(True)

    def _lost(self) -> None:
        """The kernel's socket closed: it died, or it was killed."""
        self._closed = True
        if self._runs is not None:
            self._unwatch(self._runs.fileno())
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(False)
        if self._run is not None:
            self._run.end(None)

    def _read_output(self) -> bool:
        """Moves what the pipe holds now to the run in progress (and the tail); False once it holds nothing."""
        if self._output_fd is None:
            return False
        try:
            data = os.read(self._output_fd, 1 << 16)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._close_output()
            return False
        self._tail += data
        del self._tail[:-STDERR_TAIL]
        if self._run is not None:
            self._run.logs.append(self._run.decoder.decode(data))
        return True

    def _drain_output(self) -> None:
        # Bounded: a process the code left writing without pause must not keep a run from ending.
        for _ in range(64):
            if not self._read_output():
                return

    def _close_output(self) -> None:
        if self._output_fd is not None:
            self._unwatch(self._output_fd)
            os.close(self._output_fd)
            self._output_fd = None

    def _unwatch(self, fd: int) -> None:
        """The loop stops reading `fd` (before it is closed)."""
        if self._loop is not None:
            with contextlib.suppress(Exception):  # the loop is closed already (the server is stopping)
                self._loop.remove_reader(fd)

    def _output_tail(self) -> str:
        self._drain_output()
        return self._tail.decode(errors="replace").strip()[-2000:] or "no output"

    # -- runs -----------------------------------------------------------------------------------------

    async def execute(self, code: str, timeout: float | None = None) -> Execution:
        """Runs code; an exception in it is part of the result, not an error of this call.

        Past `timeout` the code is interrupted; code that ignores the interrupt for INTERRUPT_GRACE seconds
        more has its kernel killed (the caller starts a new one).
        """
        async with self._lock:
            if not self.alive or self._runs is None:
                raise KernelError("The kernel is not running.")
            assert self._loop is not None
            self._drain_output()  # written between runs (a process a cell left running): not this run's
            self._numbers += 1
            run = self._run = _Run(self._numbers, self._loop)
            self._frames_left = MAX_FRAMES
            run.kills_before = self.memory_kills()
            try:
                await self._send(
                    _frame({"run": run.number, "code": code, "images": MAX_IMAGES, "image_chars": MAX_IMAGE_CHARS})
                )
                await self._wait(run, timeout)
            except asyncio.CancelledError:
                # The client went away: stop the code, and keep the kernel (and its variables) if it stops.
                self._send_interrupt(run)
                await self._settle(run)
                raise
            except TimeoutError:  # a kernel that doesn't read its code (the code forged the end of its last run)
                self.kill()
                run.result.status, run.result.killed = "failed", True
                run.logs.append("\nThe kernel did not take the code; it was restarted (variables lost).\n")
            except OSError:  # the socket is gone: the kernel with it
                run.result.status = "failed"
            finally:
                self._drain_output()  # everything the kernel wrote before it said the run was done
                self._run = None
            return self._finish(run)

    async def _send(self, frame: bytes) -> None:
        assert self._runs is not None and self._loop is not None
        sent = 0
        with contextlib.suppress(BlockingIOError):
            sent = self._runs.send(frame)  # all of it, nearly always: no wait on the loop
        if sent < len(frame):
            await asyncio.wait_for(self._loop.sock_sendall(self._runs, frame[sent:]), INTERRUPT_GRACE)

    async def _wait(self, run: _Run, timeout: float | None) -> None:
        result = run.result
        deadline = None if timeout is None else time.monotonic() + timeout
        resend = 0.0
        while not run.ended.done():
            if deadline is not None and time.monotonic() > deadline and result.status == "completed":
                result.status = "incomplete"
                run.logs.append(f"\nThe execution took longer than {timeout:g} s and was interrupted.\n")
                self._send_interrupt(run)
                deadline += INTERRUPT_GRACE
                resend = time.monotonic() + 0.5
            elif result.status == "incomplete" and resend < time.monotonic() < (deadline or 0.0):
                self._send_interrupt(run)  # one that lands in the instant before the code starts is lost
                resend = time.monotonic() + 0.5
            elif deadline is not None and time.monotonic() > deadline:
                self.kill()
                result.status, result.killed = "failed", True
                run.logs.append("\nThe code ignored the interrupt; its kernel was restarted (variables lost).\n")
                return
            wait = 0.5 if deadline is None else max(0.01, min(0.5, deadline - time.monotonic()))
            await asyncio.wait([run.ended], timeout=wait)
            if not run.ended.done() and not self.alive:
                break
        done = run.ended.result() if run.ended.done() else None
        if done is None:
            if self._proc is None:  # killed from outside (its container was deleted, its disk quota passed)
                result.killed = True
            result.status = "failed"
        else:
            if isinstance(done.get("error"), str):
                result.error = done["error"][:200] or "Error"
            dropped = done.get("dropped")
            if isinstance(dropped, int) and 0 < dropped < 1 << 31:  # the kernel's own count, past MAX_IMAGES
                result.images_dropped += dropped

    def _finish(self, run: _Run) -> Execution:
        result = run.result
        run.logs.append(run.decoder.decode(b"", final=True))
        result.memory_kills = self.memory_kills() - run.kills_before
        result.memory_peak = self.launcher.memory_peak(self._proc) if self._proc is not None else None
        if result.images_dropped:
            run.logs.append(
                f"\n[{result.images_dropped} image(s) not kept: a run keeps at most {MAX_IMAGES} images and "
                f"{MAX_IMAGE_CHARS // (1024 * 1024)} MiB of them; save more to /mnt/data instead.]\n"
            )
        result.logs = run.logs.text()
        return result

    async def _settle(self, run: _Run) -> None:
        """Waits for an interrupted run to end; kills the kernel if it will not.

        An interrupt that reaches the kernel before the code starts is ignored, so it is sent again until the
        run ends; the lock held meanwhile keeps a later run from catching one of them.
        """
        deadline = time.monotonic() + INTERRUPT_GRACE
        while time.monotonic() < deadline:
            await asyncio.wait([run.ended], timeout=0.5)
            if run.ended.done() or not self.alive:
                return
            self._send_interrupt(run)
        self.kill()

    def _send_interrupt(self, run: _Run) -> None:
        """Interrupts `run`: it carries the run's number, so one that reaches the kernel late stops no other run."""
        if self._interrupts is not None and self.alive:
            with contextlib.suppress(OSError):  # its buffer full: interrupts it hasn't read are waiting already
                self._interrupts.send(_HEADER.pack(run.number))

    def kill(self) -> None:
        if self._runs is not None:
            self._unwatch(self._runs.fileno())
            self._runs.close()
        if self._interrupts is not None:
            self._interrupts.close()
        self._runs = self._interrupts = None
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self.launcher.cleanup(self._proc)
            self._proc = None
        if self._run is not None:
            self._run.end(None)
        self._close_output()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return _HEADER.pack(len(body)) + body


class _Frames:
    """Frames out of the bytes a kernel sends, as they arrive: a 4-byte length, then that much JSON. A frame
    longer than `limit` is skipped as it arrives (reported as TOO_BIG), never held; one longer than SMALL_FRAME is
    an image frame exactly as the kernel writes it, read without a JSON parser, or dropped (a general parser
    spends a second and half a gigabyte on 16 MiB of nested lists); one that doesn't parse is dropped. Past
    `most` frames in one feed, or at a frame longer than MAX_FRAME (the kernel sends none), `over` is set and the
    rest is not read."""

    TOO_BIG = object()

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0
        self.over = False

    def feed(self, data: bytes, limit: int = MAX_FRAME, most: int = MAX_FRAMES) -> list[object]:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffer = self._buffer
        buffer += data
        messages: list[object] = []
        start = 0
        while len(buffer) - start >= _HEADER.size:
            if len(messages) >= most:
                self.over = True
                break
            (size,) = _HEADER.unpack_from(buffer, start)
            if size > MAX_FRAME:
                self.over = True
                break
            if size > limit:
                messages.append(self.TOO_BIG)
                start += _HEADER.size
                skipped = min(size, len(buffer) - start)
                start += skipped
                self._skip = size - skipped
                continue
            if len(buffer) - start - _HEADER.size < size:
                break
            body = bytes(buffer[start + _HEADER.size : start + _HEADER.size + size])
            start += _HEADER.size + size
            messages.append(_image_frame(body) if size > SMALL_FRAME else _small_frame(body))
        del buffer[:start]
        return messages


_IMAGE_START, _IMAGE_END = b'{"image": "data:image/', b'"}'
_URL_CHARACTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=;,:-"


def _image_frame(body: bytes) -> dict | None:
    """`{"image": "data:image/...;base64,..."}` as jail_kernel.py writes it (json.dumps of a string that needs no
    escape), else None."""
    if not (body.startswith(_IMAGE_START) and body.endswith(_IMAGE_END)):
        return None
    url = body[len(b'{"image": "') : -len(_IMAGE_END)]
    return {"image": url.decode("ascii")} if not url.translate(None, _URL_CHARACTERS) else None


def _small_frame(body: bytes) -> object:
    try:
        return json.loads(body)
    except Exception:  # not JSON, or nested past the parser's depth (RecursionError): dropped, counted
        return None


class _Logs:
    """Text output, capped as it arrives so that a chatty cell cannot fill the server's memory."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def append(self, text: str) -> None:
        room = MAX_LOG_CHARS - self._size
        if len(text) > room:
            self._dropped += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        if text:
            self._parts.append(text)
            self._size += len(text)

    def text(self) -> str:
        text = "".join(self._parts)
        if self._dropped:
            text += f"\n[output truncated: {self._dropped} more characters]\n"
        return text
