"""What HTTP and WebSocket connections share (djwire/server/connection.py), over real sockets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from djwire.server.connection import Connection
from djwire.server.http_session import HttpSession
from djwire.server.websocket_session import WebSocketSession

from .support import GET, TIMEOUT, UPGRADE, exchange, open_raw, parse_responses, serve
from .test_hostile import client_frame


def test_both_sessions_are_connections() -> None:
    assert issubclass(HttpSession, Connection)
    assert issubclass(WebSocketSession, Connection)


async def test_http_and_websocket_scopes_agree_on_what_they_share() -> None:
    scopes: dict[str, dict[str, Any]] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes[scope["type"]] = scope
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b""})

    async with serve(app, root_path="/mount", forwarded_allow_ips=("127.0.0.1",)) as running:
        proxied = b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
        await exchange(
            running.port,
            b"GET /a%20b?x=1 HTTP/1.1\r\nHost: t\r\n" + proxied + b"Connection: close\r\n\r\n",
        )
        reader, writer = await open_raw(running.port)
        writer.write(UPGRADE.replace(b"GET /ws", b"GET /a%20b?x=1") + proxied + b"\r\n")
        await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    http, websocket = scopes["http"], scopes["websocket"]
    assert http["client"] == websocket["client"] == ("203.0.113.9", 0)
    assert (http["scheme"], websocket["scheme"]) == ("https", "wss")
    for key in ("root_path", "path", "raw_path", "query_string", "server", "http_version"):
        assert http[key] == websocket[key], key
    assert http["path"] == "/mount/a b" and http["raw_path"] == b"/mount/a%20b"


async def test_early_frames_that_fill_the_queue_keep_reading_paused_after_accept() -> None:
    """Two reasons to pause (frames before accept, a full queue): accepting ends one only."""
    reading: list[bool] = []

    async def accepts_then_dawdles(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.1)
        (session,) = running.state.sessions
        reading.append(session.transport.is_reading())
        for _ in range(8):
            await receive()
        await asyncio.sleep(0.05)
        reading.append(session.transport.is_reading())
        await send({"type": "websocket.close"})

    async with serve(accepts_then_dawdles, ws_max_queue=4, ws_close_timeout=0.2) as running:
        reader, writer = await open_raw(running.port)
        early = b"".join(client_frame(1, b"m%d" % i) for i in range(8))
        writer.write(UPGRADE + b"\r\n" + early)
        await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    # 8 queued messages against a queue of 4: paused until the app reads them.
    assert reading == [False, True]


async def test_a_handshake_whose_app_is_cancelled_gets_503_service_unavailable() -> None:
    async def gives_up(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise asyncio.CancelledError

    async with serve(gives_up) as running:
        (response,) = parse_responses(await exchange(running.port, UPGRADE + b"\r\n"))
    assert response.status == 503
    assert response.body == b"Service Unavailable\n"


class Unauthorized(Exception):
    """An application's own refusal, unknown to the server."""

    http_status = 401


async def test_an_exception_carrying_a_4xx_http_status_is_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refuses(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
        raise Unauthorized("log in first")

    async with serve(refuses) as running:
        (http,) = parse_responses(await exchange(running.port, GET))
        (websocket,) = parse_responses(await exchange(running.port, UPGRADE + b"\r\n"))
    assert (http.status, http.body) == (401, b"Unauthorized\n")
    assert websocket.status == 403  # a denied handshake, as the ASGI spec has it
    warnings = [r for r in caplog.records if r.name == "djwire.server"]
    lines = [r.getMessage() for r in warnings if r.levelno == logging.WARNING]
    assert "Unauthorized: GET / (log in first)" in lines
    assert "Unauthorized: WebSocket /ws (log in first)" in lines
    assert not any(r.exc_info for r in warnings)


async def test_an_http_status_outside_4xx_is_an_ordinary_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Odd(Exception):
        http_status = 200

    async def raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise Odd("not a refusal")

    async with serve(raises) as running:
        (response,) = parse_responses(await exchange(running.port, GET))
    assert response.status == 500
    assert any(r.exc_info for r in caplog.records if r.name == "djwire.server")


async def test_access_lines_name_a_unix_socket_client_alike(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})
            return
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    caplog.set_level(logging.INFO, logger="djwire.server.access")
    path = str(tmp_path / "s.sock")
    async with serve(app, uds=path, access_log=True):
        for raw in (GET, UPGRADE + b"\r\n"):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(raw)
            await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "djwire.server.access"]
    assert lines == ['- - "GET / HTTP/1.1" 204 0', '- - "WebSocket /ws" 403']
