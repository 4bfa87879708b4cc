"""Graceful shutdown in-process: answers finish, sockets get 1001, stragglers are cancelled."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .support import TIMEOUT, exchange, open_raw, parse_responses, read_all, serve


async def test_shutdown_finishes_http_closes_idle_and_sends_1001() -> None:
    disconnects: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            disconnects.append(await receive())
            return
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"finished"})

    async with serve(app, graceful_shutdown_timeout=5) as running:
        ws = await connect(running.url())
        idle_reader, idle_writer = await open_raw(running.port)
        busy = asyncio.ensure_future(exchange(running.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        await asyncio.sleep(0.1)
        running.server.request_shutdown()
        (response,) = parse_responses(await asyncio.wait_for(busy, TIMEOUT))
        assert response.body == b"finished"
        assert response.headers[b"connection"] == b"close"
        assert await read_all(idle_reader) == b""
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        idle_writer.close()
    assert disconnects == [{"type": "websocket.disconnect", "code": 1001, "reason": "going away"}]


async def test_apps_that_do_not_finish_are_cancelled_after_the_timeout() -> None:
    cancelled = asyncio.Event()

    async def stubborn(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    async with serve(stubborn, graceful_shutdown_timeout=0.3) as running:
        _, writer = await open_raw(running.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.1)
    assert cancelled.is_set()
    assert time.monotonic() - started < 5
    writer.close()
