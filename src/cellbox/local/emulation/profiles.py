"""The profiles that make the server behave like a given cloud (`--profile`): each is a set of ServerOptions values
(a field given explicitly wins over its profile's value)."""

from __future__ import annotations

from typing import Any

# What each cloud does that the documented API does not say (docs/CLOUD.md has the sources).
PROFILES: dict[str, dict[str, Any]] = {
    # OpenAI's upload example answers "/mnt/data/<32 hex>-<name>": the service prefixes what it stores.
    "openai": {"upload_names": "prefixed"},
    # OCI's gateway: {"code", "message"} errors with opc-request-id, 404 NotAuthorizedOrNotFound for an
    # authorization failure, and a Generative AI project (the OpenAI-Project header) required on every request.
    # Its background mode (release note of 29 July 2026) streams and resumes as the documented API does, and keeps
    # a background response with store=false temporarily ("background execution requires temporary response
    # storage ... including when store=false"), where OpenAI's needs store=true.
    "oci": {"error_shape": "oci", "require_project": True, "unstored_background": "temporary"},
}
# OCI documents the code_interpreter tool only with {"type": "auto"} containers; whether it refuses a container id
# is not known ([Inf]): this variant does, as the strictest reading of its documentation.
PROFILES["oci-auto"] = {**PROFILES["oci"], "auto_containers_only": True}
