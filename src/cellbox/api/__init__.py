"""A thin, fast client for the OpenAI-compatible Containers API (OCI Generative AI, OpenAI, or any server
that speaks it), over httpx. `Client` and `AsyncClient` share one implementation; objects keep unknown fields;
errors are one typed tree (see `cellbox.api.errors`).
"""

from __future__ import annotations

from .auth import BearerAuth, OCIAuth
from .base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, RetryPolicy
from .client import AsyncClient, Client
from .config import Settings, load_settings
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CellboxError,
    ConfigurationError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    ValidationError,
)
from .objects import (
    CodeInterpreterCall,
    Container,
    ContainerFile,
    ContainerFileCitation,
    Deleted,
    File,
    ImageOutput,
    LogsOutput,
    Model,
    Page,
    Response,
    ResponseEvent,
)
from .operations import MEMORY_LIMITS

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MEMORY_LIMITS",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BearerAuth",
    "CellboxError",
    "Client",
    "CodeInterpreterCall",
    "ConfigurationError",
    "ConflictError",
    "Container",
    "ContainerFile",
    "ContainerFileCitation",
    "Deleted",
    "File",
    "ImageOutput",
    "InternalServerError",
    "LogsOutput",
    "Model",
    "NotFoundError",
    "OCIAuth",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "Response",
    "ResponseEvent",
    "RetryPolicy",
    "Settings",
    "UnprocessableEntityError",
    "ValidationError",
    "load_settings",
]
