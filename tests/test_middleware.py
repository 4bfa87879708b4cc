"""BaseMiddleware: subclasses add to a copy of the scope and call the inner app."""

from __future__ import annotations

from typing import Any

from djwire.middleware import BaseMiddleware
from djwire.testing import HttpCommunicator


class AddsColour(BaseMiddleware):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return await super().__call__(dict(scope, colour="teal"), receive, send)


async def test_middleware_adds_to_the_scope_without_changing_the_callers() -> None:
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        scope["inner_only"] = True
        seen.append(scope)
        await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["colour"].encode()})

    communicator = HttpCommunicator(AddsColour(inner), "GET", "/")
    response = await communicator.get_response()
    assert response["body"] == b"teal"
    assert "colour" not in communicator.scope
    assert "inner_only" not in communicator.scope
    assert seen[0]["path"] == "/"


async def test_base_middleware_passes_through() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> str:
        return "inner result"

    middleware = BaseMiddleware(inner)
    assert middleware.inner is inner
    assert await middleware({"type": "http"}, None, None) == "inner result"  # type: ignore[arg-type]
