"""The Python kernel of one container, run inside its jail: an IPython shell taking code from the server.

Run as a script (`python jail_kernel.py RUNS INTERRUPTS`, copied beside the kernel's home, never imported from
cellbox: the jail has the interpreter's packages, not necessarily cellbox's). A Jupyter kernel would do the same
job over ZeroMQ with a signed message per output and three threads between the code and the server: ~6 ms for a
run of `pass` on a 2-core host, as much as the notebook's own kernel takes for the whole cell. Here a run is one
message each way on a socket (~1 ms).

- Text goes where the code writes it: Python's streams and descriptors 1 and 2 are one pipe the server reads, so
  prints, a subprocess's output and tracebacks keep their order; the value of the last expression and text-only
  displays are written there too, as a kernel's frontend would show them.
- Frames on the RUNS socket (a 4-byte big-endian length, then JSON): the server sends `{"run": id, "code": ...,
  "images": most, "image_chars": longest}`; the kernel sends `{"ready": true}` once, `{"image":
  "data:image/png;base64,..."}` for each image the code displays (up to `most` a run, each at most `longest`
  characters: the server restarts a kernel that sends more frames, or longer ones, than that),
  then `{"done": id, "error": "ValueError" | null, "dropped": images not sent}` after the run's text is written.
- A run's number (4 bytes, big-endian) on the INTERRUPTS socket interrupts that run if it is in progress
  (KeyboardInterrupt in the code); one that comes late, when that run has ended, is ignored.

The code can do anything here, write to these sockets included: the server trusts none of it (kernel.py).
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import json
import os
import re
import signal
import socket
import struct
import sys
import threading

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")  # in the order a cloud's tool output prefers them
_HEADER = struct.Struct("!I")


class _Channel:
    """The RUNS socket: frames in from the server on the main thread, frames out from any thread (a thread the
    code started may display while the main thread reports the end of a run)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.lock = threading.Lock()
        self.incoming = self.sock.makefile("rb")

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        with self.lock:
            self.sock.sendall(_HEADER.pack(len(body)) + body)

    def receive(self) -> dict | None:
        header = self.incoming.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        body = self.incoming.read(size)
        return json.loads(body) if len(body) == size else None


class _State:
    running: object = None  # the number of the run in progress: an interrupt raises KeyboardInterrupt in it
    images = 0  # sent since the last run began (a thread the code left may display between runs)
    most = 64
    longest = 16 * 1024 * 1024  # characters of one image's data URL
    dropped = 0


def _listen_for_interrupts(fd: int, main: int) -> None:
    with socket.socket(fileno=fd) as sock, sock.makefile("rb") as incoming:
        while len(header := incoming.read(_HEADER.size)) == _HEADER.size:
            if _State.running is not None and _HEADER.unpack(header)[0] == _State.running:
                signal.pthread_kill(main, signal.SIGINT)  # the main thread: a sleep or a wait there is cut short


def _on_sigint(signum: int, frame: object) -> None:
    if _State.running is not None:
        raise KeyboardInterrupt


def _no_input(prompt: object = "", *args: object, **kwargs: object) -> str:
    from IPython.core.error import StdinNotImplementedError

    __tracebackhide__ = True  # the code's call is what a traceback shows, not this frame
    raise StdinNotImplementedError(
        "code in a container cannot ask for input (input(), getpass): nobody can type into it."
    )


def _shell(channel: _Channel):  # -> InteractiveShell; IPython is imported only here, once the sockets are kept
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    def show(data: object) -> None:
        """One mimebundle as a tool's output: its image if it has one, else its text."""
        if not isinstance(data, dict):
            return
        for mime in IMAGE_TYPES:
            if isinstance(data.get(mime), str):
                url = f"data:{mime};base64,{''.join(data[mime].split())}"
                if _State.images >= _State.most or len(url) > _State.longest:
                    _State.dropped += 1
                else:
                    _State.images += 1
                    channel.send({"image": url})
                return
        if isinstance(data.get("text/plain"), str):
            print(data["text/plain"])

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs) -> None:
            show(data)

        def clear_output(self, wait: bool = False) -> None:
            pass  # the output already sent is the tool's; nothing can take it back

    class Hook(DisplayHook):
        def write_output_prompt(self) -> None:
            pass  # a tool's output carries the value alone, no "Out[n]:"

        def write_format_data(self, format_dict, md_dict=None) -> None:
            show(format_dict)

    class Shell(InteractiveShell):
        error: str | None = None

        def enable_gui(self, gui=None) -> None:
            if gui not in (None, "inline"):  # %matplotlib qt, tk, ...: there is no screen to open a window on
                from IPython.core.error import UsageError

                raise UsageError(f"a container has no screen for {gui} windows; figures show inline")

        def ask_exit(self) -> None:  # exit(), quit(): as a notebook's kernel, the process goes; state is lost
            os._exit(0)

        def _showtraceback(self, etype, evalue, stb) -> None:
            self.error = getattr(etype, "__name__", "Error")
            print(_ANSI.sub("", self.InteractiveTB.stb2text(stb)))  # a tool's logs are plain text

    Shell.display_pub_class = Publisher  # type: ignore[assignment]
    Shell.displayhook_class = Hook  # type: ignore[assignment]
    config = Config()
    config.HistoryManager.enabled = False  # a database written in a thread, for a history no one reads back
    # The shell's own colours stay (cellbox's runtime shows its tracebacks in them); the logs have none.
    shell = Shell.instance(config=config)

    # `%pip` runs the jail's pip, which says in one line why nothing installs here; IPython's own would add a
    # second, about restarting the kernel to use what was not installed.
    def pip(line: str) -> None:
        shell.system(f"{sys.executable} -m pip {line}")

    shell.register_magic_function(pip, "line", "pip")  # type: ignore[arg-type]
    return shell


def main(runs_fd: int, interrupts_fd: int) -> None:
    # Python's streams write to descriptors 1 and 2 (the server's pipe) a line at a time, so that what a
    # subprocess writes there between two prints comes between them.
    for fd, name in ((1, "stdout"), (2, "stderr")):
        setattr(sys, name, open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False))  # noqa: SIM115
    builtins.input = _no_input
    getpass.getpass = _no_input
    for fd in (runs_fd, interrupts_fd):
        os.set_inheritable(fd, False)  # the server's line to this process, not to the processes the code starts
    channel = _Channel(runs_fd)
    signal.signal(signal.SIGINT, _on_sigint)
    threading.Thread(
        target=_listen_for_interrupts, args=(interrupts_fd, threading.get_ident()), name="interrupts", daemon=True
    ).start()
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    shell = _shell(channel)
    channel.send({"ready": True})
    while True:
        message = channel.receive()
        if message is None:
            return  # the server closed the socket: it has no more runs for this kernel
        shell.error = None
        _State.images, _State.dropped = 0, 0
        if isinstance(message.get("images"), int):
            _State.most = message["images"]
        if isinstance(message.get("image_chars"), int):
            _State.longest = message["image_chars"]
        try:
            try:
                _State.running = message.get("run")
                shell.run_cell(message.get("code", ""), store_history=True)
            finally:
                _State.running = None
        except KeyboardInterrupt:  # one that landed outside the code, where IPython doesn't catch it
            shell.error = "KeyboardInterrupt"
            print("KeyboardInterrupt")
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the code closed or replaced it: what it holds is its business
                stream.flush()
        channel.send({"done": message.get("run"), "error": shell.error, "dropped": _State.dropped})


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
