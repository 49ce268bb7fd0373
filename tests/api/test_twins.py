"""The sync and async resource classes are twins: same public methods, same signatures, so they can't drift."""

from __future__ import annotations

import inspect

import pytest

from cellbox.api import AsyncClient, Client
from cellbox.api.resources import (
    AsyncContainerFiles,
    AsyncContainers,
    AsyncContentStream,
    AsyncFiles,
    AsyncResponseEvents,
    AsyncResponses,
    ContainerFiles,
    Containers,
    ContentStream,
    Files,
    ResponseEvents,
    Responses,
)

TWINS = [
    (Containers, AsyncContainers),
    (ContainerFiles, AsyncContainerFiles),
    (Files, AsyncFiles),
    (Responses, AsyncResponses),
]


def _public(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_") and callable(member)}


def _parameters(function: object) -> list[tuple[str, object, object, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


@pytest.mark.parametrize(("sync", "async_"), TWINS, ids=[s.__name__ for s, _ in TWINS])
def test_same_methods_and_signatures(sync: type, async_: type) -> None:
    sync_methods, async_methods = _public(sync), _public(async_)
    assert sorted(sync_methods) == sorted(async_methods)
    assert sync_methods, f"{sync.__name__} has no public methods?"
    for name, method in sync_methods.items():
        assert _parameters(method) == _parameters(async_methods[name]), f"{sync.__name__}.{name} drifted"


@pytest.mark.parametrize(("sync", "async_"), TWINS, ids=[s.__name__ for s, _ in TWINS])
def test_async_twins_are_async(sync: type, async_: type) -> None:
    for name, method in _public(async_).items():
        inner = inspect.unwrap(method)  # type: ignore[arg-type]
        assert inspect.iscoroutinefunction(inner) or inspect.isasyncgenfunction(inner), f"{async_.__name__}.{name}"


@pytest.mark.parametrize(
    ("sync", "async_"), [(ContentStream, AsyncContentStream), (ResponseEvents, AsyncResponseEvents)]
)
def test_streams_are_twins(sync: type, async_: type) -> None:
    sync_names = {n for n in vars(sync) if not n.startswith("_")} | {"__iter__"}
    async_names = {n for n in vars(async_) if not n.startswith("_")} | {"__aiter__"}
    assert sync_names - {"close", "__iter__"} == async_names - {"aclose", "__aiter__"}
    assert "__iter__" in vars(sync) and "__aiter__" in vars(async_)


def test_clients_expose_the_same_resources() -> None:
    with Client(base_url="http://127.0.0.1:1/v1", api_key="k") as sync_client:
        sync_attrs = {n: type(v).__name__ for n, v in vars(sync_client).items() if not n.startswith("_")}
    async_client = AsyncClient(base_url="http://127.0.0.1:1/v1", api_key="k")
    async_attrs = {n: type(v).__name__ for n, v in vars(async_client).items() if not n.startswith("_")}
    assert {n: t.removeprefix("Async") for n, t in async_attrs.items()} == sync_attrs
    assert type(sync_client.containers.files).__name__ == "ContainerFiles"
    assert type(async_client.containers.files).__name__ == "AsyncContainerFiles"
