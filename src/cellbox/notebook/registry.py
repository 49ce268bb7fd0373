"""The notebook's containers: which one is current, which it used before, which vanished and which it deleted.

The magics ask it for a sandbox by name (`resolve`) and never hold this bookkeeping themselves, as sparkmagic's
`SessionManager` sits below its magics. It knows nothing of IPython, so it is tested without a kernel; what it did
that the user must hear of comes back as `Said` lines for the magic to print.

A name given (`%%container NAME`, `%container use NAME`) means a running container: it is found, never made (a typo
would otherwise leave an empty container behind and hide the user's state); `%container new` makes one. A cell with
no name runs in the current container, else in the one this notebook used last (a kernel restart keeps the
notebook's identity, `inuse.notebook_identity`), else in a new one, said.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

from ..api import CellboxError
from ..api.lookup import LIVE, NoSuchContainer, find_container, similar_names
from ..common import inuse
from ..session.errors import SandboxGone
from ..session.progress import TrackerFactory
from ..session.sandbox import Sandbox

__all__ = ["Containers", "Said"]

ANOTHER = "`%container new` makes another"


@dataclasses.dataclass(frozen=True)
class Said:
    """A line for the user: `news` (what cellbox did) or a `warning` (something they must know: state was lost)."""

    text: str
    warning: bool = False


class Containers:
    """The containers of one notebook (one kernel), by id and by name.

    `kernel` is the notebook's kernel id, where the sidebar learns which container this notebook uses; `notebook`
    the notebook's identity, under which the container it uses is kept for after a kernel restart; `progress` is
    given to every sandbox the notebook uses (how long transfers show)."""

    def __init__(
        self, kernel: str | None = None, progress: TrackerFactory | None = None, notebook: str | None = None
    ) -> None:
        self.current: Sandbox | None = None
        self.kernel = kernel
        self.notebook = notebook
        self.progress = progress
        self._reattach = notebook is not None  # the first cell with no name looks for the notebook's last container
        self._recorded: str | None = None  # the container last written as the notebook's
        self._known: dict[str, Sandbox] = {}  # by id and by name
        self._gone: set[str] = set()  # sandboxes whose container vanished: made anew by the next cell
        self._deleted: str | None = None  # the name of the current container `delete` removed: the next cell's

    def remember(self, sandbox: Sandbox) -> Sandbox:
        """`sandbox` is known by its id and name, and is the current one."""
        sandbox.progress = self.progress
        self._known[sandbox.id] = sandbox
        if sandbox.name:
            self._known[sandbox.name] = sandbox
        self._set_current(sandbox)
        return sandbox

    def known(self, id_or_name: str) -> Sandbox | None:
        return self._known.get(id_or_name)

    def require_current(self) -> Sandbox:
        if self.current is None:
            raise LookupError("no current container: `%container new` makes one, `%container use NAME` picks one")
        return self.current

    def resolve(self, name: str | None, said: Callable[[Said], None]) -> Sandbox:
        """The sandbox a cell runs in: the running one named (none: `NoSuchContainer`, naming similar names), else
        the current one, else the one this notebook used last (reattached), else a new one (of the deleted current
        one's name, if that is why there is none). A container that vanished is made anew, with everything pushed
        before pushed again; `said` hears what the user must know."""
        if name:
            sandbox = self.remember(self._known.get(name) or self._running(name))
        elif self.current is not None:
            sandbox = self.current
        elif self._deleted:  # the notebook's container was deleted: a new one of its name, not an anonymous one
            name = self._deleted
            sandbox = self.remember(Sandbox.get_or_create(name))
            said(
                Said(
                    f"container {name} was deleted, so this cell runs in a new container {name} ({sandbox.id}): "
                    "variables and files of earlier cells are not in it"
                )
            )
        else:
            reattached = self._last_used(said)
            sandbox = reattached or self.remember(Sandbox.create())
            if reattached is None:
                said(Said(f"created container {sandbox.name} ({sandbox.id})"))
        if sandbox.id in self._gone:
            old = sandbox.id
            sandbox.revive()
            self._gone.discard(old)
            self.remember(sandbox)
            said(
                Said(
                    f"container {sandbox.name or old} was gone (expired or deleted), so this cell runs in a new one "
                    f"({sandbox.id}): variables and imports of earlier cells are gone; {pushed_again(sandbox)}",
                    warning=True,
                )
            )
        return sandbox

    def use(self, id_or_name: str, said: Callable[[Said], None]) -> Sandbox:
        """`%container use`: the running container of that id or name, looked up afresh (another notebook or the
        sidebar may have replaced it), keeping what this notebook knows of a container it used before (its
        pushes). None running: `NoSuchContainer`, naming similar names."""
        found = self._running(id_or_name)
        if found.id in self._known:
            found.close()
        else:
            self._known[found.id] = found
        return self.resolve(found.id, said)

    def _running(self, id_or_name: str) -> Sandbox:
        """The running container of that id or name, attached; never one made."""
        try:
            return Sandbox.attach(id_or_name, running_only=True)
        except NoSuchContainer:
            raise no_such_container(id_or_name) from None

    def _last_used(self, said: Callable[[Said], None]) -> Sandbox | None:
        """The container this notebook used last, once per kernel: reattached if it still runs, else said gone (with
        what was lost) and made anew of its name; None when there is none to look for."""
        if not self._reattach or self.notebook is None:
            return None
        self._reattach = False
        last = inuse.last_used(self.notebook)
        if last is None:
            return None
        label = f"{last.name or last.container_id} ({last.container_id})"
        with Sandbox.default_client() as client:
            if client.container_binding == "auto":  # reached through a chain of responses, which the kernel held
                return None
            try:
                box = find_container(client, last.container_id)
            except NoSuchContainer:
                box = None
            same_backend = last.base_url == client.base_url
        if box is not None and box.status in LIVE:
            sandbox = self.remember(Sandbox.attach(box.id))
            said(Said(f"reattached to {label}, the container this notebook used last ({ANOTHER})"))
            return sandbox
        if box is None and not same_backend:
            return None  # another backend's: nothing to say of it here
        how = _gone(box.status if box is not None else None)
        sandbox = self.remember(Sandbox.get_or_create(last.name) if last.name else Sandbox.create())
        said(
            Said(
                f"container {label}, which this notebook used last, {how}: its variables and files are gone; this "
                f"cell runs in container {sandbox.name} ({sandbox.id})",
                warning=True,
            )
        )
        return sandbox

    def gone(self) -> None:
        """The current container was found gone: the next cell makes it anew."""
        if self.current is not None:
            self._gone.add(self.current.id)

    def delete(self, sandbox: Sandbox) -> None:
        """`sandbox`'s container is deleted; if it was current, the next cell makes a new one of its name."""
        sandbox.delete()
        was_current = self.current is sandbox
        self.forget(sandbox)
        if was_current:
            self._deleted = sandbox.name

    def start_clean(self, name: str | None, said: Callable[[Said], None]) -> None:
        """`new --fresh`: the container of that name (or the current one) is deleted, so nothing of its state or
        files carries over."""
        old = self._known.get(name) if name else self.current
        if old is None and name:
            try:
                old = Sandbox.attach(name)
            except CellboxError:
                return  # nothing of that name: already clean
        if old is None:
            return
        with contextlib.suppress(SandboxGone):
            old.delete()
        self.forget(old)
        said(Said(f"deleted container {old.name or old.id} ({old.id})"))

    def forget(self, sandbox: Sandbox) -> None:
        self._known = {key: known for key, known in self._known.items() if known is not sandbox}
        self._gone.discard(sandbox.id)
        if self.current is sandbox:
            self._set_current(None)

    def _set_current(self, sandbox: Sandbox | None) -> None:
        before, self.current = self.current, sandbox
        if sandbox is not None:
            self._deleted = None
            self._reattach = False  # the notebook chose its container
        if self.kernel is not None:
            if sandbox is None:
                inuse.forget(self.kernel)
            else:
                inuse.record(self.kernel, sandbox.id, sandbox.name)
        if self.notebook is not None:
            if sandbox is None and before is not None:  # deleted: nothing to reattach to
                inuse.forget_last_used(self.notebook, before.id)
                self._recorded = None
            elif sandbox is not None and sandbox.link.chain is None and self._recorded != sandbox.id:
                # An auto container is reached through the chain of responses this kernel holds: not after it.
                inuse.record_last_used(self.notebook, sandbox.id, sandbox.name, sandbox.client.base_url)
                self._recorded = sandbox.id


def no_such_container(id_or_name: str) -> NoSuchContainer:
    """The error for a name no running container has: which one it was if it has gone, else the names it may be a
    typo of, and how to make it."""
    with Sandbox.default_client() as client:
        try:
            gone = find_container(client, id_or_name)
        except NoSuchContainer:
            gone = None
        similar = similar_names(client, id_or_name)
    make = f"`%container new {id_or_name}` makes a new one"
    if gone is not None:
        return NoSuchContainer(f"container {gone.name or id_or_name} ({gone.id}) {_gone(gone.status)}; {make}")
    hint = f" (did you mean {', '.join(similar)}?)" if similar else ""
    return NoSuchContainer(f"no running container is named {id_or_name!r}{hint}; {make}, `%container list` lists them")


def _gone(status: str | None) -> str:
    return {"expired": "has expired", "deleted": "was deleted"}.get(status or "", "is gone (expired or deleted)")


def pushed_again(sandbox: Sandbox) -> str:
    names = [entry.spec["name"] if entry.spec else entry.remote for entry in sandbox.manifest.values()]
    return f"pushed again: {', '.join(names)}" if names else "nothing had been pushed"
