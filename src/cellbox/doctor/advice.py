"""What `cellbox doctor` tells the user to change after an error: one next step per kind of error, worded for
the backend and auth in use (OCI, for one, answers 404 NotAuthorizedOrNotFound when authorization fails).
"""

from __future__ import annotations

from ..api import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Settings,
)
from ..session.liveness import OCI_AUTH_OR_MISSING

__all__ = ["API_KEY_POLICY", "MODEL_STEP", "missing_project", "next_step"]

API_KEY_POLICY = (
    "allow any-user to use generative-ai-family in compartment <compartment> "
    "where request.principal.type='generativeaiapikey'"
)

MODEL_STEP = (
    "set CELLBOX_MODEL to a model that supports the code_interpreter tool and follows instructions (OpenAI: e.g. "
    "gpt-5 or gpt-4.1; OCI: e.g. openai.gpt-oss-120b)"
)


def missing_project(exc: Exception) -> bool:
    """A 400 that says the request lacks a project (OCI's MissingParameter for the OpenAI-Project header)."""
    return isinstance(exc, BadRequestError) and "project" in str(exc.message).lower()


def next_step(exc: Exception, settings: Settings | None) -> str:
    """What to change after `exc`, in words."""
    oci = settings is not None and (settings.backend == "oci" or bool(settings.project))
    iam = settings is not None and settings.auth.startswith("oci_")
    if isinstance(exc, APIConnectionError):
        return (
            "check CELLBOX_BASE_URL (or CELLBOX_OCI_REGION), the network and any proxy; for the local server, run "
            "`cellbox serve`"
        )
    if isinstance(exc, APIResponseValidationError):
        return "CELLBOX_BASE_URL does not point at the API (it must end in /v1; OCI's in /openai/v1)"
    if isinstance(exc, AuthenticationError):
        if iam:
            return (
                "check the OCI config (OCI_CONFIG_FILE, OCI_CONFIG_PROFILE): user, key file and fingerprint; for "
                "oci_session run `oci session refresh`"
            )
        return "check CELLBOX_API_KEY: the service did not accept it (an OpenAI key, or an OCI Generative AI API key)"
    if isinstance(exc, (PermissionDeniedError, NotFoundError)) and (
        oci or getattr(exc, "code", None) == OCI_AUTH_OR_MISSING
    ):
        who = (
            f"an IAM policy such as `{API_KEY_POLICY}`"
            if not iam
            else "an IAM policy letting your group or dynamic group `use generative-ai-family` in the compartment"
        )
        return (
            "OCI answers 404 NotAuthorizedOrNotFound when authorization fails: check CELLBOX_API_KEY (or the IAM "
            f"identity), that it is allowed by {who}, and that CELLBOX_PROJECT is a project of that compartment "
            "and region"
        )
    if isinstance(exc, PermissionDeniedError):
        return "the key lacks permission for containers: give it the Containers / code interpreter permission"
    if isinstance(exc, NotFoundError):
        return "the base URL does not serve /containers: check CELLBOX_BASE_URL (it must end in /v1)"
    if isinstance(exc, RateLimitError):
        return (
            "the service is rate limiting (100 container requests a minute on OpenAI) or its memory pool is full "
            "(64 GB a tenancy on OCI): wait, or delete containers with `cellbox rm`"
        )
    if isinstance(exc, APIStatusError) and exc.status_code >= 500:
        return "the service failed: try again later (the request id above helps its support)"
    if isinstance(exc, BadRequestError) and "reasoning" in f"{exc.param} {exc.message}".lower():
        return (
            "the model refused the reasoning effort: set CELLBOX_REASONING_EFFORT to one it takes with the "
            "code_interpreter tool (low works on every reasoning model), or unset it"
        )
    if isinstance(exc, BadRequestError):
        return "the service refused the request as shown; check CELLBOX_MODEL and the settings `cellbox config` shows"
    return "see the message above; CELLBOX_DEBUG=1 with the command gives a traceback"
