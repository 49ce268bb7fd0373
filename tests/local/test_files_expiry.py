"""The Files API's `expires_after`: a file created to expire is gone when its time is up, as the cloud deletes it
(an hour to 30 days after its creation; a server whose minutes are shortened shortens it as much)."""

from __future__ import annotations

import openai
import pytest
from localhelp import sdk

from cellbox.api import Client, ValidationError
from cellbox.local.testing import running_server, wait_until


@pytest.mark.integration
def test_a_file_created_to_expire_is_gone_when_its_time_is_up(tmp_path):
    # A minute lasts 0.1 s: an hour lasts 6 s.
    with running_server(tmp_path / "data", pool_size=0, seconds_per_minute=0.1) as srv, sdk(srv) as client:
        kept = client.files.create(file=("kept.csv", b"a,b\n"), purpose="user_data")
        brief = client.files.create(
            file=("brief.csv", b"1,2\n"), purpose="user_data", expires_after={"anchor": "created_at", "seconds": 3600}
        )
        assert kept.expires_at is None and brief.expires_at == brief.created_at + 3600
        assert client.files.retrieve(brief.id).expires_at == brief.expires_at
        assert {f.id for f in client.files.list()} == {kept.id, brief.id}
        bytes_of = srv.data_dir / "files" / brief.id
        assert bytes_of.is_file()

        def gone() -> bool:
            try:
                client.files.retrieve(brief.id)
            except openai.NotFoundError:
                return True
            return False

        wait_until(gone, timeout=60, what="the file's expiry")
        assert [f.id for f in client.files.list()] == [kept.id]
        with pytest.raises(openai.NotFoundError):
            client.files.content(brief.id)
        wait_until(lambda: not bytes_of.exists(), timeout=30, what="its bytes removed")
        assert client.files.content(kept.id).read() == b"a,b\n"


@pytest.mark.integration
def test_an_expiry_out_of_range_is_refused_and_the_client_checks_it_first(tmp_path):
    with running_server(tmp_path / "data", pool_size=0) as srv, sdk(srv) as client:
        for expires in ({"anchor": "created_at", "seconds": 60}, {"anchor": "last_active_at", "seconds": 3600}):
            with pytest.raises(openai.BadRequestError, match="expires_after"):
                client.files.create(file=("x.csv", b"x"), purpose="user_data", expires_after=expires)
        assert client.files.list().data == []
        with Client(srv.base_url, api_key=srv.token) as ours:
            made = ours.files.create(b"x", filename="x.csv", expires_after=7200)
            assert made.expires_at == made.created_at + 7200
            with pytest.raises(ValidationError, match="expires_after must be whole seconds from 3600"):
                ours.files.create(b"x", filename="x.csv", expires_after=60)
