"""The ASGI lifespan protocol: startup before serving, shutdown after, state shared."""

from __future__ import annotations

import asyncio
from typing import Any

from djwire.exceptions import UnexpectedMessage
from djwire.server.config import Config
from djwire.server.server import Server

from .support import exchange, parse_responses, serve


def lifespan_app(events: list[str], *, fail_startup: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail_startup:
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    scope["state"]["pool"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        events.append("request:" + scope.get("state", {}).get("pool", "none"))
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_startup_runs_before_requests_and_shutdown_after_with_state() -> None:
    events: list[str] = []
    async with serve(lifespan_app(events), lifespan="on") as running:
        (response,) = parse_responses(
            await exchange(running.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        )
        assert response.body == b"ok"
    assert events == ["lifespan.startup", "request:ready", "lifespan.shutdown"]


async def test_failed_startup_means_no_serving_and_exit_code_3() -> None:
    events: list[str] = []
    app = lifespan_app(events, fail_startup=True)
    server = Server(Config(app=app, host="127.0.0.1", port=0, lifespan="on"), app)
    assert await asyncio.wait_for(server.serve(install_signals=False), 10) == 3
    assert not server.started.is_set()


async def test_app_without_lifespan_is_served_in_auto_mode_and_refused_in_on_mode() -> None:
    async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("HTTP only, like Django's ASGIHandler")
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with serve(http_only, lifespan="auto") as running:
        (response,) = parse_responses(
            await exchange(running.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        )
        assert response.status == 204
    server = Server(Config(app=http_only, host="127.0.0.1", port=0, lifespan="on"), http_only)
    assert await asyncio.wait_for(server.serve(install_signals=False), 10) == 3


async def test_an_answer_out_of_order_raises_unexpected_message_in_the_app() -> None:
    raised: list[str] = []

    async def confused(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        try:
            await send({"type": "lifespan.shutdown.complete"})
        except UnexpectedMessage as exc:
            raised.append(str(exc))
            raise

    server = Server(Config(app=confused, host="127.0.0.1", port=0, lifespan="on"))
    assert await asyncio.wait_for(server.serve(install_signals=False), 10) == 3
    assert raised == [
        "Expected 'lifespan.startup.complete' or 'lifespan.startup.failed', "
        "got 'lifespan.shutdown.complete' in state STARTING"
    ]
