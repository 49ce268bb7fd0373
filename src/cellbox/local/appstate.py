"""What a handler finds on the application: the live containers, the options, and the stores beside them."""

from __future__ import annotations

from starlette.requests import Request

from .containers import Containers
from .listing import ListingLag
from .options import ServerOptions
from .stored import StoredResponses


def containers_of(request: Request) -> Containers:
    return request.app.state.containers


def options_of(request: Request) -> ServerOptions:
    return request.app.state.options


def lag_of(request: Request) -> ListingLag:
    return request.app.state.listing_lag


def stored_of(request: Request) -> StoredResponses:
    return request.app.state.stored
