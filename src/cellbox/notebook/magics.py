"""`%container` and `%%container` (`%load_ext cellbox`). Thin: parsing, the notebook namespace, and display;
the work is done by `cellbox.Sandbox`, which is usable without IPython.

    %container new [NAME] [--memory 1g|4g|16g|64g] [--expires MINUTES] [--fresh]
    %container use NAME_OR_ID
    %container list | files | status
    %container push VAR_OR_PATH ...
    %container pull REMOTE_GLOB [--to DIR] [--hidden] [--force] [--modules]
    %container delete [NAME_OR_ID]

    %%container [NAME_OR_ID] [-i VAR ...] [-o VAR ...] [--files PATH ...] [--pull GLOB ...] [--hidden] [--force]
                [--modules] [--timeout S]

    %container pool N [--memory ...] | --retry | --delete;  %%container --pool --split VAR [--by COLUMN] -o VAR
    (see cellbox.notebook.pool_magic)
"""

from __future__ import annotations

import posixpath
import re
import shlex
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from ..api import CellboxError
from ..api.config import configured_secrets
from ..api.lookup import NameTaken
from ..common import inuse
from ..common.redact import redact
from ..session.errors import Interrupted, SandboxGone
from ..session.protocol import DATA_DIR, LiveOutput
from ..session.results import Run, Usage
from ..session.sandbox import Sandbox
from . import options, pool_magic, views
from .registry import Containers, Said
from .replay import Replay, warn

__all__ = ["ContainerMagics", "load_ipython_extension"]


LINE_PARSER = options.line_parser()
CELL_PARSER = options.cell_parser()
# What IPython leaves of `{expr}` in a magic's line when it can't expand it (an undefined name, most often).
UNEXPANDED = re.compile(r"\{([^{}\s]+)\}")


def _unexpanded(line: str) -> str | None:
    """A `{expr}` IPython left as written, said in one line; None when the line has none."""
    found = UNEXPANDED.search(line)
    if found is None:
        return None
    expr = found.group(1)
    what = f"no variable {expr} in the notebook" if expr.isidentifier() else f"{expr} could not be evaluated"
    return f"{found.group(0)} in %container's line: {what}, so IPython left it as written (nothing was run)"


def _parse(parser: MagicArgumentParser, line: str) -> Any:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{parser.prog}: {exc}") from None
    return parser.parse_args(words)  # MagicArgumentParser raises UsageError on bad arguments


@magics_class
class ContainerMagics(Magics):
    """Run cells in a container reached through the Containers API."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._kernel = inuse.kernel_id()  # where the sidebar learns which container this notebook uses
        # What a kernel restart keeps of the notebook: its first cell reattaches to the container it used last.
        notebook = inuse.notebook_identity(getattr(shell, "user_ns", None)) if shell is not None else None
        self.containers = Containers(self._kernel, progress=views.TransferProgress, notebook=notebook)
        self._pools = pool_magic.PoolCommands(shell)  # `%container pool`, `%%container --pool`

    @line_cell_magic
    def container(self, line: str, cell: str | None = None) -> Any:
        if options.asks_for_help(line):
            print(options.HELP)
            return None
        unexpanded = _unexpanded(line)
        if unexpanded is not None:
            raise UsageError(unexpanded)
        try:
            if cell is None:
                return self._line(_parse(LINE_PARSER, line))
            return self._cell(_parse(CELL_PARSER, line), cell)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            what = f"%container {line.split()[0]}" if cell is None and line.split() else "the cell before it ran"
            raise Interrupted(f"stopped {what}") from None
        except SandboxGone as exc:
            self.containers.gone()
            raise SandboxGone(
                f"container {exc.container or 'of this notebook'} has expired or was deleted. The next %%container "
                "cell makes a new one of the same name and pushes your data again (variables and imports of earlier "
                "cells are not carried over).",
                exc.container,
            ) from None
        except CellboxError as exc:
            # The message says what to do; the frames of cellbox and httpx under it would only hide it.
            if not hasattr(exc, "_render_traceback_"):
                # It may quote what a backend or proxy said: credentials it echoed are taken out.
                shown = [redact(f"{type(exc).__name__}: {exc}", configured_secrets())]
                exc._render_traceback_ = lambda: shown  # type: ignore[attr-defined]
            raise

    container.__doc__ = options.HELP

    def _cell_number(self) -> int | None:
        """The running cell's number, as the notebook shows it (In[N]); IPython's display hook knows it whichever
        way its version counts (9 counts the cell before running it)."""
        count = getattr(getattr(self.shell, "displayhook", None), "prompt_count", None)
        return count if isinstance(count, int) else None

    @property
    def _namespace(self) -> dict[str, Any]:
        """The notebook's variables (a magic is only ever called from a shell)."""
        assert self.shell is not None
        return self.shell.user_ns

    # --- sandboxes ------------------------------------------------------------------------------------------------

    @property
    def current(self) -> Sandbox | None:
        """The notebook's current sandbox (`self.containers` keeps the others)."""
        return self.containers.current

    def _sandbox(self, name: str | None) -> Sandbox:
        return self.containers.resolve(name, _tell)

    def _require_current(self) -> Sandbox:
        try:
            return self.containers.require_current()
        except LookupError as exc:
            raise UsageError(str(exc)) from None

    # --- %container -----------------------------------------------------------------------------------------------

    def _line(self, args: Any) -> Any:
        command = args.command
        if command is None:
            raise UsageError("%container needs a command: new, use, list, files, push, pull, delete, status, env")
        if command == "pool":
            return self._pools.line(args)
        if command == "new":
            if args.fresh:
                self.containers.start_clean(args.name, _tell)
            try:
                sandbox = Sandbox.create(
                    args.name, memory_limit=args.memory, expires_after=args.expires, trust_output=args.trust_output
                )
            except NameTaken as taken:  # a name means one live container: use it, as `use` would
                sandbox = self.containers.known(taken.container.id) or Sandbox.attach(taken.container.id)
                sandbox.trust_output = args.trust_output
                differs = args.memory and args.memory != taken.container.memory_limit
                memory = f" with {taken.container.memory_limit} of memory, not {args.memory}" if differs else ""
                _say(
                    f"container {args.name} is already running ({sandbox.id}){memory}; using it "
                    f"(`%container new {args.name} --fresh` replaces it with a new one)"
                )
            self.containers.remember(sandbox)
            return views.StatusView(sandbox.container, caption="this notebook's container")
        if command == "use":
            used = self.containers.use(args.name, _tell)
            return views.StatusView(used.container, caption="this notebook's container")
        if command == "list":
            current = self.current.id if self.current is not None else None
            others = [box for kernel, box in inuse.read().items() if kernel != self._kernel]
            if self.current is not None:  # the session's client, which stays open with it
                boxes = list(self.current.client.containers.list(order="desc"))
                return views.ContainerTable(boxes, current, others)
            with Sandbox.default_client() as client:
                return views.ContainerTable(list(client.containers.list(order="desc")), current, others)
        if command == "status":
            sandbox = self._require_current()
            return views.StatusView(sandbox.refresh(), caption="this notebook's container", usage=_tokens(sandbox))
        if command == "files":
            return views.FileTable(self._require_current().files())
        if command == "env":
            sandbox = self._sandbox(None)
            run = sandbox.run(_PACKAGES, outputs=[_PACKAGES_NAME])
            if run.error is not None:
                raise run.error
            return views.PackageTable(run.variables.get(_PACKAGES_NAME) or [], sandbox.name or sandbox.id)
        if command == "push":
            sandbox = self._sandbox(None)
            for item in args.items:
                before = {entry.remote: entry.file_id for entry in sandbox.manifest.values()}
                where = ""
                if item in self._namespace:
                    try:
                        remotes = sandbox.push(self._namespace[item], name=item)
                    except TypeError as exc:  # a value that can't travel: the error names it, and the entry in it
                        raise UsageError(str(exc)) from None
                else:
                    remotes = sandbox.push(item)
                    where = f" to {_landed(remotes)}"
                sent = [r for r in remotes if sandbox.manifest[r].file_id != before.get(r)]
                state = f"sent {len(sent)} of {len(remotes)} file(s)" if sent else "unchanged, nothing sent"
                _say(f"pushed {item}{where}: {state}")
            return None
        if command == "pull":
            paths = self._require_current().pull(
                *args.patterns, to=args.to, hidden=args.hidden, force=args.force, modules=args.modules
            )
            _say(f"pulled {len(paths)} file(s) into {args.to}" + (f"; {paths.note}" if paths.note else ""))
            return None
        if command == "delete":
            known = self.containers.known(args.name) if args.name else self._require_current()
            sandbox = known if known is not None else Sandbox.attach(args.name)
            self.containers.delete(sandbox)  # if it was current, the next cell makes one of its name, and says so
            _say(f"deleted container {sandbox.name or sandbox.id} ({sandbox.id})")
            return None
        raise UsageError(f"unknown %container command {command!r}")  # pragma: no cover - argparse rejects it first

    # --- %%container ----------------------------------------------------------------------------------------------

    def _cell(self, args: Any, cell: str) -> None:
        if args.pool:
            return self._pools.cell(args, cell)
        namespace = self._namespace
        missing = [name for name in args.inputs if name not in namespace]
        if missing:
            raise UsageError(f"-i {' '.join(missing)}: no such variable in the notebook")
        sandbox = self._sandbox(args.name)
        inputs = {name: namespace[name] for name in args.inputs}
        replay = Replay(self.shell, sandbox)
        live = LiveOutput(replay.event)
        try:
            run = sandbox.run(
                cell,
                inputs=inputs,
                outputs=args.outputs,
                files=args.files,
                pull=args.pull,
                to=args.to,
                hidden=args.hidden,
                force=args.force,
                modules=args.modules,
                timeout=args.timeout,
                live=live,
                on_wait=replay.waiting,
                execution_count=self._cell_number(),
                operation=replay.operation,
            )
        except TypeError as exc:  # a -i value that can't travel: the error names it, and the entry in it
            raise UsageError(str(exc)) from None
        finally:
            replay.done()
        replay.run = run
        live.finish(run.events)
        self._show(run)
        # Only the names the user asked for, whatever the container sent (the session already keeps to them); those
        # that came back are set even when others could not come (the error, raised next, names those).
        namespace.update({name: run.variables[name] for name in args.outputs if name in run.variables})
        if run.error is not None:
            raise run.error

    def _show(self, run: Run) -> None:
        for figure in run.figures:  # a runtime without IPython saves open figures as files
            display(views.image(figure))
        if run.artifacts:
            display(views.ArtifactGallery(run.artifacts))
        for note in run.notes:
            print(f"cellbox: {note}", file=sys.stderr)


# What `%container env` runs: every distribution the container's Python finds, by name, whatever the backend.
_PACKAGES_NAME = "_cellbox_packages"
_PACKAGES = f"""from importlib import metadata as _cellbox_metadata
{_PACKAGES_NAME} = sorted(
    {{(d.metadata["Name"] or "").lower(): [d.metadata["Name"], d.version]
     for d in _cellbox_metadata.distributions() if d.metadata["Name"]}}.values(),
    key=lambda row: row[0].lower(),
)
del _cellbox_metadata
"""


def _tokens(sandbox: Sandbox) -> Usage | str:
    """What the cells run in this sandbox have cost in model tokens, or why there is no figure."""
    runner = sandbox.runner
    if runner.usage is not None:
        return runner.usage
    return "not reported by the backend" if runner.responses else "no cells run yet"


def _landed(remotes: list[str]) -> str:
    """Where pushed files landed in the container: the file, or the folder holding them all."""
    if len(remotes) == 1:
        return f"{DATA_DIR}/{remotes[0]}"
    folder = posixpath.commonpath(remotes) if remotes else ""
    return f"{DATA_DIR}/{folder}/" if folder else f"{DATA_DIR}/"


def _tell(said: Said) -> None:
    (warn if said.warning else _say)(said.text)


def _say(message: str) -> None:
    # What cellbox did, on stdout: stderr is shown as an alarm, and this is news, not trouble.
    print(f"cellbox: {message}")


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(ContainerMagics)
