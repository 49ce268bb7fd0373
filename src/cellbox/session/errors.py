"""The errors a session raises, in one tree. Every one is a `CellboxError` (the API client's errors are too), except
`Interrupted`, which is a `KeyboardInterrupt` so that stopping a cell stops it; every one is exported from
`cellbox`. Each says what happened and what to do, in words, and shows as one line in a notebook (its
`_render_traceback_`), not as a traceback through cellbox.

    CellboxError                      (cellbox.api: the root of every error cellbox raises)
    ├── ConfigurationError, ValidationError, APIError …    the client's: configuration, and the API's answers
    ├── NoSuchContainer, AmbiguousName, NameTaken           finding a container by name
    ├── RecordRefused                                        the container's result record was not accepted
    ├── Refused                                              a file from the container was not written here
    ├── TooLarge                                             a value too big for this machine's memory
    ├── SandboxGone                                          the container expired or was deleted
    ├── NotAuthorized                                        the backend refused access to the container
    ├── RunFailed                                            the response ended without running the cell
    ├── LoaderMismatch                                       the model ran other code than cellbox's loader
    ├── ProcessDied                                          the container's Python died under the cell
    ├── TimeLimit                                            the cell ran past its --timeout
    ├── RemoteError                                          the cell raised in the container
    │   └── ValueError, KeyError, …                          one class per remote exception's name
    └── PartsFailed                                          parts of a pool's run failed
    Interrupted (KeyboardInterrupt)                          the user stopped a push, a run or a pull
"""

from __future__ import annotations

from typing import Any

from ..api import CellboxError

__all__ = [
    "Interrupted",
    "LoaderMismatch",
    "NotAuthorized",
    "ProcessDied",
    "RemoteError",
    "RunFailed",
    "SandboxGone",
    "TimeLimit",
]


class RemoteError(CellboxError):
    """The cell raised in the container. IPython shows the remote traceback as the container's IPython made it
    (`lines`, colours and the cell's source included), and the cell fails. `traceback` is the same in plain text.

    Made with `RemoteError.of`, its class is named after the remote exception (a `ValueError` in the container
    is a `RemoteError` subclass named `ValueError` here), so the notebook's error says what the cell raised."""

    def __init__(
        self,
        ename: str,
        evalue: str,
        traceback: str,
        *,
        run_id: str | None = None,
        lines: list[str] | None = None,
    ) -> None:
        # A class named after the remote exception says its name: the message is the exception's own, as Python's.
        named = type(self).__name__ == ename
        super().__init__(evalue if named else f"{ename}: {evalue}" if evalue else ename)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.run_id = run_id
        self.lines = list(lines or [])

    @classmethod
    def of(cls, ename: str, evalue: str, traceback: str, **more: Any) -> RemoteError:
        named = _remote_classes.get(ename)
        # The name is the container's word: a class is made for a plain identifier, and only so many of them.
        if named is None and ename.isidentifier() and len(_remote_classes) < MAX_REMOTE_CLASSES:
            named = _remote_classes[ename] = type(ename, (cls,), {"__module__": "cellbox.remote"})
        return (named or cls)(ename, evalue, traceback, **more)

    def _render_traceback_(self) -> list[str]:
        if self.lines:
            return list(self.lines)
        return (self.traceback or f"{self.ename}: {self.evalue}\n").rstrip("\n").splitlines()


class SandboxGone(CellboxError):
    """The container expired or was deleted; `Sandbox.revive()` (or the next `%%container` cell) makes a new one.
    `container` names it ("NAME (ID)"), so the notebook can say it in its own words."""

    def __init__(self, message: str, container: str = "") -> None:
        super().__init__(message)
        self.container = container

    def _render_traceback_(self) -> list[str]:
        return [f"SandboxGone: {self}"]


class Interrupted(KeyboardInterrupt):
    """The user stopped a push, a run or a pull; the message says what was stopped and what state it left.
    Shown as one line, not as a traceback through cellbox and httpx."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mInterrupted\x1b[0m: {self.args[0] if self.args else 'stopped'}"]


class TimeLimit(CellboxError):
    """The cell ran past its `--timeout` (`timeout=`) and was stopped."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mTimeLimit\x1b[0m: {self}"]


class LoaderMismatch(CellboxError):
    """The model ran something other than cellbox's loader line; nothing it did is trusted, and the container's
    state is uncertain."""


class RunFailed(CellboxError):
    """The response that should have run the cell ended without running it; the message says how, in words."""


class ProcessDied(CellboxError):
    """The container's Python process died while it ran the cell (killed, crashed, out of memory): the cell's
    variables and everything earlier cells made in memory are gone; files are kept."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mProcessDied\x1b[0m: {self}"]


class NotAuthorized(CellboxError):
    """The backend refused access to the container (OCI says so with a 404 NotAuthorizedOrNotFound)."""


_remote_classes: dict[str, type[RemoteError]] = {}
MAX_REMOTE_CLASSES = 1000
