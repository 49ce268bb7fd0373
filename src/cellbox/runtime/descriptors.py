"""What is written to file descriptors 1 and 2 while a cell runs, as the cell's output: cellbox's runtime
module, uploaded beside container.py (standard library only: it runs in the container's Python, never imports
cellbox). Without it, a subprocess's or a C library's output would go to the kernel's own streams, which the
service hands to the model as tool output (read, and billed) and the user never sees."""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import threading
from typing import Any

DRAIN_CHUNKS = 64  # pipe reads (of up to 64 KiB) that end a run's capture of descriptors 1 and 2, at most
_libc: Any = None  # the C library, for its fflush


class _Pipe:
    """A pipe that stands in for descriptor 1 or 2 while a cell runs; `forward` is where the descriptor went
    before, and where what arrives between runs is passed on."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd, self.name = fd, name
        self.forward = os.dup(fd)
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def take(self) -> None:
        forward = os.dup(self.fd)  # where it goes now (code, or a test harness, may have changed it)
        os.close(self.forward)
        self.forward = forward
        os.dup2(self.write, self.fd)

    def give_back(self) -> None:
        os.dup2(self.forward, self.fd)


class _Descriptors:
    """What is written to file descriptors 1 and 2 while a cell runs (a subprocess, a C library,
    `sys.__stdout__`), into its streams: the kernel would otherwise send it to the tool's logs, which the model
    reads and which are billed. For the length of a run the descriptors are pipes, read by one thread kept for the
    kernel's life, so a process a cell starts and leaves running (a pool's workers) keeps writing into them: what
    it writes during a later cell is that cell's, and between cells it is passed on to where it would have gone.
    A run takes everything written before it ends: reading and handing over happen under one lock, and `end`
    empties the pipes under it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.output: Any = None
        self.pipes: list[_Pipe] = []
        for fd, name in ((1, "stdout"), (2, "stderr")):
            with contextlib.suppress(OSError):  # a kernel without this descriptor: nothing to capture
                self.pipes.append(_Pipe(fd, name))
        self.alive = True
        threading.Thread(target=self._pump, name="cellbox-descriptors", daemon=True).start()

    def _pump(self) -> None:
        import selectors

        try:
            with selectors.DefaultSelector() as selector:
                for pipe in self.pipes:
                    selector.register(pipe.read, selectors.EVENT_READ, pipe)
                while True:
                    for key, _ in selector.select():
                        with self.lock:
                            self._move(key.data)
        except BaseException:  # nobody would read the pipes (writers would block): runs stop using them
            self.alive = False

    def _move(self, pipe: _Pipe) -> bool:
        """Hand over what one pipe holds now; False once it holds nothing."""
        try:
            chunk = os.read(pipe.read, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            return False
        if self.output is not None:
            self.output.write(pipe.name, pipe.decoder.decode(chunk))
        else:
            view = memoryview(chunk)
            with contextlib.suppress(OSError):  # nobody reads there any more: between runs, it is dropped
                while view:
                    view = view[os.write(pipe.forward, view) :]
        return True

    def _drain(self) -> None:
        # Bounded: a process the cell left writing without pause must not keep the run from ending.
        for pipe in self.pipes:
            for _ in range(DRAIN_CHUNKS):
                if not self._move(pipe):
                    break

    def begin(self, output: Any) -> bool:
        """Capture into `output`; False (nothing captured) when the pipes can't be read."""
        if not self.alive:
            return False
        _flush_standard_streams()
        with self.lock:
            self._drain()  # written before the run: not the run's
            for pipe in self.pipes:
                pipe.decoder.reset()
                with contextlib.suppress(OSError):
                    pipe.take()
            self.output = output
        return True

    def end(self) -> None:
        _flush_standard_streams()
        with self.lock:
            for pipe in self.pipes:
                with contextlib.suppress(OSError):
                    pipe.give_back()
            self._drain()
            for pipe in self.pipes:
                self.output.write(pipe.name, pipe.decoder.decode(b"", final=True))
            self.output = None


@contextlib.contextmanager
def capture(output: Any) -> Any:
    """Descriptors 1 and 2 into `output` for the length of the block (`_Descriptors`, made on first use)."""
    descriptors = sys.__dict__.get("cellbox_descriptors")
    if descriptors is None:
        try:
            descriptors = sys.__dict__["cellbox_descriptors"] = _Descriptors()
        except OSError:
            yield
            return
    if not descriptors.begin(output):
        yield
        return
    try:
        yield
    finally:
        descriptors.end()


def _flush_standard_streams() -> None:
    """Text still buffered on its way to descriptors 1 and 2 (Python's streams, the C library's). ipykernel's own
    streams send to the kernel's IOPub socket, not to a descriptor: flushing one would only wait on its IOPub
    thread."""
    global _libc
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None and not hasattr(stream, "pub_thread"):
                stream.flush()
    with contextlib.suppress(Exception):
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None)
        _libc.fflush(None)
