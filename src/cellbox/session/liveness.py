"""Whether a container is still there: decided by retrieving it, never by a 404 on something else.

OCI answers 404 NotAuthorizedOrNotFound when authorization fails ([Obs], docs/CLOUD.md), so
that answer is checked against a listing, and an authorization failure is told apart from a missing container.
"""

from __future__ import annotations

from ..api import APIError, AuthenticationError, BadRequestError, Client, NotFoundError, PermissionDeniedError

GONE_STATUSES = ("expired", "deleted")
OCI_AUTH_OR_MISSING = "NotAuthorizedOrNotFound"


def container_state(client: Client, container_id: str) -> str:
    """`gone` (expired or deleted), `present`, `unauthorized` or `unknown`, decided by retrieving the container.

    Never by an error on something else, nor by any message's wording (a missing file's 404 names the container
    too: "File cfile_… not found on container cntr_…"). A 404 NotAuthorizedOrNotFound (OCI's answer when
    authorization fails, too) is checked against a listing: a container the backend lists no more is gone."""
    try:
        container = client.containers.retrieve(container_id)
    except NotFoundError as exc:
        if exc.code != OCI_AUTH_OR_MISSING:
            return "gone"
        return _listed_state(client, container_id)
    except BadRequestError as exc:  # "Container is expired." answers every use of an expired container
        return "gone" if exc.code == "container_expired" or "expired" in str(exc.message).lower() else "unknown"
    except (AuthenticationError, PermissionDeniedError):
        return "unauthorized"
    except APIError:  # can't tell: the original error stands
        return "unknown"
    return "gone" if container.status in GONE_STATUSES else "present"


def _listed_state(client: Client, container_id: str, pages: int = 10) -> str:
    """Whether the listing shows the container (a 404 NotAuthorizedOrNotFound on it says neither)."""
    try:
        for n, box in enumerate(client.containers.list(order="desc", limit=100)):
            if box.id == container_id:
                return "gone" if box.status in GONE_STATUSES else "unauthorized"
            if n >= pages * 100:
                return "unknown"
    except (NotFoundError, AuthenticationError, PermissionDeniedError):
        return "unauthorized"
    except APIError:
        return "unknown"
    return "gone"
