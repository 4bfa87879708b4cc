"""ASGI "awaitable callables": ``receive``/``send`` that return Futures, not coroutines.

The ASGI spec lets a server pass any callable returning an awaitable. These wrap an
application so that the communicators' coroutine functions reach it as such
callables, in the two shapes a server might use.
"""

from __future__ import annotations

import asyncio
from typing import Any

from djwire.typing import ASGIApp

#: "task": each call returns ``asyncio.ensure_future(...)`` (a Task), as in Channels'
#: own regression test; "future": a plain Future resolved from a done-callback.
KINDS = ("task", "future")


def _plain_future(coroutine: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def settle(task: asyncio.Future[Any]) -> None:
        if future.done():
            return
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            future.set_exception(task.exception())  # type: ignore[arg-type]
        else:
            future.set_result(task.result())

    asyncio.ensure_future(coroutine).add_done_callback(settle)
    return future


def with_awaitable_callables(app: ASGIApp, kind: str) -> ASGIApp:
    """``app``, called with ``receive`` and ``send`` that are plain functions
    returning Futures."""
    wrap = asyncio.ensure_future if kind == "task" else _plain_future

    async def application(scope: Any, receive: Any, send: Any) -> Any:
        def receive_future() -> asyncio.Future[Any]:
            return wrap(receive())

        def send_future(message: dict[str, Any]) -> asyncio.Future[Any]:
            return wrap(send(message))

        return await app(scope, receive_future, send_future)

    return application
