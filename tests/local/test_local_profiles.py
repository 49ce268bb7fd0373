"""--profile openai|oci and --listing-lag-ms: the local server with the clouds' manners."""

from __future__ import annotations

import re
import shutil
import time

import httpx
import openai
import pytest

from cellbox.local.options import ServerOptions
from cellbox.local.testing import running_server, wait_until

PROJECT = {"OpenAI-Project": "ocid1.generativeaiproject.oc1.iad.test"}


@pytest.fixture(scope="module")
def oci(tmp_path_factory, starts_processes):
    with running_server(tmp_path_factory.mktemp("oci"), profile="oci", pool_size=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def openai_profile(tmp_path_factory, starts_processes):
    with running_server(tmp_path_factory.mktemp("openai"), profile="openai", pool_size=1) as srv:
        yield srv


def test_a_profile_is_a_set_of_option_values():
    assert ServerOptions(profile="openai").upload_names == "prefixed"
    oci_options = ServerOptions(profile="oci")
    assert (oci_options.error_shape, oci_options.require_project, oci_options.upload_names) == ("oci", True, "as-named")
    assert (oci_options.streaming, oci_options.unstored_background) == ("on", "temporary")  # OCI's background mode
    assert ServerOptions(profile="openai").unstored_background == "refused"
    assert ServerOptions(profile="openai", upload_names="as-named").upload_names == "prefixed"  # defaults yield
    assert ServerOptions(error_shape="oci").require_project is False
    assert ServerOptions(profile="oci-auto").auto_containers_only and ServerOptions(profile="oci-auto").require_project
    assert not ServerOptions(profile="oci").auto_containers_only


@pytest.mark.integration
def test_oci_auto_refuses_a_container_id_in_the_tool_in_ocis_words(tmp_path):
    with running_server(tmp_path / "d", profile="oci-auto", pool_size=0) as srv:
        headers = {"Authorization": f"Bearer {srv.token}", "OpenAI-Project": "ocid1.generativeaiproject.oc1.iad.t"}
        with httpx.Client(base_url=srv.base_url, headers=headers, timeout=60) as http:
            made = http.post("/containers", json={"name": "explicit"}).json()["id"]
            tool = {"type": "code_interpreter", "container": made}
            r = http.post("/responses", json={"model": "m", "input": "print(1)", "tools": [tool]})
            assert r.status_code == 400 and r.json()["code"] == "InvalidParameter"
            assert "container id is not supported" in r.json()["message"] and "opc-request-id" in r.headers
            tool = {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "1g"}}
            r = http.post("/responses", json={"model": "m", "input": "print(1)", "tools": [tool]})
            assert r.status_code == 200 and r.json()["output"][0]["container_id"] != made


# -- openai ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "basename"), [("report.csv", "report.csv"), ("sub/dir/data.json", "data.json")])
def test_openai_uploads_land_prefixed_and_the_record_says_where(openai_profile, sdk, run, logs, name, basename):
    with sdk(openai_profile) as c:
        cid = c.containers.create(name="uploads").id
        up = c.containers.files.create(container_id=cid, file=(name, b"payload"))
        assert re.fullmatch(r"/mnt/data/[0-9a-f]{32}-" + re.escape(basename), up.path), up.path
        assert [f.path for f in c.containers.files.list(container_id=cid)] == [up.path]
        assert c.containers.files.content.retrieve(up.id, container_id=cid).read() == b"payload"
        assert logs(run(c, cid, f"print(open({up.path!r}).read())")[0]) == "payload\n"
        # Files the code writes keep the names it gave them.
        run(c, cid, "open('out.txt', 'w').write('o')")
        assert "/mnt/data/out.txt" in {f.path for f in c.containers.files.list(container_id=cid)}


def test_openai_errors_keep_the_openai_shape(openai_profile):
    r = httpx.get(f"{openai_profile.base_url}/containers/cntr_x", headers=openai_profile.headers)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert "opc-request-id" not in r.headers


# -- oci ------------------------------------------------------------------------------------------------------


def _oci_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"code", "message"}, r.text
    assert r.json()["code"] == code
    assert r.headers["opc-request-id"] and r.headers["content-type"] == "application/json"
    return r.json()["message"]


def test_oci_needs_a_project_on_every_request(oci):
    r = httpx.get(f"{oci.base_url}/containers", headers=oci.headers)
    assert "OpenAI-Project" in _oci_error(r, 400, "MissingParameter")
    r = httpx.get(f"{oci.base_url}/containers", headers={**oci.headers, **PROJECT})
    assert r.status_code == 200 and r.headers["opc-request-id"]


def test_oci_authorization_failures_are_404_not_authorized_or_not_found(oci):
    r = httpx.get(f"{oci.base_url}/containers", headers={"Authorization": "Bearer wrong", **PROJECT})
    assert _oci_error(r, 404, "NotAuthorizedOrNotFound") == "Authorization failed or requested resource not found"
    _oci_error(httpx.get(f"{oci.base_url}/containers", headers=PROJECT), 401, "NotAuthenticated")


def test_oci_errors_have_the_gateway_shape(oci, sdk):
    headers = {**oci.headers, **PROJECT}
    with httpx.Client(base_url=oci.base_url, headers=headers) as h:
        _oci_error(h.get("/containers/cntr_nope"), 404, "NotAuthorizedOrNotFound")
        _oci_error(h.get("/nothing-here"), 404, "NotAuthorizedOrNotFound")
        assert "name" in _oci_error(h.post("/containers", json={}), 400, "MissingParameter")
        assert _oci_error(h.post("/containers", json={"name": "x", "nope": 1}), 400, "InvalidParameter") == (
            "Unknown parameter: 'nope'."
        )
    # The SDK still raises its errors for them, carrying the request id.
    with sdk(oci, default_headers=PROJECT) as c:
        with pytest.raises(openai.NotFoundError) as err:
            c.containers.retrieve("cntr_" + "0" * 48)
        assert err.value.body == {"code": "NotAuthorizedOrNotFound", "message": err.value.body["message"]}
        created = c.containers.create(name="works")  # and everything else works with a project
        assert c.containers.retrieve(created.id).status == "running"


def test_oci_internal_errors_have_the_gateway_shape_and_a_request_id(oci):
    # A fault an operator can cause: the server's own temporary folder removed under it. The 500 still carries
    # OCI's shape and the request id support asks for, and the server goes on once the folder is back.
    with httpx.Client(base_url=oci.base_url, headers={**oci.headers, **PROJECT}) as h:
        container_id = h.post("/containers", json={"name": "faulty"}).json()["id"]
        shutil.rmtree(oci.data_dir / "tmp")
        try:
            r = h.post(f"/containers/{container_id}/files", files={"file": ("a.txt", b"hi")})
        finally:
            (oci.data_dir / "tmp").mkdir()
        assert r.json() == {"code": "InternalServerError", "message": "The local server had an internal error."}
        assert r.status_code == 500 and r.headers["opc-request-id"].startswith("req_")
        assert "No such file" not in r.text and "FileNotFoundError" in oci.log_path.read_text()  # the log has it
        assert h.post(f"/containers/{container_id}/files", files={"file": ("a.txt", b"hi")}).status_code == 200


def _ask(client: openai.OpenAI, container_id: str, code: str, **options):
    return client.responses.create(
        model="openai.gpt-oss-120b",
        input=code,
        tools=[{"type": "code_interpreter", "container": container_id}],
        **options,
    )


def test_oci_streams_a_background_response_and_resumes_it_after_a_sequence_number(oci, sdk):
    # OCI's background mode: `background=true, stream=true` streams the events, and a stream that broke off is
    # resumed after the last event received, by its sequence_number.
    with sdk(oci, default_headers=PROJECT) as c:
        cid = c.containers.create(name="resumed").id
        code = "import time\nprint('before', flush=True)\ntime.sleep(1)\nprint('after')"
        seen = []
        with _ask(c, cid, code, background=True, stream=True) as events:
            for event in events:
                seen.append(event)
                if event.type == "response.code_interpreter_call.interpreting":
                    break  # the connection drops while the code runs
        response_id = seen[0].response.id
        assert seen[0].type == "response.created" and seen[0].response.background is True
        assert c.responses.retrieve(response_id).status in ("queued", "in_progress")  # it went on meanwhile
        last = seen[-1].sequence_number
        with c.responses.retrieve(response_id, stream=True, starting_after=last) as resumed:
            rest = list(resumed)
        assert [e.sequence_number for e in seen + rest] == list(range(len(seen) + len(rest)))  # none lost or twice
        assert rest[0].sequence_number == last + 1
        assert rest[-1].type == "response.completed" and rest[-1].response.output_text == "before\nafter\n"
        # A response not in the background streams too, to its end.
        streamed = list(_ask(c, cid, "print(2)", stream=True))
        assert streamed[-1].type == "response.completed" and streamed[-1].response.output_text == "2\n"


def test_oci_stream_errors_keep_the_gateway_shape(oci, sdk):
    with sdk(oci, default_headers=PROJECT) as c:
        cid = c.containers.create(name="refused").id
        foreground = _ask(c, cid, "1").id
    with httpx.Client(base_url=oci.base_url, headers={**oci.headers, **PROJECT}) as h:
        _oci_error(h.get(f"/responses/{foreground}", params={"stream": "true"}), 400, "InvalidParameter")
        missing = h.get(f"/responses/resp_{'0' * 48}", params={"stream": "true", "starting_after": 3})
        _oci_error(missing, 404, "NotAuthorizedOrNotFound")


def test_oci_keeps_a_background_response_with_store_false_temporarily(oci, openai_profile, sdk):
    # OCI: "background execution requires temporary response storage ... including when store=false".
    with sdk(oci, default_headers=PROJECT) as c:
        cid = c.containers.create(name="unstored").id
        made = _ask(c, cid, "import time\ntime.sleep(0.5)\nprint('kept')", background=True, store=False)
        assert (made.status, made.store, made.background) == ("queued", False, True)
        done = wait_until(lambda: (r := c.responses.retrieve(made.id)).status == "completed" and r, what="the run")
        assert done.output_text == "kept\n" and done.store is False
        events = list(c.responses.retrieve(made.id, stream=True, starting_after=1))
        assert events[0].sequence_number == 2 and events[-1].type == "response.completed"
        long = _ask(c, cid, "import time\ntime.sleep(30)", background=True, store=False)
        assert c.responses.cancel(long.id).status == "cancelled"
        with pytest.raises(openai.NotFoundError):  # kept for its run, not as context for another
            _ask(c, cid, "1", previous_response_id=made.id)
        c.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(made.id)
    # OpenAI's background mode needs the response stored.
    with sdk(openai_profile) as c:
        cid = c.containers.create(name="unstored").id
        with pytest.raises(openai.BadRequestError) as refused:
            _ask(c, cid, "1", background=True, store=False)
        assert refused.value.param == "store"


# -- listing lag ----------------------------------------------------------------------------------------------


def _lenient(srv) -> openai.OpenAI:
    # `bytes: null` is what a cloud was seen to answer, and what the SDK's types (bytes: int) refuse under strict
    # validation: a client must read such listings leniently.
    return openai.OpenAI(base_url=srv.base_url, api_key=srv.token, max_retries=0)


@pytest.mark.integration
def test_files_written_by_code_are_listed_late_with_bytes_null(tmp_path, run):
    lag = 1.0
    with running_server(tmp_path / "d", listing_lag_ms=lag * 1000, pool_size=1) as srv, _lenient(srv) as c:
        cid = c.containers.create(name="lag").id
        up = c.containers.files.create(container_id=cid, file=("up.txt", b"u"))
        assert c.containers.files.list(container_id=cid).data[0].bytes == 1  # uploads are never late
        ran = time.monotonic()  # before the run: the lag starts when it ends, so this bound holds on a slow machine
        _, message = run(c, cid, "open('made.txt', 'w').write('made')")
        made_id = message.content[0].annotations[0].file_id
        # First it is missing from the list (and a 404 by id)...
        assert [f.id for f in c.containers.files.list(container_id=cid)] == [up.id]
        with pytest.raises(openai.NotFoundError):
            c.containers.files.retrieve(made_id, container_id=cid)
        # ...then listed with bytes null, its content a 404 in the words a cloud was seen to use...
        listed = wait_until(
            lambda: next((f for f in c.containers.files.list(container_id=cid) if f.id == made_id), None),
            what="the file to be listed",
        )
        assert time.monotonic() - ran >= lag * 0.9
        assert listed.bytes is None and listed.path == "/mnt/data/made.txt"
        assert c.containers.files.retrieve(made_id, container_id=cid).bytes is None
        with pytest.raises(openai.NotFoundError, match=f"File {made_id} not found on container {cid}"):
            c.containers.files.content.retrieve(made_id, container_id=cid).read()
        # ...and then it is a file like any other.
        wait_until(lambda: c.containers.files.retrieve(made_id, container_id=cid).bytes == 4, what="the file's size")
        assert time.monotonic() - ran >= 2 * lag * 0.9
        assert c.containers.files.content.retrieve(made_id, container_id=cid).read() == b"made"
