"""The code cellbox runs inside a container, shipped as files rather than imported."""

from __future__ import annotations

from importlib import resources

SIBLINGS = (
    "cell",
    "capture",
    "values",
    "changes",
    "descriptors",
)  # the runtime's modules, uploaded beside it; it loads each by this name


def container_runtime_source() -> bytes:
    """The exact bytes of the runtime module uploaded into each container."""
    return resources.files(__package__).joinpath("container.py").read_bytes()


def sibling_source(module: str) -> bytes:
    """The exact bytes of one of the modules uploaded beside it (`SIBLINGS`)."""
    return resources.files(__package__).joinpath(f"{module}.py").read_bytes()
