"""The checks `cellbox doctor` runs, one method each of `Checkup`, which holds what they hand on to each other:
the settings and client `configuration` made, the container `create` made, the request bounds sent so far, and the
binding code ran through (`listing` finds it, `run` uses it, `binding` says it).

Each check returns a `Check`; one that raises is a failure of that check (`cellbox.doctor` runs them, in order).
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import email.utils
import os
import time
import uuid
import warnings
from typing import Any

from ..api import APIError, BadRequestError, CellboxError, Client, Container, NotFoundError, Response, Settings
from ..api.config import _OCI_HOST, OCI_REGIONS, RegionWarning
from ..api.lookup import find_container
from ..common import isolation
from ..common.polling import Backoff
from ..common.redact import redact
from ..session import backend, binding, protocol
from ..session.errors import LoaderMismatch, RunFailed
from ..session.liveness import container_state
from ..session.remote_files import LISTING_WAIT
from ..session.sandbox import Sandbox
from .advice import MODEL_STEP, missing_project, next_step

__all__ = ["FAIL", "PARAMETERS", "PASS", "SKIPPED", "WARN", "Check", "Checkup"]

PASS, WARN, FAIL, SKIPPED = "pass", "warn", "fail", "skipped"

PROBE_NAME = "doctor/probe/x.txt"
WRITTEN = "/mnt/data/doctor/written.txt"
LISTING_GIVE_UP = 60.0  # seconds: a file written by code that isn't listed by then is a failure
RUN_TIMEOUT = 300.0
HARMLESS = "nothing to do"
SKEW_LIMIT = 60.0  # seconds this clock may be off the service's before it is said (OCI signatures allow 5 minutes)
EFFORT_WITH_TOOLS = "cannot be used with reasoning.effort"  # gpt-5's refusal of `minimal` with hosted tools
# The request bounds cellbox sends when it runs a cell (protocol.response_options), and what a refusal costs.
PARAMETERS: dict[str, str] = {
    "tool_choice": "the model isn't told to use the python tool, so it may answer without running the cell "
    "(cellbox then asks once more)",
    "max_tool_calls": "the model may run code again after an error; cellbox's runtime refuses a second start, so "
    "a cell still runs once",
    "parallel_tool_calls": "the model may make several calls at once; cellbox still starts a cell once",
    "store": "nothing to do: responses are not kept anyway",
    "background": "cells run in the foreground: an interrupt or time limit can't cancel the remote code",
    "stream": "nothing to do: a cell's end is noticed by polling, from a few milliseconds to a second later",
    "reasoning": "nothing to do: cells are asked without a reasoning effort (CELLBOX_REASONING_EFFORT has no "
    "effect on this model)",
    "max_output_tokens": "nothing to do: replies are not bounded, each cell is still one short call",
}


@dataclasses.dataclass
class Check:
    """One row of the report: `status` is pass, warn, fail or skipped; `next_step` says what to change."""

    name: str
    status: str
    detail: str
    next_step: str | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Checkup:
    """The checks against `settings` (None: the configured backend), with a client made with `client_options`."""

    def __init__(self, settings: Settings | None, client_options: dict[str, Any]) -> None:
        self.settings = settings
        self.client_options = client_options
        self.client: Client | None = None
        self.model: str | None = None
        self.container: Container | None = None
        self.deleted = False
        self.auth_error: APIError | None = None
        self.auth_passed = False
        self.tried: set[str] = set()  # request parameters sent (the client remembers which were refused)
        self.secrets: list[str] = []
        # With the auto binding (configured, or taken after the service refused the id): the container code runs
        # in, made by the chain's first response, and the chain's last response.
        self.auto_container: Container | None = None
        self.chain: str | None = None
        self.id_refusal: str | None = None  # what the service said refusing the id in the tool
        self.ran_in: set[str] = set()  # the containers the listing's call said it ran in

    def redacted(self, check: Check) -> Check:
        """`check` with the configured key taken out of every text it shows."""
        return Check(
            check.name,
            check.status,
            redact(check.detail, self.secrets),
            redact(check.next_step, self.secrets) if check.next_step else None,
            {k: redact(v, self.secrets) if isinstance(v, str) else v for k, v in check.data.items()},
        )

    def close(self) -> None:
        """The containers made for the checks deleted (whatever happened), the auto chain's last response too, and
        the client closed."""
        if self.client is not None:
            if self.container is not None and not self.deleted:
                with contextlib.suppress(CellboxError):
                    self.client.containers.delete(self.container.id)
            if self.auto_container is not None:
                with contextlib.suppress(CellboxError):
                    self.client.containers.delete(self.auto_container.id)
            if self.chain is not None:
                with contextlib.suppress(CellboxError):
                    self.client.responses.delete(self.chain)
            self.client.close()

    @property
    def code_container(self) -> Container | None:
        """The container the checks' code runs in: the auto one where the binding is auto, else the one made."""
        return self.auto_container or self.container

    # --- the checks ---------------------------------------------------------------------------------------------

    def configuration(self) -> Check:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RegionWarning)  # said in this check's own words below
                settings = self.settings or backend.settings()
        except CellboxError as exc:
            step = "fix the setting named above (`cellbox config` shows all)"
            if isolation.missing() is not None:  # no backend configured, and no local server possible here
                step = "configure a cloud backend, or make the local server possible here: the line above says how"
            return Check("configuration", FAIL, str(exc), step)
        self.settings = settings
        self.secrets = [settings.api_key] if settings.api_key else []
        said = [f"{settings.backend} backend at {settings.base_url}", f"auth {settings.auth}"]
        data: dict[str, Any] = {"backend": settings.backend, "base_url": settings.base_url, "auth": settings.auth}
        if settings.auth == "api_key" and not settings.api_key:
            return Check(
                "configuration",
                FAIL,
                "; ".join([*said, "no API key"]),
                "set CELLBOX_API_KEY (an OCI Generative AI API key, or an OpenAI key), or choose IAM auth with "
                "CELLBOX_AUTH (oci_user_principal, oci_session, oci_instance_principal, oci_resource_principal)",
                data,
            )
        if settings.backend == "oci" and not settings.project:
            return Check(
                "configuration",
                FAIL,
                "; ".join([*said, "no project"]) + " (nothing was sent)",
                "set CELLBOX_PROJECT to the OCID of a Generative AI project: OCI requires one on every request "
                "(sent as the OpenAI-Project header)",
                data,
            )
        if settings.project:
            said.append(f"project {settings.project}")
        identity = oci_identity(settings)
        if identity:
            said.append(identity)
        warnings_: list[tuple[str, str]] = []
        region = _OCI_HOST.match(settings.base_url or "")
        if region is not None:
            data["region"] = region.group(1)
            if region.group(1) not in OCI_REGIONS:
                warnings_.append(
                    (
                        f"region {region.group(1)} is not one OCI documents for the Responses and Containers APIs",
                        f"use CELLBOX_OCI_REGION with one of {', '.join(OCI_REGIONS)}",
                    )
                )
            project_region = ocid_region(settings.project or "")
            if project_region is not None and project_region != region.group(1):
                warnings_.append(
                    (
                        f"the project is in {project_region}, the URL in {region.group(1)}",
                        f"use CELLBOX_OCI_REGION={project_region}, or a project of {region.group(1)}: OCI answers "
                        "404 NotAuthorizedOrNotFound for a project of another region",
                    )
                )
        try:
            self.model = backend.model_for(settings)
            said.append(f"model {self.model}")
        except CellboxError:
            warnings_.append(
                ("no model: code can't run", "set CELLBOX_MODEL to a model that has the code_interpreter tool")
            )
        data["model"] = self.model
        try:
            self.client = Client(settings=settings, **self.client_options)
        except CellboxError as exc:
            return Check("configuration", FAIL, "; ".join([*said, str(exc)]), str(exc), data)
        if warnings_:
            detail = "; ".join(said + [w for w, _ in warnings_])
            return Check("configuration", WARN, detail, "; ".join(s for _, s in warnings_), data)
        return Check("configuration", PASS, "; ".join(said), None, data)

    def auth(self) -> Check:
        assert self.client is not None
        try:
            self.client.containers.list_page(limit=1)
        except APIError as exc:
            self.auth_error = exc
            if missing_project(exc):
                return Check("auth", FAIL, f"the service wants a project first: {exc}", "see project")
            step = next_step(exc, self.settings)
            skew = self._clock_skew()
            if skew is not None and abs(skew) > SKEW_LIMIT and self._signed():
                step = f"{_skew_said(skew)}: signed requests fail on a skewed clock; sync it (NTP). Else: {step}"
            return Check("auth", FAIL, str(exc), step)
        self.auth_passed = True
        detail = f"{self._auth_kind()} accepted (listing containers)"
        organization = self.client.answer_headers.get("openai-organization")
        if organization:
            detail += f", as organization {organization}"
        skew = self._clock_skew()
        data = {"clock_skew_s": None if skew is None else round(skew, 1)}
        if skew is not None and abs(skew) > SKEW_LIMIT:
            return Check(
                "auth",
                WARN,
                f"{detail}; {_skew_said(skew)}",
                "sync this machine's clock (NTP): OCI request signatures fail when it is 5 minutes off",
                data,
            )
        return Check("auth", PASS, detail, data=data)

    def _clock_skew(self) -> float | None:
        """Seconds this machine's clock is ahead of the service's (its last answer's `Date`), if it said."""
        assert self.client is not None
        try:
            said = email.utils.parsedate_to_datetime(self.client.answer_headers.get("date", ""))
        except (TypeError, ValueError):
            return None
        return time.time() - said.timestamp()

    def _signed(self) -> bool:
        return self.settings is not None and self.settings.auth.startswith("oci_")

    def _oci(self) -> bool:
        return self.settings is not None and self.settings.backend == "oci"

    def project(self) -> Check:
        assert self.settings is not None
        project = self.settings.project
        if not self.auth_passed:
            if self.auth_error is not None and missing_project(self.auth_error):
                return Check(
                    "project",
                    FAIL,
                    "the service refused a request without a project (OpenAI-Project)",
                    "set CELLBOX_PROJECT to the OCID of a Generative AI project (OCI requires one)",
                )
            return Check("project", SKIPPED, "not run: auth failed (a wrong project fails there too)")
        if project:
            detail = f"OpenAI-Project {project} accepted (the container listing answered with it)"
            return Check("project", PASS, detail, data={"project": project})
        return Check("project", PASS, "none set, and none asked for (OpenAI uses the key's default project)")

    def model_offered(self) -> Check:
        assert self.client is not None
        if self.model is None:
            return Check("model", WARN, "no model configured: code can't run (see configuration)", MODEL_STEP)
        try:
            found = self.client.models.retrieve(self.model)
        except NotFoundError as exc:
            if exc.code == "model_not_found":
                where = " in this region (not every model is in every region)" if self._oci() else ""
                return Check("model", FAIL, f"the service has no model {self.model}{where}: {exc}", MODEL_STEP)
            return Check(
                "model",
                WARN,
                f"not checked: the service doesn't say which models it has (GET /models/{self.model}: "
                f"{exc.status_code}); listing and run show whether {self.model} runs code",
            )
        return Check(
            "model",
            PASS,
            f"{found.id} is offered (owned by {found.owned_by or '-'}); listing and run show that it runs code",
            data={"model": found.id},
        )

    def create(self) -> Check:
        assert self.client is not None
        name = f"cellbox-doctor-{uuid.uuid4().hex[:8]}"
        self.container = box = self.client.containers.create(name)
        detail = f"{box.id} ({box.name}), status {box.status}, memory {box.memory_limit or '-'}"
        return Check("create", PASS, detail, data={"container_id": box.id, "name": box.name})

    def upload(self) -> Check:
        assert self.client is not None and self.container is not None
        record = self.client.containers.files.create(self.container.id, b"cellbox doctor\n", filename=PROBE_NAME)
        path = record.path or ""
        data = {"uploaded_as": PROBE_NAME, "path": record.path}
        if path == f"/mnt/data/{PROBE_NAME}":
            where = "kept as named, so a cell's request is uploaded while the model is asked to run it"
        elif path.endswith(f"/{PROBE_NAME}"):
            where = "kept its folders"
        elif path.endswith("x.txt"):
            where = "its folders were dropped; cellbox finds uploads by the path answered and moves them into place"
        else:
            where = "an unexpected place; cellbox finds uploads by the path answered"
        return Check("upload", PASS, f"{PROBE_NAME} landed at {path or '(no path answered)'}: {where}", data=data)

    def listing(self) -> Check:
        assert self.client is not None and self.container is not None and self.settings is not None
        if self.model is None:
            return Check("listing", SKIPPED, "not run: no model to run code (see configuration)")
        code = (
            "import os\n"
            "os.makedirs('/mnt/data/doctor', exist_ok=True)\n"
            f"open({WRITTEN!r}, 'w').write('written by cellbox doctor\\n')\n"
        )
        reading = None
        for _ in (1, 2):  # a reply without a call is asked again once, as a cell's run is
            response = self._respond(code)
            reading = protocol.read_response(response, code.strip())
            if not reading.retry:
                break
        assert reading is not None
        if reading.foreign or not reading.started:
            said = "; ".join(reading.problems) or "the model ran other code"
            return Check("listing", FAIL, f"the code that writes the file did not run: {said}", MODEL_STEP)
        written = time.monotonic()
        listed: float | None = None
        sized: float | None = None
        pause = Backoff(LISTING_GIVE_UP, first=0.05, most=1.0)
        box = self.code_container
        assert box is not None
        while True:
            for record in self.client.containers.files.list(box.id):
                if (record.path or "").endswith("doctor/written.txt"):
                    listed = listed or time.monotonic()
                    if record.bytes is not None:
                        sized = time.monotonic()
            if sized is not None or not pause.wait():
                break
        if listed is None:
            return Check(
                "listing",
                FAIL,
                f"a file written by code ({WRITTEN}) was not listed within {LISTING_GIVE_UP:.0f}s",
                "files a cell writes won't come back as artifacts; check the service's status page and try again later",
            )
        ms = round((listed - written) * 1000)
        data = {"listed_ms": ms, "size_ms": None if sized is None else round((sized - written) * 1000)}
        detail = f"{WRITTEN} listed {ms} ms after the code wrote it"
        if sized is None:
            return Check("listing", WARN, detail + ", its size still null", "nothing to change: sizes show as -", data)
        if sized - written > LISTING_WAIT:
            return Check(
                "listing",
                WARN,
                detail + f", with its size after {data['size_ms']} ms",
                f"cellbox waits up to {LISTING_WAIT:.0f}s for a listing; files slower than that are reported as "
                "missing: pull them later",
                data,
            )
        return Check("listing", PASS, detail + f", with its size after {data['size_ms']} ms", data=data)

    def _respond(self, code: str) -> Response:
        """A response that runs `code` as a cell's run sends it, through the configured binding; a service that
        refuses the container's id in the tool is met as a cell meets it: the rest goes through an auto container."""
        assert self.client is not None and self.container is not None and self.settings is not None
        assert self.model is not None
        if self.client.container_binding == "auto" and self.auto_container is None:
            self._start_auto()
        # What a cell's run sends (low effort unless configured), so what is refused here is what cells meet.
        options = protocol.response_options(
            reasoning_effort=self.settings.reasoning_effort, background=False, store=self.chain is not None
        )
        try:
            response = self.client.responses.create(
                model=self.model,
                input=protocol.run_prompt(code),
                container=self.container.id if self.auto_container is None else binding.auto_tool(None),
                previous_response_id=self.chain,
                **options,
            )
        except BadRequestError as exc:
            if self.auto_container is not None or not binding.refuses_ids(exc):
                raise
            self.id_refusal = exc.message
            self.client.container_binding = "auto"  # the run check then goes the way cells would
            return self._respond(code)
        self.tried |= {
            "tool_choice",
            "max_tool_calls",
            "parallel_tool_calls",
            "store",
            "reasoning",
            "max_output_tokens",
        }
        self.ran_in |= binding.ran_in(response)
        if self.chain is not None and binding.ran_in(response):
            with contextlib.suppress(CellboxError):  # the chain goes on from this one
                self.client.responses.delete(self.chain)
            self.chain = response.id
        return response

    def _start_auto(self) -> None:
        assert self.client is not None and self.model is not None
        self.auto_container, self.chain = binding.start(self.client, self.model, None)

    def binding(self) -> Check:
        """How cells reach their container (CELLBOX_CONTAINER_BINDING), as the listing's response showed it."""
        assert self.client is not None and self.container is not None and self.settings is not None
        box = self.code_container
        assert box is not None
        configured = self.settings.container_binding
        data = {"configured": configured, "used": self.client.container_binding, "container_id": box.id}
        if self.ran_in and self.ran_in != {box.id}:
            return Check(
                "binding",
                FAIL,
                f"the code ran in {', '.join(sorted(self.ran_in))}, not in {box.id}",
                "cells would not find what earlier cells left: report it to the service; "
                + (
                    "try CELLBOX_CONTAINER_BINDING=id" if configured == "auto" else "try CELLBOX_CONTAINER_BINDING=auto"
                ),
                data,
            )
        if self.id_refusal is not None:
            return Check(
                "binding",
                WARN,
                f"the service refuses a container id in the code_interpreter tool ({self.id_refusal[:200]}); code ran "
                f"in an auto container ({box.id}) made by a first response, as each session's first cell does",
                "set CELLBOX_CONTAINER_BINDING=auto: cells then start on an auto container, without the refused "
                "call and the container made for nothing",
                data,
            )
        if configured == "auto":
            detail = (
                f"auto (CELLBOX_CONTAINER_BINDING=auto): a first response made {box.id} and the next, chained from "
                "it, ran in it"
            )
        else:
            detail = f"by id: the code ran in {box.id}, the container made with POST /containers"
        return Check("binding", PASS, detail, data=data)

    def run_cell(self) -> Check:
        assert self.client is not None and self.container is not None
        if self.model is None:
            return Check("run", SKIPPED, "not run: no model to run code (see configuration)")
        box = self.code_container
        assert box is not None
        sandbox = Sandbox(self.client, box, model=self.model, chain=self.chain)
        self.chain = None  # the sandbox's now: it deletes the chain's last response when closed
        try:
            started = time.monotonic()
            result = sandbox.run("print('cellbox doctor')\n6 * 7", timeout=RUN_TIMEOUT)
            took = time.monotonic() - started
            # Sent with a response that was answered: what wasn't refused was taken.
            self.tried |= {"tool_choice", "max_tool_calls", "parallel_tool_calls", "store"}
            if self.settings is not None and self.settings.background:  # else not sent (CELLBOX_BACKGROUND=false)
                self.tried |= {"background", "stream"}
        except LoaderMismatch as exc:
            return Check("run", FAIL, str(exc), MODEL_STEP)
        except RunFailed as exc:
            return Check("run", FAIL, str(exc), MODEL_STEP)
        finally:
            sandbox.close()
        value = repr(result.value)
        if not result.ok or "cellbox doctor" not in result.stdout or "42" not in value:
            said = result.error.evalue if result.error else f"stdout {result.stdout!r}, value {value}"
            return Check("run", FAIL, f"the cell ran but did not give what it should: {said}", MODEL_STEP)
        detail = f"ran through the loader in {took:.1f}s: printed 'cellbox doctor', value 42"
        if result.notes:
            detail += f" (notes: {'; '.join(result.notes)})"
        return Check("run", PASS, detail, data={"seconds": round(took, 2), "notes": list(result.notes)})

    def parameters(self) -> Check:
        assert self.client is not None
        if not self.tried:
            return Check("parameters", SKIPPED, "not run: no response was made (see listing and run)")
        refused = sorted(self.client.refused_parameters.get(("/responses", self.model), set()))
        accepted = [name for name in PARAMETERS if name in self.tried and name not in refused]
        untried = [name for name in PARAMETERS if name not in self.tried]
        data = {"accepted": accepted, "refused": refused, "not_tried": untried}
        detail = f"accepted: {', '.join(accepted) or 'none'}"
        if untried:
            detail += f"; not tried: {', '.join(untried)}"
        if not refused:
            return Check("parameters", PASS, detail, data=data)
        detail += f"; refused (left out from then on): {', '.join(refused)}"
        costs = {name: PARAMETERS.get(name, "left out") for name in refused}
        reason = self.client.refusal_reasons.get(("/responses", self.model, "reasoning"), "")
        if "reasoning" in refused and EFFORT_WITH_TOOLS in reason:
            effort = self.settings.reasoning_effort if self.settings else None
            costs["reasoning"] = (
                f"{self.model} refuses reasoning effort {effort or protocol.REASONING_EFFORT!r} with the "
                "code_interpreter tool, so cells are sent without one and it reasons at its default effort (billed as "
                "reasoning tokens): set CELLBOX_REASONING_EFFORT=low, or another effort it takes with tools"
            )
        costly = [name for name in refused if not costs[name].startswith(HARMLESS)]
        if not costly:  # cells work just as well without them
            return Check("parameters", PASS, detail + f" ({HARMLESS})", data=data)
        steps = "; ".join(f"{name}: {costs[name]}" for name in refused)
        return Check("parameters", WARN, detail, steps, data)

    def retrieve(self) -> Check:
        assert self.client is not None and self.container is not None
        name = self.container.name or ""
        found = find_container(self.client, name)
        if found.id != self.container.id:
            return Check(
                "retrieve",
                FAIL,
                f"the name {name} found {found.id}, not {self.container.id}",
                "the service's name filter is not reliable: attach containers by id",
            )
        return Check("retrieve", PASS, f"found {found.id} by its name {name}, status {found.status}")

    def delete(self) -> Check:
        assert self.client is not None and self.container is not None
        box = self.container
        self.client.containers.delete(box.id)
        started = time.monotonic()
        pause = Backoff(10.0, first=0.1, most=1.0)
        while (state := container_state(self.client, box.id)) != "gone":
            if state == "unauthorized" or not pause.wait():
                return Check(
                    "delete",
                    FAIL,
                    f"deleted, but retrieving {box.id} still says {state}",
                    f"delete it with `cellbox rm {box.id}` and check with `cellbox ls`",
                )
        self.deleted = True
        ms = round((time.monotonic() - started) * 1000)
        return Check("delete", PASS, f"deleted {box.id}; retrieving it says it is gone (after {ms} ms)")

    def _auth_kind(self) -> str:
        assert self.settings is not None
        return "the API key" if self.settings.auth == "api_key" else f"{self.settings.auth} auth"


def _skew_said(skew: float) -> str:
    return f"this machine's clock is {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} the service's"


# OCI's region keys, as OCIDs may name a region (ocid1.<type>.<realm>.<region>.<id>), for the agentic regions.
_REGION_KEYS = {
    "iad": "us-ashburn-1",
    "ord": "us-chicago-1",
    "phx": "us-phoenix-1",
    "gru": "sa-saopaulo-1",
    "fra": "eu-frankfurt-1",
    "lhr": "uk-london-1",
    "ruh": "me-riyadh-1",
    "hyd": "ap-hyderabad-1",
    "kix": "ap-osaka-1",
}


def ocid_region(ocid: str) -> str | None:
    """The region an OCID names (its fourth field, a name or a key), when it names one."""
    fields = ocid.split(".")
    if len(fields) < 5 or fields[0] != "ocid1" or not fields[3]:
        return None
    return _REGION_KEYS.get(fields[3].lower(), fields[3].lower())


def oci_identity(settings: Settings) -> str | None:
    """Who signs OCI requests, as the OCI config names them (user and tenancy OCIDs: no secret), for IAM auth."""
    if settings.auth not in ("oci_user_principal", "oci_session"):
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(os.path.expanduser(settings.oci_config_file), encoding="utf-8")
        section = parser[settings.oci_profile]
    except (configparser.Error, KeyError, OSError, UnicodeDecodeError):
        return None
    who = [f"profile {settings.oci_profile}"]
    for key in ("user", "tenancy", "region"):
        if section.get(key):
            who.append(f"{key} {section[key]}")
    return ", ".join(who)
