"""What a cell shows, captured in the container as IPython would show it: uploaded beside `container.py`.

Streams and displays become one ordered list of events, each also written as a JSON line to the run's live file
(which cellbox reads while the run goes on). Displays are caught by standing in for the shell's display
publisher, as `IPython.utils.capture.capture_output` does, so `display()`, rich reprs and the inline backend's
`plt.show()` arrive as full mimebundles; the last value is formatted by the shell's display formatter, and an
exception by the shell's own traceback formatter (colours and source lines included). Without IPython (a plain
Python kernel) values fall back to their repr and tracebacks to the standard library's.

    events: {"type": "stream", "name": "stdout" | "stderr", "text"}
            {"type": "display_data", "data": {mime: ...}, "metadata": {...}, "transient": {...}}
            {"type": "clear_output", "wait": bool}
            {"type": "execute_result"}  (where the last value was shown: its bundle is in the result record)
            {"type": "state_lost", "restored": [name]}  (the kernel restarted since the container's last run)
"""

from __future__ import annotations

import io
import json
import linecache
import re
import sys
import threading
import traceback
import types
from typing import Any

FLUSH_EVERY = 0.05  # seconds between writes of pending stream text to the live file
MAX_TEXT = 2_000_000  # characters of streams kept per run; the rest is summarised
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shell() -> Any:
    try:
        return get_ipython()  # type: ignore[name-defined]
    except NameError:
        return None


class Output:
    """The run's events, in order; streams are buffered and flushed every FLUSH_EVERY seconds. A run that shows
    nothing costs neither the flushing thread nor the live file: each is started by the first thing to write."""

    def __init__(self, live_path: str | None) -> None:
        self.events: list[dict[str, Any]] = []
        self.text = {"stdout": 0, "stderr": 0}
        self._live_path = live_path
        self._live: Any = None
        self._pending: list[list[str]] = []  # [name, text] not yet flushed
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _flusher(self) -> None:
        while not self._done.wait(FLUSH_EVERY):
            self.flush()

    def write(self, name: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            if self._thread is None and not self._done.is_set():
                self._thread = threading.Thread(target=self._flusher, name="cellbox-output", daemon=True)
                self._thread.start()
            kept = MAX_TEXT - self.text[name]
            if kept <= 0:
                self.text[name] += len(text)
                return
            self.text[name] += len(text)
            text = text[:kept]
            if self._pending and self._pending[-1][0] == name:
                self._pending[-1][1] += text
            else:
                self._pending.append([name, text])

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            for name, text in pending:
                self._emit({"type": "stream", "name": name, "text": text})

    def add(self, event: dict[str, Any]) -> None:
        self.flush()
        with self._lock:
            self._emit(event)

    def _emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self._live_path is None:
            return
        try:
            if self._live is None:  # after the request's one line: events are appended, one per line
                self._live = open(self._live_path, "a", encoding="utf-8")  # noqa: SIM115
                self._live.write("\n")
            self._live.write(json.dumps(event, default=str) + "\n")
            self._live.flush()
        except (OSError, ValueError):  # a full disk must not fail the run: the record still has everything
            self._live_path = None

    def stream(self, name: str) -> _Stream:
        return _Stream(self, name)

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done.set()  # no thread starts after this
        if self._thread is not None:
            self._thread.join()
        for name in ("stdout", "stderr"):
            if self.text[name] > MAX_TEXT:
                self._pending.append([name, f"\n… [{self.text[name] - MAX_TEXT} more characters not shown]\n"])
        self.flush()
        if self._live is not None:
            self._live.close()

    def joined(self, name: str) -> str:
        return "".join(e["text"] for e in self.events if e["type"] == "stream" and e["name"] == name)


class _Stream(io.TextIOBase):
    def __init__(self, output: Output, name: str) -> None:
        self.output = output
        self.name = name

    def write(self, text: str) -> int:
        self.output.write(self.name, str(text))
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"  # as a notebook's streams say, so code that asks (IPython's %timeit) writes "μs", not "us"


# Made once per kernel: making a traitlets class, or one of its objects, costs more than a run of `pass`.
_publisher: Any = None


def publisher(output: Output) -> Any:
    """A display publisher that records each display as an event in `output` (None without IPython)."""
    global _publisher
    if _publisher is None:
        try:
            from IPython.core.displaypub import DisplayPublisher
        except ImportError:
            return None

        class Publisher(DisplayPublisher):
            output: Output

            def publish(self, data: Any, metadata: Any = None, source: Any = None, **kwargs: Any) -> None:
                event = {"type": "display_data", "data": data, "metadata": metadata or {}}
                if kwargs.get("transient"):
                    event["transient"] = kwargs["transient"]
                if kwargs.get("update"):
                    event["update"] = True
                self.output.add(event)

            def clear_output(self, wait: bool = False) -> None:
                self.output.add({"type": "clear_output", "wait": wait})

        _publisher = Publisher()
    _publisher.output = output
    return _publisher


class displays:
    """Route the shell's displays into `output` while the cell runs, and keep the last traceback the shell showed
    itself (`error`, as `format_error` makes one): IPython shows some errors without raising them (`%run` of a
    script that fails, a `_repr_` that raises), and a notebook's kernel fails the cell for them."""

    def __init__(self, output: Output) -> None:
        self.shell = shell()
        self.publisher = publisher(output) if self.shell is not None else None
        self.saved: Any = None
        self.error: dict[str, Any] | None = None

    def _shown(self, etype: Any, evalue: Any, stb: Any) -> None:
        lines = [str(line) for line in stb or []]
        name = getattr(etype, "__name__", "Error")
        self.error = {
            "ename": name,
            "evalue": said_by(evalue),
            "traceback": ANSI.sub("", "\n".join(lines)) or name,
            "traceback_lines": lines or [name],
        }

    def __enter__(self) -> displays:
        if self.publisher is not None:
            self.saved = self.shell.display_pub
            self.shell.display_pub = self.publisher
            self.shell._showtraceback = self._shown  # the shell's own, for the length of the cell
        return self

    def __exit__(self, *exc: object) -> None:
        if self.publisher is not None:
            self.shell.display_pub = self.saved
            self.shell.__dict__.pop("_showtraceback", None)


class saved_figures:
    """The files the cell saved from matplotlib figures that it also showed (`paths`): such a file is the figure
    the notebook already shows, which the client then lists without showing it again.

    `Figure.savefig` is followed from the moment matplotlib's figure module is loaded (now, or when the cell
    imports it), and the shell's display formatter tells which figures were shown (the inline backend, `plt.show`,
    `display(fig)` and a figure as the last value all pass through it). Both are put back at the end."""

    MODULE = "matplotlib.figure"

    def __init__(self) -> None:
        self.shell = shell()
        self.saved: dict[int, tuple[Any, list[str]]] = {}  # id(figure): the figure (kept alive) and its files
        self.shown: set[int] = set()
        self._savefig: Any = None
        self._format: Any = None

    @property
    def paths(self) -> list[str]:
        return sorted({p for key, (_, paths) in self.saved.items() if key in self.shown for p in paths})

    def open_ones_shown(self) -> None:
        """The figures still open count as shown: without a shell the runtime saves them for the client to show."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            self.shown.update(id(plt.figure(number)) for number in plt.get_fignums())

    def __enter__(self) -> saved_figures:
        if self.MODULE in sys.modules:
            self._follow(sys.modules[self.MODULE])
        else:
            sys.meta_path.insert(0, self)  # a finder only for matplotlib.figure
        if self.shell is not None and getattr(self.shell, "display_formatter", None) is not None:
            formatter = self.shell.display_formatter
            self._format = formatter.format

            def format(obj: Any, *args: Any, **kwargs: Any) -> Any:
                if type(obj).__module__ == self.MODULE:
                    self.shown.add(id(obj))
                return self._format(obj, *args, **kwargs)

            formatter.format = format
        return self

    def __exit__(self, *exc: object) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if self._savefig is not None:
            sys.modules[self.MODULE].Figure.savefig = self._savefig
        if self._format is not None:
            self.shell.display_formatter.__dict__.pop("format", None)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.MODULE:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, follow = spec.loader, self._follow

        class Loader:
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: Any) -> None:
                loader.exec_module(module)
                follow(module)

        spec.loader = Loader()  # type: ignore[assignment]
        return spec

    def _follow(self, module: Any) -> None:
        if self._savefig is not None:
            return
        original = self._savefig = module.Figure.savefig
        saved = self.saved

        def savefig(figure: Any, fname: Any, *args: Any, **kwargs: Any) -> Any:
            import os

            result = original(figure, fname, *args, **kwargs)
            if isinstance(fname, (str, os.PathLike)):
                path = os.path.abspath(os.fspath(fname))
                paths = saved.setdefault(id(figure), (figure, []))[1]
                paths.append(path)
                if not os.path.splitext(path)[1]:  # matplotlib adds the format's suffix to a name without one
                    paths.append(f"{path}.{kwargs.get('format') or 'png'}")
            return result

        module.Figure.savefig = savefig


def flush_figures() -> None:
    """What the inline backend does after a cell: show the figures still open, once, and close them."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or not plt.get_fignums():
        return
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is not None and "inline" in str(plt.get_backend()):
        inline.flush_figures()
        return
    import base64

    from IPython.display import publish_display_data  # other backends: each open figure as inline shows it

    for number in plt.get_fignums():
        figure = plt.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        png = base64.b64encode(buffer.getvalue()).decode("ascii")
        publish_display_data({"image/png": png, "text/plain": repr(figure)})
    plt.close("all")


def format_value(value: Any) -> dict[str, Any]:
    """The last value as the shell's displayhook would show it: {"data": mimebundle, "metadata": ...}."""
    ip = shell()
    if ip is not None:
        data, metadata = ip.display_formatter.format(value)
        if data:
            return {"data": data, "metadata": metadata}
    return {"data": {"text/plain": repr(value)}, "metadata": {}}


def remember_source(filename: str, source: str) -> None:
    """Let tracebacks show the cell's lines, as IPython does for its own cells."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def format_error(exc: BaseException, *skip_files: str, cell: str | None = None) -> dict[str, Any]:
    """The exception as IPython would show it (`traceback_lines`, with colours) and in plain text (`traceback`),
    from the cell's first frame (file `cell`) where it has one, else without the leading frames of `skip_files`
    (the runtime's); for a SyntaxError, without the parser's."""
    tb = exc.__traceback__
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename != cell:
        first = first.tb_next
    if first is not None:  # what ran the cell (the runtime, an event loop for an awaited one) is not shown
        tb = first
    while tb is not None and tb.tb_frame.f_code.co_filename in skip_files:
        tb = tb.tb_next
    tb = _without_hidden_end(tb)
    if isinstance(exc, SyntaxError):
        tb = None
    lines: list[str] = []
    ip = shell()
    said = said_by(exc)
    if ip is not None and type(exc).__name__ == "UsageError":  # a magic misused: IPython says it in one line
        lines = [f"UsageError: {said}"]
    elif ip is not None:
        try:
            if isinstance(exc, SyntaxError):  # as IPython shows one: where in the cell, the line, a caret
                lines = list(ip.SyntaxTB.structured_traceback(type(exc), exc, []))
            else:
                lines = list(ip.InteractiveTB.structured_traceback(type(exc), exc, tb))
        except Exception:  # the formatter failing must not hide the error itself
            lines = []
    plain = "".join(traceback.format_exception(type(exc), exc, tb))
    if not lines:
        lines = plain.rstrip("\n").splitlines()
    text = ANSI.sub("", "\n".join(lines)) if ip is not None else plain
    return {"ename": type(exc).__name__, "evalue": said, "traceback": text, "traceback_lines": lines}


def _without_hidden_end(tb: Any) -> Any:
    """The traceback without the frames at its end that ask to be hidden (`__tracebackhide__`, as IPython reads
    it: the kernel's stand-in for `input()` raises in one), as long as a frame is left."""
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    kept = len(frames)
    while kept > 1 and frames[kept - 1].tb_frame.f_locals.get("__tracebackhide__"):
        kept -= 1
    if kept == len(frames):
        return frames[0] if frames else None
    del frames[kept:]
    rebuilt = None
    for frame in reversed(frames):
        rebuilt = types.TracebackType(rebuilt, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return rebuilt


def said_by(exc: BaseException) -> str:
    """What the exception says; an exception whose `__str__` fails says so, as Python's own tracebacks do."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"
