"""Finding a container by id or by name: the one lookup the command line, sandboxes and the sidebar share.

A name means one live container: creating a second live container of a name is refused (`NameTaken`), and a name
that several live containers share anyway (made by another client, or a race) is an error listing their ids
(`AmbiguousName`), never a guess. Gone containers (expired, deleted) keep their names in listings; a name is
looked up among them only when no live container has it.
"""

from __future__ import annotations

import difflib
import itertools
from typing import TYPE_CHECKING

from ..common import text
from .errors import CellboxError, NotFoundError, ValidationError
from .objects import Container
from .operations import is_plain_id

if TYPE_CHECKING:
    from .client import Client

__all__ = ["AmbiguousName", "NameTaken", "NoSuchContainer", "find_container", "live_named", "similar_names"]

LIVE = text.LIVE  # the statuses of a live container
SIMILAR_LOOKED_AT = 1000  # live containers whose names a typo is compared with (a listing's first pages)


class NoSuchContainer(CellboxError, LookupError):
    """No container has that id or name."""


class AmbiguousName(CellboxError, LookupError):
    """Several live containers share the name, and picking one would be a guess."""


class NameTaken(CellboxError, ValueError):
    """A live container already has the name a new one was to get."""

    def __init__(self, message: str, container: Container) -> None:
        super().__init__(message)
        self.container = container


def live_named(client: Client, name: str) -> list[Container]:
    """The live containers named exactly `name`, newest first."""
    return [box for box in client.containers.list(name=name, order="desc") if box.name == name and box.status in LIVE]


def similar_names(client: Client, name: str, most: int = 3) -> list[str]:
    """The names of live containers close to `name` (a typo's likely meaning), closest first."""
    boxes = itertools.islice(client.containers.list(order="desc"), SIMILAR_LOOKED_AT)
    # Only names that print as they read: a name is anyone's to choose, and this one goes into an error message.
    names = {box.name for box in boxes if box.name and box.name.isprintable() and box.status in LIVE}
    return difflib.get_close_matches(name, sorted(names), n=most, cutoff=0.6)


def ambiguous(name: str, boxes: list[Container]) -> AmbiguousName:
    ids = ", ".join(box.id for box in boxes)
    return AmbiguousName(
        f"{len(boxes)} running containers are named {name!r} ({ids}); give the id, and delete the ones you don't "
        "need (`cellbox rm ID`)."
    )


def find_container(client: Client, id_or_name: str, *, running_only: bool = False, unique: bool = True) -> Container:
    """The container with this id, else the live one with this name, else (unless `running_only`) the newest gone
    one with this name. Several live ones with the name: `AmbiguousName` (with `unique=False`, the newest).

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
    named = [box for box in client.containers.list(name=id_or_name, order="desc") if box.name == id_or_name]
    live = [box for box in named if box.status in LIVE]
    if unique and len(live) > 1:
        raise ambiguous(id_or_name, live)
    if live:
        return live[0]
    if named and not running_only:
        return named[0]
    raise NoSuchContainer(f"no container with id or name {id_or_name!r}; `cellbox ls` lists them.")
