"""The code cellbox runs inside a container, shipped as files rather than imported."""

from __future__ import annotations

from importlib import resources


def container_runtime_source() -> bytes:
    """The exact bytes of the runtime module uploaded into each container."""
    return resources.files(__package__).joinpath("container.py").read_bytes()


def capture_source() -> bytes:
    """The exact bytes of the display-capture module uploaded beside it."""
    return resources.files(__package__).joinpath("capture.py").read_bytes()
