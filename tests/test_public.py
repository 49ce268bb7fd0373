"""The public surface: everything a user may catch or use is reachable from `cellbox` itself."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import cellbox

ROOMS = ("api", "boundary", "session", "pool")
# Raised and caught inside cellbox, never reaching a user: what they mean is said in words where they are caught.
# Caught inside the session: a refused container id never leaves `Sandbox.run`, which moves to an auto container.
INTERNAL = {"cellbox.session.parquet_pages.Unreadable", "cellbox.session.binding.IdRefused"}


def test_every_public_name_resolves() -> None:
    for name in cellbox.__all__:
        assert getattr(cellbox, name) is not None, name
    with pytest.raises(AttributeError):
        cellbox.NoSuchThing  # noqa: B018


def test_every_error_a_session_can_raise_is_exported() -> None:
    """Each exception class defined in the client, the boundary, the session or the pool (not private) is
    `cellbox.<Name>`, so a user can `except cellbox.TimeLimit`."""
    missing = []
    for room in ROOMS:
        package = importlib.import_module(f"cellbox.{room}")
        modules = [package] + [
            importlib.import_module(f"cellbox.{room}.{info.name}") for info in pkgutil.iter_modules(package.__path__)
        ]
        for module in modules:
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not name.startswith("_")
                    and getattr(cellbox, name, None) is not value
                    and f"{module.__name__}.{name}" not in INTERNAL
                ):
                    missing.append(f"{module.__name__}.{name}")
    assert not missing, f"exceptions not exported from cellbox: {missing}"


def test_the_errors_share_one_root() -> None:
    for name in cellbox.__all__:
        value = getattr(cellbox, name)
        if inspect.isclass(value) and issubclass(value, Exception) and not issubclass(value, Warning):
            assert issubclass(value, cellbox.CellboxError), name
    assert issubclass(cellbox.Interrupted, KeyboardInterrupt)  # stopping a cell stops it
