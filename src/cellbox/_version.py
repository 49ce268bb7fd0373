"""cellbox's version: read by the client (its User-Agent) without importing anything else."""

__version__ = "0.1.0"
