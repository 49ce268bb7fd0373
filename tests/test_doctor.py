"""`cellbox doctor` against real local servers with the openai and oci profiles (every model quirk on, a lagging
listing), and its failures: a wrong key, OCI without a project, a region OCI does not document."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import httpx
import pytest

from cellbox import cli, doctor
from cellbox.api import Client, ConfigurationError, NotFoundError
from cellbox.doctor import checks as doctor_checks
from cellbox.local.testing import RunningServer
from cellbox.session.liveness import container_state

WRONG_KEY = "wrong-key-0123456789abcdef"


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    assert [c.name for c in checks] == list(doctor.CHECKS)
    return {c.name: c for c in checks}


@pytest.mark.cloud_profiles("openai", "oci", "oci-auto")
def test_every_check_passes_against_a_faithful_server(use_cloud_server: str, cloud_server: RunningServer) -> None:
    checks = by_name(doctor.run())

    assert {c.status for c in checks.values()} == {"pass"}, [c.to_dict() for c in checks.values() if c.status != "pass"]
    assert doctor.passed(list(checks.values()))
    path = checks["upload"].data["path"]
    if use_cloud_server == "openai":  # stored as OpenAI's example shows: /mnt/data/<32 hex>-<basename>
        prefix, _, name = path.removeprefix("/mnt/data/").partition("-")
        assert path.startswith("/mnt/data/") and name == "x.txt" and len(prefix) == 32
        assert "folders were dropped" in checks["upload"].detail
    else:
        assert path == "/mnt/data/doctor/probe/x.txt"
        assert "a cell's request is uploaded while the model is asked to run it" in checks["upload"].detail
        assert "OpenAI-Project ocid1.generativeaiproject" in checks["project"].detail
    assert isinstance(checks["listing"].data["listed_ms"], int)
    assert checks["listing"].data["size_ms"] >= checks["listing"].data["listed_ms"]
    # Both take every bound of the request, streaming included (OCI's background mode streams and resumes).
    assert checks["parameters"].data["refused"] == []
    assert set(checks["parameters"].data["accepted"]) == set(doctor.PARAMETERS)
    # The code ran where cells run: in the container made (by id), or in the auto container a first response made.
    binding = checks["binding"].data
    assert binding["configured"] == binding["used"] == ("auto" if use_cloud_server == "oci-auto" else "id")
    made = checks["create"].data["container_id"]
    assert (binding["container_id"] != made) == (use_cloud_server == "oci-auto")
    # The containers made for the checks are gone.
    with Client() as client:
        assert container_state(client, made) == "gone"
        assert container_state(client, binding["container_id"]) == "gone"


@pytest.mark.cloud_profiles("oci-auto")
def test_a_service_refusing_the_container_id_warns_with_the_setting_that_avoids_it(
    use_cloud_server: str, cloud_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", "id")  # a user who didn't set it, on a service that wants auto
    checks = by_name(doctor.run())

    binding = checks["binding"]
    assert binding.status == "warn", binding.to_dict()
    assert "refuses a container id" in binding.detail and "CELLBOX_CONTAINER_BINDING=auto" in (binding.next_step or "")
    assert binding.data["configured"] == "id" and binding.data["used"] == "auto"
    # Everything else went the way cells go after the refusal, and passed.
    others = {name: check.status for name, check in checks.items() if name != "binding"}
    assert set(others.values()) == {"pass"}, [c.to_dict() for c in checks.values() if c.status != "pass"]
    with Client() as client:
        for box in (checks["create"].data["container_id"], binding.data["container_id"]):
            assert container_state(client, box) == "gone"


@pytest.mark.cloud_profiles("oci")
def test_json_output_and_exit_status(
    use_cloud_server: str, cloud_server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["doctor", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(doctor.CHECKS)
    assert {c["status"] for c in report["checks"]} == {"pass"}
    assert cloud_server.token not in out


@pytest.mark.cloud_profiles("openai", "oci")
def test_a_wrong_key_fails_auth_with_the_next_step(
    use_cloud_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CELLBOX_API_KEY", WRONG_KEY)

    assert cli.main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert WRONG_KEY not in out
    checks = by_name(doctor.run())
    assert checks["configuration"].status == "pass"
    assert checks["auth"].status == "fail"
    assert "CELLBOX_API_KEY" in (checks["auth"].next_step or "")
    if use_cloud_server == "oci":  # OCI's gateway: 404 NotAuthorizedOrNotFound, which may be a missing policy
        assert "NotAuthorizedOrNotFound" in checks["auth"].next_step
        assert "generativeaiapikey" in checks["auth"].next_step
    assert checks["create"].status == "skipped" and "auth failed" in checks["create"].detail
    assert all(checks[name].status == "skipped" for name in doctor.CHECKS[3:])
    assert "Next steps:" in out and "auth:" in out


@pytest.mark.cloud_profiles("oci")
def test_a_server_that_wants_a_project_fails_project(use_cloud_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELLBOX_PROJECT")

    checks = by_name(doctor.run())

    assert checks["project"].status == "fail"
    assert "CELLBOX_PROJECT" in (checks["project"].next_step or "")
    assert checks["create"].status == "skipped"


def refuse_everything(seen: list[httpx.Request]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": {"message": "Incorrect API key provided.", "code": None}})

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_oci_without_a_project_fails_configuration_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_OCI_REGION", "us-chicago-1")
    monkeypatch.setenv("CELLBOX_API_KEY", WRONG_KEY)
    seen: list[httpx.Request] = []

    checks = by_name(doctor.run(http_client=refuse_everything(seen)))

    assert seen == []
    assert checks["configuration"].status == "fail"
    assert "CELLBOX_PROJECT" in (checks["configuration"].next_step or "")
    assert all(checks[name].status == "skipped" for name in doctor.CHECKS[1:])
    assert "configuration failed" in checks["auth"].detail
    assert not doctor.passed(list(checks.values()))


def test_an_undocumented_region_warns_and_no_secret_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_OCI_REGION", "xx-nowhere-1")
    monkeypatch.setenv("CELLBOX_API_KEY", WRONG_KEY)
    monkeypatch.setenv("CELLBOX_PROJECT", "ocid1.generativeaiproject.oc1.xx.test")
    seen: list[httpx.Request] = []

    checks = by_name(doctor.run(http_client=refuse_everything(seen)))

    config = checks["configuration"]
    assert config.status == "warn" and config.data["region"] == "xx-nowhere-1"
    assert "us-chicago-1" in (config.next_step or "")
    assert "no model" in config.detail and "CELLBOX_MODEL" in (config.next_step or "")
    assert checks["auth"].status == "fail"
    assert len(seen) == 1 and seen[0].headers["OpenAI-Project"] == "ocid1.generativeaiproject.oc1.xx.test"
    assert WRONG_KEY not in json.dumps([c.to_dict() for c in checks.values()])


@pytest.mark.parametrize(
    ("refused", "status"),
    [(set(), "pass"), ({"stream"}, "pass"), ({"stream", "store"}, "pass"), ({"stream", "background"}, "warn")],
)
def test_a_refused_parameter_warns_only_when_cells_lose_something(refused: set[str], status: str) -> None:
    checkup = doctor_checks.Checkup(None, {})
    checkup.client = Client(base_url="http://127.0.0.1:1/v1", api_key="k")
    checkup.model = "m"
    checkup.tried = set(doctor.PARAMETERS)
    checkup.client.refused_parameters[("/responses", "m")] = set(refused)
    check = checkup.parameters()
    checkup.client.close()
    assert check.status == status and check.data["refused"] == sorted(refused)
    if status == "warn":  # what the refusal costs, as the next step
        assert "an interrupt or time limit can't cancel the remote code" in (check.next_step or "")
    elif refused:
        assert check.next_step is None and "(nothing to do)" in check.detail


@pytest.mark.cloud_profiles("openai")
def test_gpt5_at_minimal_effort_is_run_without_it_and_told_the_fix(
    use_cloud_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local server answers as gpt-5 does: hosted tools can't be used at `minimal` effort.
    monkeypatch.setenv("CELLBOX_MODEL", "gpt-5")
    monkeypatch.setenv("CELLBOX_REASONING_EFFORT", "minimal")
    checks = by_name(doctor.run())
    assert checks["listing"].status == "pass" and checks["run"].status == "pass", checks["listing"].to_dict()
    parameters = checks["parameters"]
    assert parameters.status == "warn" and parameters.data["refused"] == ["reasoning"]
    step = parameters.next_step or ""
    assert "gpt-5 refuses reasoning effort 'minimal' with the code_interpreter tool" in step
    assert "CELLBOX_REASONING_EFFORT=low" in step


class _Through(httpx.BaseTransport):
    """The real server, with one kind of answer changed (a fault a real server can't be made to give)."""

    def __init__(self, change) -> None:
        self.real = httpx.HTTPTransport()
        self.change = change

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.change(request, self.real.handle_request(request))

    def close(self) -> None:
        self.real.close()


class _BrokenSigner(httpx.Auth):
    def auth_flow(self, request):
        raise ConfigurationError("the OCI key file can't be read")
        yield request


@pytest.mark.cloud_profiles("oci")
def test_a_failed_auth_setup_passes_no_check_that_made_no_request(use_cloud_server: str) -> None:
    checks = by_name(doctor.run(auth=_BrokenSigner()))
    assert checks["auth"].status == "fail" and "key file" in checks["auth"].detail
    assert checks["project"].status == "skipped" and "auth failed" in checks["project"].detail
    assert all(checks[name].status == "skipped" for name in doctor.CHECKS[3:])


@pytest.mark.cloud_profiles("openai")
def test_parameters_do_not_pass_when_no_response_was_made(use_cloud_server: str) -> None:
    def no_model(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/responses"):
            error = {"message": "The model `gpt-x` does not exist.", "type": "invalid_request_error", "code": None}
            return httpx.Response(404, json={"error": {**error, "param": "model"}}, request=request)
        return answer

    checks = by_name(doctor.run(http_client=httpx.Client(transport=_Through(no_model))))
    assert checks["create"].status == "pass" and checks["delete"].status == "pass"
    assert checks["listing"].status == "fail" and checks["run"].status == "fail"
    assert checks["parameters"].status == "skipped" and "no response was made" in checks["parameters"].detail
    assert "Check the id" not in checks["listing"].detail  # a 404 on a create is not a wrong id


@pytest.mark.cloud_profiles("openai")
def test_a_skewed_clock_is_said(use_cloud_server: str) -> None:
    def ten_minutes_behind(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        answer.headers["date"] = email.utils.formatdate(time.time() - 600, usegmt=True)
        return answer

    checks = by_name(doctor.run(billed=False, http_client=httpx.Client(transport=_Through(ten_minutes_behind))))
    auth = checks["auth"]
    assert auth.status == "warn" and 590 <= auth.data["clock_skew_s"] <= 700, auth.to_dict()
    assert "clock is" in auth.detail and "ahead of the service's" in auth.detail and "NTP" in (auth.next_step or "")


@pytest.mark.cloud_profiles("openai")
def test_no_run_costs_nothing_and_help_says_what_a_run_costs(
    use_cloud_server: str, cloud_server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []

    def count(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return answer

    checks = by_name(doctor.run(billed=False, http_client=httpx.Client(transport=_Through(count))))
    assert [checks[n].status for n in ("configuration", "auth", "project")] == ["pass"] * 3
    assert all(checks[n].status == "skipped" and "--no-run" in checks[n].detail for n in doctor.BILLED)
    assert all(not s.startswith("POST") for s in seen), seen  # nothing made, nothing run
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "creates one container" in said and "billed tokens" in said and "--no-run" in said


def test_a_404_says_what_to_check_for_what_was_asked() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "ocid" in request.url.path:
            return httpx.Response(404, json={"code": "NotAuthorizedOrNotFound", "message": "Authorization failed"})
        return httpx.Response(404, json={"error": {"message": "Not found", "type": "invalid_request_error"}})

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with Client("http://api.test/v1", api_key="k", http_client=http) as c:
        with pytest.raises(NotFoundError) as listing:
            c.containers.list_page(limit=1)
        with pytest.raises(NotFoundError) as one:
            c.containers.retrieve("cntr_123")
        with pytest.raises(NotFoundError) as oci:
            c.containers.retrieve("ocid1.generativeaicontainer.oc1.iad.x")
    assert "CELLBOX_BASE_URL" in str(listing.value) and "Check the id" not in str(listing.value)
    assert "Check the id" in str(one.value)
    assert "authorization fails" in str(oci.value) and "CELLBOX_PROJECT" in str(oci.value)


@pytest.mark.cloud_profiles("openai")
def test_a_model_the_service_lacks_fails_before_a_container_is_made(use_cloud_server: str) -> None:
    sent: list[str] = []

    def no_such_model(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/models/cellbox-local"):
            error = {"message": "The model `cellbox-local` does not exist or you do not have access to it."}
            error |= {"type": "invalid_request_error", "param": None, "code": "model_not_found"}
            return httpx.Response(404, json={"error": error}, request=request)
        return answer

    checks = by_name(doctor.run(http_client=httpx.Client(transport=_Through(no_such_model))))
    assert checks["model"].status == "fail" and "has no model cellbox-local" in checks["model"].detail
    assert "CELLBOX_MODEL" in (checks["model"].next_step or "")
    assert checks["create"].status == "skipped" and not any(s.startswith("POST") for s in sent), sent


@pytest.mark.cloud_profiles("openai")
def test_who_the_service_took_the_caller_for_is_said(use_cloud_server: str) -> None:
    def organization(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        answer.headers["openai-organization"] = "org-cellbox-test"
        return answer

    checks = by_name(doctor.run(billed=False, http_client=httpx.Client(transport=_Through(organization))))
    assert checks["auth"].status == "pass" and "as organization org-cellbox-test" in checks["auth"].detail
    assert checks["model"].status == "pass" and "cellbox-local is offered" in checks["model"].detail


def test_an_oci_project_of_another_region_and_the_signer_are_said(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CELLBOX_OCI_REGION", "us-chicago-1")
    monkeypatch.setenv("CELLBOX_API_KEY", WRONG_KEY)
    monkeypatch.setenv("CELLBOX_PROJECT", "ocid1.generativeaiproject.oc1.iad.amaaaaaexample")
    checks = by_name(doctor.run(http_client=refuse_everything([])))
    config = checks["configuration"]
    assert config.status == "warn" and "the project is in us-ashburn-1, the URL in us-chicago-1" in config.detail
    assert "CELLBOX_OCI_REGION=us-ashburn-1" in (config.next_step or "")

    oci_config = tmp_path / "config"
    oci_config.write_text(
        "[DEFAULT]\nuser=ocid1.user.oc1..aaaauser\ntenancy=ocid1.tenancy.oc1..aaaatenancy\nregion=us-chicago-1\n"
        f"fingerprint=00:11\nkey_file={tmp_path / 'missing.pem'}\n"
    )
    monkeypatch.setenv("CELLBOX_AUTH", "oci_user_principal")
    monkeypatch.setenv("OCI_CONFIG_FILE", str(oci_config))
    monkeypatch.setenv("CELLBOX_PROJECT", "ocid1.generativeaiproject.oc1.us-chicago-1.amaaaaaexample")
    config = by_name(doctor.run(http_client=refuse_everything([])))["configuration"]
    assert "user ocid1.user.oc1..aaaauser, tenancy ocid1.tenancy.oc1..aaaatenancy" in config.detail, config.detail
    assert "the project is in" not in config.detail
