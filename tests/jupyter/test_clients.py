"""The sidebar keeps one Containers API client per configuration, not one per request: with OCI IAM auth each new
client would fetch a certificate and a token. A changed configuration gets a new client, and the server's
shutdown closes them.

(Coroutine tests here are run by pytest-jupyter on the server's own loop: no asyncio mark.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cellbox.api import AsyncClient, ConfigurationError, Settings
from cellbox.jupyter import CellboxSidebar, core
from cellbox.jupyter.handlers import SETTINGS_KEY
from cellbox.local.testing import RunningServer


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[AsyncClient]:
    """Every client the sidebar constructs, in order."""
    clients: list[AsyncClient] = []

    class Counted(AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(core, "AsyncClient", Counted)
    return clients


def _closed(client: AsyncClient) -> bool:
    return client._http.is_closed


async def test_many_requests_share_one_client(api, backend: RunningServer, made: list[AsyncClient]) -> None:
    created = await api("POST", "containers", body={"name": "one-client", "memory_limit": "1g"})
    assert created.code == 201, created.text
    box = created.json["id"]
    for _ in range(5):
        assert (await api("GET", "containers")).code == 200
    replies = await asyncio.gather(*(api("GET", "containers", box, "files") for _ in range(8)))
    assert [reply.code for reply in replies] == [200] * 8
    assert (await api("DELETE", "containers", box)).code == 200

    assert len(made) == 1
    assert not _closed(made[0])


async def test_a_changed_configuration_gets_a_new_client_and_the_old_one_is_closed(
    api, backend: RunningServer, made: list[AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await api("GET", "containers")).code == 200
    assert (await api("GET", "containers")).code == 200
    assert len(made) == 1

    monkeypatch.setenv("CELLBOX_PROJECT", "proj-2")
    assert (await api("GET", "containers")).code == 200
    assert len(made) == 2
    assert made[1].settings.project == "proj-2"
    assert _closed(made[0]) and not _closed(made[1])

    monkeypatch.setenv("CELLBOX_API_KEY", "sk-another-key")  # refused by the server, but a new client all the same
    assert (await api("GET", "containers")).code == 502
    monkeypatch.setenv("CELLBOX_API_KEY", backend.token)
    assert (await api("GET", "containers")).code == 200
    assert (await api("GET", "containers")).code == 200
    assert len(made) == 4
    assert [_closed(client) for client in made] == [True, True, True, False]


async def test_server_shutdown_closes_the_client(
    api, backend: RunningServer, made: list[AsyncClient], jp_serverapp: Any
) -> None:
    assert (await api("GET", "containers")).code == 200
    [client] = made
    app = jp_serverapp.extension_manager.extension_points["cellbox"].app
    assert isinstance(app, CellboxSidebar)
    assert jp_serverapp.web_app.settings[SETTINGS_KEY] is app.sidebar

    await jp_serverapp.extension_manager.stop_all_extensions()

    assert _closed(client)


def test_the_fingerprint_tells_configurations_apart_and_never_holds_the_key() -> None:
    base = Settings(base_url="https://gateway.example/v1", api_key="sk-secret-one")
    assert core.fingerprint(base) == core.fingerprint(Settings(base_url=base.base_url, api_key="sk-secret-one"))
    others = [
        Settings(base_url=base.base_url, api_key="sk-secret-two"),
        Settings(base_url="https://other.example/v1", api_key="sk-secret-one"),
        Settings(base_url=base.base_url, api_key="sk-secret-one", auth="oci_instance_principal"),
        Settings(base_url=base.base_url, api_key="sk-secret-one", project="proj"),
        Settings(base_url=base.base_url),
    ]
    assert len({core.fingerprint(s) for s in [base, *others]}) == 1 + len(others)
    assert "sk-secret-one" not in repr(core.fingerprint(base))


async def test_a_retired_client_is_closed_only_once_its_last_request_is_done() -> None:
    clients = core.Clients(lambda settings: AsyncClient(settings=settings))
    first = Settings(base_url="http://127.0.0.1:9/v1", api_key="sk-first")
    second = Settings(base_url="http://127.0.0.1:9/v1", api_key="sk-second")

    async with clients.lease(first) as old:
        async with clients.lease(first) as same:
            assert same is old
        async with clients.lease(second) as new:
            assert new is not old
            assert not _closed(old)  # a request is still using it
        assert not _closed(old)
    assert _closed(old) and not _closed(new)

    async with clients.lease(second) as again:
        assert again is new
    await clients.aclose()
    assert _closed(new)


async def test_a_configuration_that_cant_make_a_client_keeps_the_current_one() -> None:
    clients = core.Clients(lambda settings: AsyncClient(settings=settings))
    good = Settings(base_url="http://127.0.0.1:9/v1", api_key="sk-good")
    async with clients.lease(good) as client:
        pass
    with pytest.raises(ConfigurationError, match="no API key"):
        async with clients.lease(Settings(base_url="http://127.0.0.1:9/v1")):  # api_key auth with no key
            pass
    async with clients.lease(good) as again:
        assert again is client and not _closed(client)
    await clients.aclose()
