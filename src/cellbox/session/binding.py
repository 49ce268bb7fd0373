"""How a session's code_interpreter tool reaches its container: the binding (`CELLBOX_CONTAINER_BINDING`).

`id` (the default): the container is made with `POST /containers` and each run names it in the tool,
`{"container": "cntr_…"}`.

`auto`: the tool is `{"type": "auto", …}`, as OCI documents it in every example. OpenAI documents that an auto
container "creates a new container or reuses an active container that was used by a previous
`code_interpreter_call` item in the model's context": so the container is made by a first response (`start`), whose
call runs nothing but says the container's id, and every run chains from the last response whose call ran in it
(`previous_response_id`), which the service must keep stored until the next run has chained from it. Files go
through the Containers API on that id, as with `id`. A service that refuses an explicit id in the tool
(`refuses_ids`) turns the client's binding to `auto` (`Sandbox.run` moves the session to an auto container, once).
"""

from __future__ import annotations

import contextlib
import re

from ..api import BadRequestError, CellboxError, Client, Container, Response
from . import protocol
from .errors import RunFailed

__all__ = ["IdRefused", "auto_tool", "refuses_ids", "start"]

# What the first response runs: nothing, but a call is what says which container the service made.
START_CODE = "pass"
START_TIMEOUT = 300.0  # seconds: a new container, and a model that reads one line


class IdRefused(CellboxError):
    """The backend refused an explicit container id in the code_interpreter tool; nothing ran."""

    def __init__(self, refusal: BadRequestError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def refuses_ids(exc: BadRequestError) -> bool:
    """Whether a 400 to a response naming a live container in its tool says the tool may not name one. Its
    wording is not documented anywhere ([Inf]): it has to speak of the container (its `param`, or its message
    with one of the words such a refusal uses) and not of an expired one."""
    param = str(getattr(exc, "param", None) or "")
    message = str(getattr(exc, "message", None) or exc)
    if "expired" in message.lower() or getattr(exc, "code", None) == "container_expired":
        return False
    if "container" in param.lower():
        return True
    return bool(
        re.search(r"\bcontainer", message, re.IGNORECASE)
        and re.search(r"\bauto\b|\bids?\b|support|allow|only|invalid|explicit", message, re.IGNORECASE)
    )


def auto_tool(memory_limit: str | None) -> dict[str, str]:
    """The tool's auto container, of this memory limit when one is known."""
    return {"type": "auto", **({"memory_limit": memory_limit} if memory_limit else {})}


def start(client: Client, model: str, memory_limit: str | None) -> tuple[Container, str]:
    """A new auto container and the stored response that made it (the chain's first): one billed response whose
    call runs nothing. Asked twice at most, as a run is; a response that made no call (or no container) is
    deleted."""
    effort = client.settings.reasoning_effort or protocol.REASONING_EFFORT
    said = "the model did not call the python tool"
    for _ in (1, 2):
        refused = client.refused_parameters.get(("/responses", model), set())
        options = protocol.response_options(
            reasoning_effort=effort, background=False, store=True, bounded="max_output_tokens" not in refused
        )
        response = client.responses.create(
            model=model,
            input=protocol.run_prompt(START_CODE),
            container=auto_tool(memory_limit),
            timeout=START_TIMEOUT,
            **options,
        )
        made = _container_of(response)
        if made is not None:
            try:
                return client.containers.retrieve(made), response.id
            except BaseException:
                _forget(client, response)
                raise
        said = f"the response ended {response.status or 'without a status'} with no python tool call in a container"
        _forget(client, response)
    raise RunFailed(
        f"no auto container could be made: {said}, twice. Check that CELLBOX_MODEL ({model}) supports the "
        "code_interpreter tool."
    )


def ran_in(response: Response) -> set[str]:
    """The containers the response's calls ran in (a call that does not say is left out)."""
    return {call.container_id for call in response.code_interpreter_calls if call.container_id}


def _container_of(response: Response) -> str | None:
    for call in response.code_interpreter_calls:
        if call.container_id:
            return call.container_id
    return None


def _forget(client: Client, response: Response) -> None:
    with contextlib.suppress(CellboxError):
        client.responses.delete(response.id)
