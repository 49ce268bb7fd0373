"""How a cell's source runs in the container's kernel, as IPython runs a notebook cell: uploaded beside
`container.py` (standard library only).

Where the kernel is IPython, what IPython takes in a cell works here too: `!commands`, `%magics` and `%%cell
magics`, automagics (`pwd` alone), `name?` help, pasted `>>>` prompts (the shell's own input transformer makes
Python of them) and top-level `await` (compiled as IPython compiles it, the coroutine run on the shell's loop).
A cell of several lines that is plain Python is parsed as it is (IPython's transforms would leave it unchanged),
so it pays nothing for them. The last expression, unless the cell ends with `;`, is the cell's value.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import keyword
import re
import sys
import threading
from typing import Any

CELL_FILENAME = "<cell>"
# Top-level `await` compiles; a code object that uses it is a coroutine's (CO_COROUTINE) and is awaited.
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_CO_COROUTINE = 0x80
_FIRST_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)")
_VALUE = "_cellbox_cell_value"  # where an awaiting cell's last line is kept until it is shown

# The loops awaiting cells run on, each kept for the kernel's life: one for a kernel without IPython's, and one in a
# thread of its own where the kernel's loop is running the very cell (ipykernel).
_loop: Any = None
_threaded: Any = None
_loop_lock = threading.Lock()


def filename(run_id: str, execution_count: int | None, shell: Any) -> str:
    """The cell's file name in tracebacks. A notebook cell's (`execution_count`, its In[N]) is its own, so a
    function it defines shows its lines when a later cell calls it, and the shell names it as IPython names a
    local cell: "Cell In[N]". Others are all `<cell>`."""
    if execution_count is None:
        return CELL_FILENAME
    name = f"<cell {run_id}>"
    with contextlib.suppress(Exception):  # a shell without IPython's compiler shows the name itself
        shell.compile._filename_map[name] = execution_count
    return name


def run(source: str, namespace: dict[str, Any], shell: Any, name: str = CELL_FILENAME) -> Any:
    """Runs the cell in `namespace` under file name `name`; its last expression's value (None when it ends
    otherwise)."""
    _share_loop(shell)
    tree = parse(source, shell, namespace, name)
    if not (tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(source)):
        whole = compile(tree, name, "exec", flags=_FLAGS)
        if whole.co_flags & _CO_COROUTINE:
            _await(eval(whole, namespace), shell)
        else:
            eval(whole, namespace)
        return None
    last = tree.body[-1]
    body = compile(ast.Module(body=tree.body[:-1], type_ignores=[]), name, "exec", flags=_FLAGS)
    value = compile(ast.Expression(body=last.value), name, "eval", flags=_FLAGS)
    if not (body.co_flags | value.co_flags) & _CO_COROUTINE:
        eval(body, namespace)
        return eval(value, namespace)
    # A cell that awaits is one coroutine, as IPython runs it: what its first lines start on the loop (a task) is
    # there for its last line, whose value is kept in a name of the runtime's meanwhile.
    kept = ast.Assign(targets=[ast.Name(id=_VALUE, ctx=ast.Store())], value=last.value)
    tree.body[-1] = ast.copy_location(kept, last)
    try:
        _await(eval(compile(ast.fix_missing_locations(tree), name, "exec", flags=_FLAGS), namespace), shell)
        return namespace.get(_VALUE)
    finally:
        namespace.pop(_VALUE, None)


def _share_loop(shell: Any) -> None:
    """Tasks a cell makes without awaiting them (`asyncio.ensure_future` in a cell of plain code) are made on the
    loop a later cell awaits them on, as in a notebook, where one loop runs every cell. Only once asyncio is in
    use, and only where no loop runs the cell already."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or asyncio._get_running_loop() is not None:
        return
    helpers = sys.modules.get("IPython.core.async_helpers")
    with contextlib.suppress(Exception):
        asyncio.set_event_loop(helpers.get_asyncio_loop() if shell is not None and helpers else _own_loop())


def parse(source: str, shell: Any, namespace: dict[str, Any], name: str = CELL_FILENAME) -> ast.Module:
    """The cell as Python: as written, or, when that is not Python, as the shell's transformer makes it (a
    SyntaxError then is the transformed cell's, as in IPython; transforms keep the lines where they were). A
    single line that may name a magic goes through the shell too: IPython makes a magic of it (`pwd`, `ls`)."""
    if shell is not None and _may_be_automagic(source, shell, namespace):
        return ast.parse(_transformed(source, shell), name)
    try:
        return ast.parse(source, name)
    except SyntaxError:
        transformed = _transformed(source, shell)
        if transformed == source:
            raise
    # Parsed outside the handler, so an error in it is not shown chained to the first one.
    return ast.parse(transformed, name)


def _may_be_automagic(source: str, shell: Any, namespace: dict[str, Any]) -> bool:
    """Whether IPython could change this cell though it is Python: only a single line, and only to call a magic or
    an alias by its bare name that nothing shadows (or anything, with autocall on); the shell then decides."""
    line = source.strip()
    if "\n" in line:
        return False
    if getattr(shell, "autocall", 0):
        return True
    name = _FIRST_NAME.match(line)
    if name is None or name[1] in namespace or keyword.iskeyword(name[1]) or hasattr(builtins, name[1]):
        return False
    try:
        aliases = getattr(shell, "alias_manager", None)
        return bool(shell.find_magic(name[1]) or (aliases is not None and aliases.is_alias(name[1])))
    except Exception:  # a shell unlike IPython's: it decides
        return True


def _transformed(source: str, shell: Any) -> str:
    if shell is None:
        return source
    try:
        return shell.transform_cell(source)
    except Exception:  # a transformer that fails leaves the cell's own SyntaxError to be reported
        return source


def _ends_with_semicolon(source: str) -> bool:
    lines = [line.split("#", 1)[0].rstrip() for line in source.rstrip().splitlines()]
    code = [line for line in lines if line]
    return bool(code) and code[-1].endswith(";")


def _await(coroutine: Any, shell: Any) -> Any:
    """The coroutine's result: on the shell's loop (IPython's own, kept between cells), or, where a loop is
    already running this cell (ipykernel runs cells as coroutines), on a loop of cellbox's in a thread, kept
    between cells too, so what one cell made on it serves the next."""
    import asyncio

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # run outside the handler, so the cell's own errors are not shown chained to this one
        running = None
    if running is None:
        runner = getattr(shell, "loop_runner", None)
        if runner is not None:
            return runner(coroutine)
        return _own_loop().run_until_complete(coroutine)
    future = asyncio.run_coroutine_threadsafe(coroutine, _thread_loop())
    try:
        return future.result()
    except BaseException:  # an interrupt while waiting stops the coroutine too
        future.cancel()
        raise


def _own_loop() -> Any:
    import asyncio

    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
        return _loop


def _thread_loop() -> Any:
    import asyncio

    global _threaded
    with _loop_lock:
        if _threaded is None or _threaded.is_closed():
            _threaded = asyncio.new_event_loop()
            threading.Thread(target=_threaded.run_forever, name="cellbox-await", daemon=True).start()
        return _threaded
