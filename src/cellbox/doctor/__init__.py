"""`cellbox doctor`: the configured backend checked end to end, each check with what to do when it fails.

    checks = cellbox.doctor.run()          # a list of Check: name, status, detail, next_step, data
    ok = cellbox.doctor.passed(checks)

The checks run in order; one whose prerequisite did not pass is `skipped` with why (`NEEDS` declares them):

    configuration  base URL, auth kind, key, project (OCI), region in OCI's documented list, model
    auth           one cheap authenticated call (a one-item page of the container list); this clock against
                   the service's `Date` (signed requests fail on a skewed clock)
    project        the OpenAI-Project header accepted, or said to be missing (OCI requires one [Doc])
    model          the model offered (`GET /models/{model}`), before a container is made for it
    create         a container, deleted at the end whatever happens
    upload         a file named `doctor/probe/x.txt`: the `path` the service answered (OpenAI may prefix the
                   name and drop its folders [Doc/Inf]; cellbox finds uploads by that path)
    listing        code writes a file: how long until the file list shows it with its size ([Obs] listings lag);
                   the code goes through the configured binding, and an id the service refuses in the tool is met
                   as a cell meets it (the rest goes through an auto container)
    binding        how cells reach their container (CELLBOX_CONTAINER_BINDING), as the listing showed it: the code
                   ran in the container it should have; a refused id warns, with the setting that avoids it
    run            one cell through cellbox's real run protocol (`Sandbox.run`: upload, loader, result record)
    parameters     which bounds of the request the backend took: refused ones are what the client remembered
                   (it sends a request again once without a refused field); `reasoning` is tried by `listing`
    retrieve       the container found again by its name
    delete         deleted, and confirmed: retrieving it says it is gone

From `create` on, the checks cost money on a cloud service (`BILLED`); `run(billed=False)` (`cellbox doctor
--no-run`) runs the first four only. A check passes only on a request that succeeded.

Statuses: `pass`, `warn` (works, with something to know or change), `fail`, `skipped`. Nothing shown carries a
secret: every text goes through `cellbox.common.redact` with the configured key. The sources of what each check expects
are in docs/CLOUD.md ([Doc] documented, [Obs] reported, [Inf] to be found out here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..api import Settings
from .advice import next_step
from .checks import FAIL, PASS, SKIPPED, WARN, Check, Checkup
from .checks import PARAMETERS as PARAMETERS  # the request bounds it checks, read by tests from here

__all__ = ["BILLED", "CHECKS", "NEEDS", "Check", "passed", "run"]

_WHY = {FAIL: "failed", SKIPPED: "was skipped"}

# The checks in the order they run, and what each needs to have passed (or warned) first.
NEEDS: dict[str, tuple[str, ...]] = {
    "configuration": (),
    "auth": ("configuration",),
    "project": ("configuration",),
    "model": ("auth", "project"),
    "create": ("auth", "project", "model"),
    "upload": ("create",),
    "listing": ("create",),
    "binding": ("listing",),
    "run": ("create",),
    "parameters": ("create",),
    "retrieve": ("create",),
    "delete": ("create",),
}
CHECKS = tuple(NEEDS)


def passed(checks: Sequence[Check]) -> bool:
    """Whether every check passed (a warning counts as passing; a failure or a skipped check does not)."""
    return all(check.status in (PASS, WARN) for check in checks)


# The checks that cost money on a cloud service: one container (billed as a code interpreter session where the
# service bills them) and up to three model calls (billed tokens); `run(billed=False)` leaves them out.
BILLED = ("create", "upload", "listing", "binding", "run", "parameters", "retrieve", "delete")


def run(settings: Settings | None = None, *, billed: bool = True, **client_options: Any) -> list[Check]:
    """Run every check against `settings` (default: the configured backend, the local server when nothing is
    configured; started if needed); with `billed=False` only those that cost nothing (`BILLED` are skipped).
    `client_options` go to `Client` (e.g. `http_client=` in tests). The container made for the checks is always
    deleted."""
    checkup = Checkup(settings, client_options)
    results: dict[str, Check] = {}
    steps: dict[str, Callable[[], Check]] = {
        "configuration": checkup.configuration,
        "auth": checkup.auth,
        "project": checkup.project,
        "model": checkup.model_offered,
        "create": checkup.create,
        "upload": checkup.upload,
        "listing": checkup.listing,
        "binding": checkup.binding,
        "run": checkup.run_cell,
        "parameters": checkup.parameters,
        "retrieve": checkup.retrieve,
        "delete": checkup.delete,
    }
    try:
        for name in CHECKS:
            if not billed and name in BILLED:
                results[name] = Check(name, SKIPPED, "not run: only the free checks were asked for (--no-run)")
                continue
            blocked = [n for n in NEEDS[name] if results[n].status not in (PASS, WARN)]
            if blocked:
                why = ", ".join(f"{n} {_WHY[results[n].status]}" for n in blocked)
                results[name] = Check(name, SKIPPED, f"not run: {why}")
                continue
            try:
                results[name] = steps[name]()
            except Exception as exc:  # a check that broke is a failure of that check, never the end
                results[name] = Check(name, FAIL, f"{type(exc).__name__}: {exc}", next_step(exc, checkup.settings))
    finally:
        checkup.close()
    return [checkup.redacted(results[name]) for name in CHECKS]
