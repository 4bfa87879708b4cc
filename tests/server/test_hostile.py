"""Hostile clients: each gets a clean refusal or close, and others keep being served."""

from __future__ import annotations

import asyncio
import os
import struct
import time
import zlib
from typing import Any

from websockets.asyncio.client import connect

from .support import (
    GET,
    TIMEOUT,
    exchange,
    open_raw,
    parse_responses,
    raw_websocket,
    read_all,
    read_response,
    serve,
)


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send(
                {
                    "type": "websocket.send",
                    "text": message.get("text"),
                    "bytes": message.get("bytes"),
                }
            )
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"hello"})


def client_frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    key = os.urandom(4)
    head = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", head, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", head, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, n)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def read_close_code(reader: asyncio.StreamReader) -> int:
    """Skip frames until the server's close frame; return its code."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            head = await reader.readexactly(2)
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(length)
            if head[0] & 0x0F == 8:
                return int(struct.unpack("!H", payload[:2])[0])


async def still_served(port: int) -> None:
    (response,) = parse_responses(
        await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    )
    assert response.status == 200 and response.body == b"hello"


async def test_oversized_headers_get_431_and_a_close():
    async with serve(hello, max_header_size=4096) as running:
        data = await exchange(
            running.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Huge: " + b"a" * 10_000 + b"\r\n\r\n"
        )
        (response,) = parse_responses(data)
        assert response.status == 431 and response.headers[b"connection"] == b"close"
        await still_served(running.port)


async def test_too_many_headers_get_431():
    async with serve(hello, max_header_count=20) as running:
        raw = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(50)) + b"\r\n"
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.status == 431


async def test_oversized_body_gets_413_even_while_it_is_being_sent():
    async with serve(hello, max_request_body_size=1000) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        writer.write(b"x" * 20_000)  # the client keeps sending; the answer still arrives
        (response,) = parse_responses(await read_all(reader))
        writer.close()
        assert response.status == 413
        raw = (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"y" * 1024
            + b"\r\n0\r\n\r\n"
        )
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.status == 413
        await still_served(running.port)


async def test_malformed_request_gets_400_and_a_closed_connection():
    async with serve(hello) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nNo-Colon-Here\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        data = await read_all(reader)  # returns only because the server closed
        writer.close()
        responses = parse_responses(data)
        assert [r.status for r in responses] == [400]
        for garbage in (
            b"\x00\x01\x02\x03\r\n\r\n",
            b"GET /\xff HTTP/9.9\r\n\r\n",
            b"\x16\x03\x01\x00\xa5\x01\x00",
        ):
            (response,) = parse_responses(await exchange(running.port, garbage))
            assert response.status == 400
        await still_served(running.port)


async def test_frame_above_the_limit_gets_1009():
    async with serve(hello, ws_max_message_size=1024) as running:
        reader, writer = await raw_websocket(running.port)
        writer.write(client_frame(2, b"x" * 2000))
        assert await read_close_code(reader) == 1009
        assert await read_all(reader) == b""  # and the server ends the connection
        writer.close()
        await still_served(running.port)


async def test_decompression_bomb_gets_1009():
    async with serve(hello, ws_max_message_size=64 * 1024) as running:
        reader, writer = await raw_websocket(
            running.port, b"Sec-WebSocket-Extensions: permessage-deflate"
        )
        compressor = zlib.compressobj(wbits=-15)
        bomb = compressor.compress(b"\x00" * (64 * 1024 * 1024)) + compressor.flush(
            zlib.Z_SYNC_FLUSH
        )
        writer.write(client_frame(2, bomb[:-4], rsv1=True))  # ~64 KiB that inflates to 64 MiB
        assert await read_close_code(reader) == 1009
        writer.close()
        await still_served(running.port)


async def test_idle_connection_is_dropped_while_others_are_served():
    async with serve(hello, keep_alive_timeout=0.4) as running:
        reader, _writer = await open_raw(running.port)  # connects, says nothing
        started = time.monotonic()
        await still_served(running.port)
        assert await read_all(reader) == b""
        waited = time.monotonic() - started
        assert 0.3 <= waited < 5


async def test_slow_loris_is_dropped_after_the_head_timeout_while_others_are_served():
    async with serve(hello, request_head_timeout=0.5, keep_alive_timeout=5) as running:
        reader, writer = await open_raw(running.port)
        closed = asyncio.ensure_future(read_all(reader))
        started = time.monotonic()
        sent = 0
        header = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
        while not closed.done() and sent < len(header):
            writer.write(header[sent : sent + 1])  # one byte every 50 ms
            sent += 1
            await asyncio.sleep(0.05)
            if sent == 3:
                await still_served(running.port)
        data = await closed
        assert time.monotonic() - started < 5
        assert sent < len(header)
        assert data.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_max_connections_answers_503():
    async with serve(hello, max_connections=2) as running:
        holders = [await open_raw(running.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        (response,) = parse_responses(await exchange(running.port, GET))
        assert response.status == 503
        for _, writer in holders:
            writer.close()
        await asyncio.sleep(0.1)
        await still_served(running.port)


async def test_slow_websocket_reader_gets_backpressure_then_a_close():
    progress: list[float] = []
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def flood(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            for _ in range(10_000):
                await send({"type": "websocket.send", "bytes": b"z" * 65536})
                progress.append(time.monotonic())
        except OSError as exc:
            outcome.set_result(type(exc).__name__)
            return
        outcome.set_result("sent everything")

    async with serve(flood, send_timeout=0.5, write_high_water=64 * 1024) as running:
        _reader, writer = await raw_websocket(running.port)  # never reads
        assert await asyncio.wait_for(outcome, TIMEOUT) == "ClientDisconnected"
        # Backpressure held the app back: far fewer than 10,000 sends (640 MiB).
        assert len(progress) < 1000
        assert not running.state.sessions
        writer.close()


async def test_client_that_ignores_pings_is_closed_1011():
    async with serve(hello, ws_ping_interval=0.1, ws_ping_timeout=0.3) as running:
        reader, writer = await raw_websocket(running.port)
        assert await read_close_code(reader) == 1011  # after pings went unanswered
        writer.close()


async def test_app_that_never_accepts_is_timed_out_with_503():
    async def dawdles(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(3600)

    async with serve(dawdles, ws_handshake_timeout=0.3, graceful_shutdown_timeout=0.2) as running:
        reader, writer = await open_raw(running.port)
        from .support import UPGRADE

        writer.write(UPGRADE + b"\r\n")
        (response,) = parse_responses(await read_all(reader))
        assert response.status == 503
        writer.close()


async def test_early_frames_before_accept_are_kept_and_delivered():
    async def slow_accept(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.2)
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "got " + message["text"]})
        await receive()

    async with serve(slow_accept) as running:
        reader, writer = await open_raw(running.port)
        from .support import UPGRADE

        writer.write(UPGRADE + b"\r\n" + client_frame(1, b"early"))
        await reader.readuntil(b"\r\n\r\n")
        head = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
        assert await reader.readexactly(head[1]) == b"got early"
        writer.close()


async def test_many_bad_clients_at_once_leave_the_server_serving():
    async with serve(hello, keep_alive_timeout=0.5, request_head_timeout=0.5) as running:
        bad = [
            b"\xff" * 100,
            b"GET / HTTP/1.1\r\nHost",
            b"",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ]
        await asyncio.gather(*(exchange(running.port, payload, limit=3) for payload in bad * 10))
        await still_served(running.port)
        async with connect(running.url()) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"
        assert len(running.state.sessions) <= 1


async def test_keep_alive_connection_answers_then_waits_for_the_next_request():
    async with serve(hello, keep_alive_timeout=0.3) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await read_response(reader)).status == 200
        started = time.monotonic()
        assert await read_all(reader) == b""  # closed once idle past the timeout
        assert time.monotonic() - started >= 0.2
        writer.close()


async def test_stalled_request_body_times_out_with_408():
    async def reads_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        if message["type"] == "http.disconnect":
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"complete"})

    async with serve(reads_body, body_read_timeout=0.4) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        started = time.monotonic()
        (response,) = parse_responses(await read_all(reader))
        assert response.status == 408
        assert 0.3 <= time.monotonic() - started < 5
        writer.close()
        raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.body == b"complete"


async def test_pipelined_requests_over_the_connection_limit_get_one_503(caplog: Any) -> None:
    async with serve(hello, max_connections=1) as running:
        _holder_reader, holder = await open_raw(running.port)
        await asyncio.sleep(0.05)
        pipelined = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3
        responses = parse_responses(await exchange(running.port, pipelined))
        assert [r.status for r in responses] == [503]
        holder.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_http11_request_without_host_gets_400_and_http10_is_served() -> None:
    async with serve(hello) as running:
        (refused,) = parse_responses(
            await exchange(running.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        )
        assert refused.status == 400 and refused.body == b"Missing Host header\n"
        (served,) = parse_responses(await exchange(running.port, b"GET / HTTP/1.0\r\n\r\n"))
        assert served.status == 200 and served.body == b"hello"
