"""The ASGI 3.0 contract as the server sees it: scopes it builds, events it hands over.

Shapes follow the ASGI HTTP & WebSocket spec 2.4 and the lifespan spec 2.0
(https://asgi.readthedocs.io/en/latest/specs/). Messages *from* the app are read
as plain mappings and checked field by field, since apps send what they like.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, NotRequired, TypedDict

Headers = list[tuple[bytes, bytes]]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Loose on purpose: Django's and others' apps type receive/send differently.
ASGIApp = Callable[..., Awaitable[None]]


class ASGIVersions(TypedDict):
    version: Literal["3.0"]
    spec_version: str


class HTTPScope(TypedDict):
    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    extensions: dict[str, Any]
    state: NotRequired[dict[str, Any]]


class WebSocketScope(TypedDict):
    type: Literal["websocket"]
    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    subprotocols: list[str]
    extensions: dict[str, Any]
    state: NotRequired[dict[str, Any]]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: dict[str, Any]


class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


class WebSocketConnectEvent(TypedDict):
    type: Literal["websocket.connect"]


class WebSocketReceiveEvent(TypedDict):
    type: Literal["websocket.receive"]
    text: NotRequired[str]
    bytes: NotRequired[bytes]


class WebSocketDisconnectEvent(TypedDict):
    type: Literal["websocket.disconnect"]
    code: int
    reason: str


class LifespanEvent(TypedDict):
    type: Literal["lifespan.startup", "lifespan.shutdown"]


HTTP_SPEC_VERSION = "2.4"
HTTP_ASGI: ASGIVersions = {"version": "3.0", "spec_version": HTTP_SPEC_VERSION}
LIFESPAN_ASGI: ASGIVersions = {"version": "3.0", "spec_version": "2.0"}
