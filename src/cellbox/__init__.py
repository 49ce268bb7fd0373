"""cellbox: run notebook cells in sandboxes reached through the OpenAI-compatible Containers API."""

from __future__ import annotations

__version__ = "0.1.0"
