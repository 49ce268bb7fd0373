"""One stateful Python kernel (ipykernel over jupyter_client, ipc transport) in its jail.

Everything here runs on the server's event loop: processes are spawned from the loop's thread (the kernels'
death signal is tied to the thread that spawned them) and messages are read with jupyter_client's asyncio
client, so a long cell never blocks other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import write_connection_file

from .launcher import Launcher, Limits

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MAX_LOG_CHARS = 4 * 1024 * 1024
# Images of one run, as the base64 text they travel in: past either cap they are counted, not kept.
MAX_IMAGE_CHARS = 16 * 1024 * 1024
MAX_IMAGES = 64
STDERR_TAIL = 64 * 1024  # bytes of a kernel's own output kept, to say why it failed
INTERRUPT_GRACE = 5.0  # seconds an interrupted run gets to stop before its kernel is killed


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
    image_bytes: int = 0
    images_dropped: int = 0


class Kernel:
    def __init__(self, launcher: Launcher, workdir: Path, limits: Limits) -> None:
        self.launcher = launcher
        self.workdir = workdir
        self.limits = limits
        self._proc: subprocess.Popen | None = None
        self._client: AsyncKernelClient | None = None
        self._dir: Path | None = None
        self._lock = asyncio.Lock()
        self._stderr = bytearray()
        self._stderr_fd: int | None = None
        self._stderr_loop: asyncio.AbstractEventLoop | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def memory_kills(self) -> int:
        """Processes of this kernel's jail the memory limit has killed so far."""
        return self.launcher.memory_kills(self._proc) if self._proc is not None else 0

    async def start(self, timeout: float = 60.0) -> None:
        self._dir = self.launcher.runtime_dir / secrets.token_hex(4)
        self._dir.mkdir(mode=0o700)
        home = self._dir / "home"
        home.mkdir()
        connection_file = self._dir / "k.json"
        write_connection_file(
            fname=str(connection_file),
            transport="ipc",
            ip=str(self._dir / "s"),
            key=secrets.token_hex(32).encode(),
        )
        for path in (self._dir, home, connection_file, self.workdir):
            self.launcher.give(path)  # the jail's user reads its key, makes its sockets, writes /mnt/data
        # The kernel's own stdout and stderr (code can write to fd 2 directly) come through a pipe of which only
        # the last STDERR_TAIL bytes are kept: a file on the host would grow as long as the code writes.
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self._proc = self.launcher.spawn(self.workdir, connection_file, home, self.limits, write_end)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        self._stderr_fd, self._stderr_loop = read_end, asyncio.get_running_loop()
        self._stderr_loop.add_reader(read_end, self._read_stderr)
        # One zmq context for every kernel: a context per client costs an I/O thread and descriptors each.
        client = AsyncKernelClient(context=_shared_context())
        client.load_connection_file(str(connection_file))
        # Shell, iopub and control only: each channel costs descriptors and a thread, and no run reads stdin.
        client.start_channels(stdin=False, hb=False)
        self._client = client
        try:
            await self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        """Until the kernel answers on shell and its iopub messages reach us (a SUB socket joins late)."""
        assert self._client is not None
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise KernelError(f"The kernel failed to start: {self._stderr_tail()}")
            if time.monotonic() > deadline:
                raise KernelError(f"The kernel did not start within {timeout:.0f} s: {self._stderr_tail()}")
            msg_id = self._client.kernel_info()
            with contextlib.suppress(queue.Empty):
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    msg = await self._client.get_iopub_msg(timeout=max(0.01, end - time.monotonic()))
                    if _parent_id(msg) == msg_id and _is_idle(msg):
                        await self._drain(self._client.get_shell_msg)
                        return

    async def _replied(self, msg_id: str) -> bool:
        """Whether the shell channel holds the reply to `msg_id` (the run has ended), without waiting."""
        assert self._client is not None
        for _ in range(10_000):  # bounded: a channel that keeps failing must not spin
            try:
                reply = await self._client.get_shell_msg(timeout=0)
            except queue.Empty:
                return False
            except Exception:  # unparsable: not an answer of the kernel's own making
                continue
            if _parent_id(reply) == msg_id:
                return True
        return False

    async def _drain(self, getter) -> None:
        for _ in range(10_000):  # bounded: a channel that keeps failing must not spin
            try:
                await getter(timeout=0)
            except queue.Empty:
                return
            except Exception:  # unparsable messages are dropped like any other
                continue

    def _read_stderr(self) -> None:
        assert self._stderr_fd is not None
        try:
            data = os.read(self._stderr_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_stderr()
            return
        self._stderr += data
        del self._stderr[:-STDERR_TAIL]

    def _close_stderr(self) -> None:
        if self._stderr_fd is not None:
            with contextlib.suppress(Exception):
                assert self._stderr_loop is not None
                self._stderr_loop.remove_reader(self._stderr_fd)
            os.close(self._stderr_fd)
            self._stderr_fd = None

    def _stderr_tail(self) -> str:
        if self._stderr_fd is not None:
            self._read_stderr()
        return self._stderr.decode(errors="replace").strip()[-2000:] or "no output"

    async def execute(self, code: str, timeout: float | None = None) -> Execution:
        """Runs code; an exception in it is part of the result, not an error of this call.

        Past `timeout` the code is interrupted; code that ignores the interrupt for INTERRUPT_GRACE seconds
        more has its kernel killed (the caller starts a new one).
        """
        async with self._lock:
            if not self.alive:
                raise KernelError("The kernel is not running.")
            assert self._client is not None
            await self._drain(self._client.get_iopub_msg)
            msg_id = self._client.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
            result = Execution()
            kills_before = self.memory_kills()
            logs = _Logs()
            deadline = None if timeout is None else time.monotonic() + timeout
            resend = 0.0
            replied = False
            try:
                while True:
                    if deadline is not None and time.monotonic() > deadline and result.status == "completed":
                        result.status = "incomplete"
                        logs.append(f"\nThe execution took longer than {timeout:g} s and was interrupted.\n")
                        self._send_interrupt()
                        deadline += INTERRUPT_GRACE
                        resend = time.monotonic() + 0.5
                    elif result.status == "incomplete" and resend < time.monotonic() < (deadline or 0.0):
                        self._send_interrupt()  # one that lands in the instant before the handler is set is lost
                        resend = time.monotonic() + 0.5
                    elif deadline is not None and time.monotonic() > deadline:
                        self.kill()
                        result.status, result.killed = "failed", True
                        logs.append("\nThe code ignored the interrupt; its kernel was restarted (variables lost).\n")
                        break
                    try:
                        msg = await self._client.get_iopub_msg(timeout=0.5)
                    except queue.Empty:
                        if not self.alive:
                            result.status = "failed"
                            break
                        # Output floods can drop iopub messages, the final "idle" among them: the shell reply
                        # says the run is over all the same (once iopub has been quiet twice, so no race).
                        if replied:
                            logs.append("\n[The run printed faster than its output could be kept: some is lost.]\n")
                            break
                        replied = await self._replied(msg_id)
                        continue
                    except asyncio.CancelledError:
                        if self._client is not None:
                            raise
                        # Killed from outside (its container was deleted): closing its sockets cancelled the poll.
                        result.status, result.killed = "failed", True
                        break
                    except Exception:  # a message that doesn't parse (bad signature, not JSON): not ours
                        continue
                    if _parent_id(msg) != msg_id:
                        continue
                    if _is_idle(msg):
                        break
                    _collect(msg, logs, result)
            except asyncio.CancelledError:
                # The client went away: stop the code, and keep the kernel (and its variables) if it stops.
                self._send_interrupt()
                await self._settle(msg_id)
                raise
            result.memory_kills = self.memory_kills() - kills_before
            if result.images_dropped:
                logs.append(
                    f"\n[{result.images_dropped} image(s) not kept: a run keeps at most {MAX_IMAGES} images and "
                    f"{MAX_IMAGE_CHARS // (1024 * 1024)} MiB of them; save more to /mnt/data instead.]\n"
                )
            result.logs = logs.text()
            if self._client is not None:
                await self._drain(self._client.get_shell_msg)
            return result

    async def _settle(self, msg_id: str) -> None:
        """Waits for an interrupted run to end; kills the kernel if it will not.

        An interrupt that reaches the kernel before the code starts (or in the instant before it installs its
        SIGINT handler) is ignored, so it is sent again until the run ends; the lock held meanwhile keeps a
        later run from catching one of them.
        """
        deadline = time.monotonic() + INTERRUPT_GRACE
        resend = time.monotonic() + 0.5
        while self._client is not None and time.monotonic() < deadline:
            try:
                msg = await self._client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                if not self.alive:
                    return
                msg = None
            if msg is not None and _parent_id(msg) == msg_id:
                if _is_idle(msg):
                    return
                if msg.get("msg_type") == "status":  # busy: the code starts only now
                    self._send_interrupt()
            if time.monotonic() > resend:
                self._send_interrupt()
                resend = time.monotonic() + 0.5
        self.kill()

    def _send_interrupt(self) -> None:
        if self._client is not None and self.alive:
            self._client.control_channel.send(self._client.session.msg("interrupt_request", {}))

    def kill(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.stop_channels()
            self._client = None
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self.launcher.cleanup(self._proc)
            self._proc = None
        self._close_stderr()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


_context: zmq.asyncio.Context | None = None


def _shared_context() -> zmq.asyncio.Context:
    global _context
    if _context is None or _context.closed:
        _context = zmq.asyncio.Context()
    return _context


def _is_idle(msg: dict) -> bool:
    content = msg.get("content")
    return msg.get("msg_type") == "status" and isinstance(content, dict) and content.get("execution_state") == "idle"


def _parent_id(msg: dict) -> object:
    parent = msg.get("parent_header")
    return parent.get("msg_id") if isinstance(parent, dict) else None


def _collect(msg: dict, logs: _Logs, result: Execution) -> None:
    """Adds one iopub message to the run's output. The kernel runs hostile code, which can send anything on its
    own sockets: whatever isn't the documented shape is skipped, never trusted."""
    kind, content = msg.get("msg_type"), msg.get("content")
    if not isinstance(content, dict):
        return
    if kind == "stream":
        logs.append(_text(content.get("text")))
    elif kind == "error":
        result.error = _text(content.get("ename"))[:200] or "Error"
        lines = content.get("traceback")
        lines = [_text(line) for line in lines] if isinstance(lines, list) else []
        logs.append(_ANSI.sub("", "\n".join(lines)) + "\n")
    elif kind in ("execute_result", "display_data"):
        data = content.get("data")
        if not isinstance(data, dict):
            return
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if isinstance(data.get(mime), str):
                encoded = "".join(data[mime].split())
                if result.image_bytes + len(encoded) > MAX_IMAGE_CHARS or len(result.images) >= MAX_IMAGES:
                    result.images_dropped += 1
                else:
                    result.images.append(f"data:{mime};base64,{encoded}")
                    result.image_bytes += len(encoded)
                return
        if "text/plain" in data:
            logs.append(_text(data["text/plain"]) + "\n")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


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
        self._parts.append(text)
        self._size += len(text)

    def text(self) -> str:
        text = "".join(self._parts)
        if self._dropped:
            text += f"\n[output truncated: {self._dropped} more characters]\n"
        return text
