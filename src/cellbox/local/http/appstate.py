"""What a handler finds on the application: the live containers, the options, and the stores beside them."""

from __future__ import annotations

from starlette.requests import Request

from ..emulation.listing import ListingLag
from ..jail.containers import Containers
from ..options import ServerOptions
from ..responses.stored import StoredResponses


def containers_of(request: Request) -> Containers:
    return request.app.state.containers


def options_of(request: Request) -> ServerOptions:
    return request.app.state.options


def lag_of(request: Request) -> ListingLag:
    return request.app.state.listing_lag


def stored_of(request: Request) -> StoredResponses:
    return request.app.state.stored
