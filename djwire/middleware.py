"""``BaseMiddleware``: the base class of ASGI middleware that adds to the scope."""

from __future__ import annotations

from typing import Any

from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope


class BaseMiddleware:
    """Wrap an inner ASGI application; subclasses add keys to a copy of the scope.

    One middleware instance serves every connection, so keep per-connection state
    in the scope, never on ``self``.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Any:
        # A copy, so what this middleware adds never leaks to the outer applications.
        scope = dict(scope)
        return await self.inner(scope, receive, send)
