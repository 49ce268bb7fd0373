"""`Client` and `AsyncClient`: thin shells that move bytes for the shared flow in `base.py`.

    client = Client()                                   # configuration from the environment / config.toml
    box = client.containers.create(name="demo", memory_limit="4g")
    client.containers.files.create(box.id, "data.csv")  # streamed from disk
    for f in client.containers.files.list(box.id):      # follows pages
        client.containers.files.download(box.id, f.id, f.name)

The resource classes in `resources.py` turn method calls into `Operation`s and hand them to `_execute`.
"""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any, TypeVar

import anyio
import httpx

from .base import BaseClient, Outcome, Sleep, Unauthenticated
from .operation import Operation
from .resources import (
    AsyncContainers,
    AsyncFiles,
    AsyncModels,
    AsyncResponses,
    Containers,
    Files,
    Models,
    Responses,
)

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Cookieless:
    """An httpx client that keeps no cookies. The API authenticates every request by its key or signature and
    needs none, and httpx reads each response's headers for them (a tenth of a cell's time in the client)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._none = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass


class _Http(_Cookieless, httpx.Client):
    pass


class _AsyncHttp(_Cookieless, httpx.AsyncClient):
    pass


class Client(BaseClient):
    """Synchronous Containers API client. Thread-safe; use it as a context manager or call `close()`."""

    def __init__(self, base_url: str | None = None, **options: Any) -> None:
        http_client: httpx.Client | None = options.pop("http_client", None)
        super().__init__(base_url, **options)
        self._http = http_client or _Http(**self._http_options())
        self.containers = Containers(self)
        self.files = Files(self)
        self.models = Models(self)
        self.responses = Responses(self)

    def _execute(self, op: Operation[T]) -> T:
        flow = self.flow(self._http, op)
        outcome: Outcome = None
        with closing(flow):  # an interrupt between steps still closes the files the flow opened
            while True:
                try:
                    step = flow.send(outcome)
                except StopIteration as done:
                    answer: T = done.value  # what the flow returned: typed by the operation
                    return answer
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    outcome = None
                    continue
                try:
                    if isinstance(step, Unauthenticated):
                        outcome = self._http.send(step.request, auth=None)
                    else:
                        outcome = self._http.send(step, stream=True, auth=self._auth)
                        if not op.stream or not outcome.is_success:
                            outcome.read()
                except httpx.TransportError as exc:
                    outcome = exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(BaseClient):
    """Asynchronous Containers API client (asyncio or trio, through httpx)."""

    def __init__(self, base_url: str | None = None, **options: Any) -> None:
        http_client: httpx.AsyncClient | None = options.pop("http_client", None)
        super().__init__(base_url, **options)
        self._http = http_client or _AsyncHttp(**self._http_options())
        self.containers = AsyncContainers(self)
        self.files = AsyncFiles(self)
        self.models = AsyncModels(self)
        self.responses = AsyncResponses(self)

    async def _execute(self, op: Operation[T]) -> T:
        flow = self.flow(self._http, op)
        outcome: Outcome = None
        with closing(flow):
            while True:
                try:
                    step = flow.send(outcome)
                except StopIteration as done:
                    answer: T = done.value  # what the flow returned: typed by the operation
                    return answer
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    outcome = None
                    continue
                try:
                    if isinstance(step, Unauthenticated):
                        outcome = await self._http.send(step.request, auth=None)
                    else:
                        outcome = await self._http.send(step, stream=True, auth=self._auth)
                        if not op.stream or not outcome.is_success:
                            await outcome.aread()
                except httpx.TransportError as exc:
                    outcome = exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
