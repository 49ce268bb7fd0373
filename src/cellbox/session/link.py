"""`ContainerLink`: a session's link to its container — which container it is now, and the one way to call the API
on it.

The parts of a session (`Transfers`, `RemoteFiles`, `Runner`) hold the link, never the container: a revived session
has a new one, and they reach it without being told. Every API call on the container goes through `call`, the one
place where "the container is gone" becomes `SandboxGone`.

"Gone" is decided by retrieving the container (404, or status expired or deleted), never by a 404 on something
else (`cellbox.session.liveness`); an authorization failure is said as one.

The link also holds how a run's tool reaches the container (`binding.py`): by its id, or as an auto container
reused along a chain of responses, whose last one (`chain`) the next run continues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ..api import BadRequestError, CellboxError, Client, Container, NotFoundError
from .binding import auto_tool
from .errors import NotAuthorized, SandboxGone
from .liveness import container_state

__all__ = ["ContainerLink"]

P = ParamSpec("P")
T = TypeVar("T")


class ContainerLink:
    """The client and the session's current container (`container`, replaced when the session revives it)."""

    def __init__(self, client: Client, container: Container, *, binding: str = "id", chain: str | None = None) -> None:
        self.client = client
        self.container = container
        # `id` or `auto`; with `auto`, `chain` is the stored response whose call last ran in the container (None
        # when this session did not make it, and can't chain to it).
        self.binding = binding
        self.chain = chain
        # The name the session was given, where the service names an auto container itself: kept here only.
        self.name: str | None = None

    def bind_auto(self, container: Container, chain: str) -> None:
        """The session's container is now this auto container, made by the response `chain`."""
        self.container, self.binding, self.chain = container, "auto", chain

    def tool(self) -> str | dict[str, str]:
        """The code_interpreter tool's `container`: the id, or the auto container the chain reuses."""
        if self.binding == "id":
            return self.id
        return auto_tool(self.container.memory_limit)

    def previous(self) -> str | None:
        """The response a run continues from: None with the `id` binding. An auto container this session did not
        make can't be reached by a run (only a chain reuses it): that is an error, said."""
        if self.binding == "id":
            return None
        if self.chain is None:
            raise CellboxError(
                f"container {self.label} ({self.id}) is reached through an auto container's chain of responses, and "
                "this session did not make it, so it can't run cells in it (its files can still be pushed, listed "
                "and pulled). Sandbox.revive() makes a new one with the same data pushed again."
            )
        return self.chain

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def label(self) -> str:
        """How messages name the container: its name, else its id."""
        return self.name or self.container.name or self.container.id

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the API, turning "the container is gone" into one clear error, and an authorization failure
        into another."""
        try:
            return fn(*args, **kwargs)
        except (NotFoundError, BadRequestError) as exc:
            state = container_state(self.client, self.id)
            if state == "gone":
                raise self.gone() from None
            if state == "unauthorized":
                raise NotAuthorized(
                    f"the backend refused access to container {self.label} ({self.id}): {exc} "
                    "This is an authorization failure, not a missing container: check the credentials' policy and "
                    "CELLBOX_PROJECT."
                ) from None
            raise

    def gone(self) -> SandboxGone:
        """The error for a container that expired or was deleted."""
        container = f"{self.label} ({self.id})"
        return SandboxGone(
            f"container {container} has expired or was deleted. Sandbox.revive() makes a new one with the same data "
            "pushed again.",
            container,
        )
