"""Types of the ASGI contract (ASGI 3.0), shared by consumers, routers and the server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: A connection scope. Kept as a plain mapping: middleware adds keys freely.
Scope = MutableMapping[str, Any]
#: An ASGI event (message) dict.
Message = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[Any]]
ASGISend = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, ASGIReceive, ASGISend], Awaitable[None]]
