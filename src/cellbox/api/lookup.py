"""Finding a container by id or by name: the one lookup the command line, sandboxes and the sidebar share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CellboxError, NotFoundError, ValidationError
from .operations import is_plain_id
from .records import Container

if TYPE_CHECKING:
    from .client import Client

__all__ = ["AmbiguousName", "NoSuchContainer", "find_container"]

LIVE = (None, "running", "active")


class NoSuchContainer(CellboxError, LookupError):
    """No container has that id or name."""


class AmbiguousName(CellboxError, LookupError):
    """Several containers share the name, and picking one would be a guess."""


def find_container(client: Client, id_or_name: str, *, running_only: bool = False, unique: bool = False) -> Container:
    """The container with this id, else the newest one with this name (or, with `unique`, the only one).

    A name that can't be an id (`my box`, `a/b`) is only looked up by name: it never goes into a URL path."""
    if not isinstance(id_or_name, str) or not id_or_name.strip():
        raise ValidationError(f"give a container id or name; got {id_or_name!r}")
    if is_plain_id(id_or_name):
        try:
            box = client.containers.retrieve(id_or_name)
            if not running_only or box.status in LIVE:
                return box
        except NotFoundError:
            pass
    named = [
        box
        for box in client.containers.list(name=id_or_name, order="desc")
        if box.name == id_or_name and (not running_only or box.status in LIVE)
    ]
    if unique and len(named) > 1:
        ids = ", ".join(box.id for box in named)
        raise AmbiguousName(f"{len(named)} containers are named {id_or_name!r} ({ids}); give the id.")
    if not named:
        raise NoSuchContainer(f"no container with id or name {id_or_name!r}; `cellbox ls` lists them.")
    return named[0]
