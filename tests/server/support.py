"""Helpers for the server tests: run a server in the test's loop, talk raw HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httptools

from djwire.server.config import Config
from djwire.server.server import Server

#: Every wait in these tests is bounded by this.
TIMEOUT = 10.0


@dataclass
class Running:
    server: Server
    host: str
    port: int

    @property
    def state(self) -> Any:
        return self.server.state

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[Running]:
    """Run ``app`` on a free loopback port for the duration of the block."""
    options.setdefault("access_log", False)
    options.setdefault("graceful_shutdown_timeout", 3.0)
    options.setdefault("lifespan", "off")
    config = Config(app=app, host="127.0.0.1", port=0, **options)
    server = Server(config, app)
    task = asyncio.create_task(server.serve(install_signals=False))
    started = asyncio.create_task(server.started.wait())
    await asyncio.wait([task, started], timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()
        raise RuntimeError("server did not start")
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield Running(server, host, port)
    finally:
        server.request_shutdown()
        await asyncio.wait_for(task, TIMEOUT + config.graceful_shutdown_timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)


async def read_all(reader: asyncio.StreamReader, limit: float = TIMEOUT) -> bytes:
    """Everything until the server closes (bounded by ``timeout``)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    return b"".join(chunks)


async def exchange(
    port: int, raw: bytes, limit: float = TIMEOUT, half_close: bool = False
) -> bytes:
    """Send ``raw``, return all the server sent until it closed.

    With ``half_close`` the client then shuts down its sending side, which servers
    (and Django) take as the client going away.
    """
    reader, writer = await open_raw(port)
    writer.write(raw)
    await writer.drain()
    if half_close:
        with contextlib.suppress(OSError):
            writer.write_eof()
    try:
        return await read_all(reader, limit)
    finally:
        writer.close()


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class _Collector:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.complete = 0
        # httptools looks its callbacks up once, here: they must be methods.
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.complete += 1

    def on_message_begin(self) -> None:
        self.responses.append(Response(0))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers[name.lower()] = value
        self.responses[-1].raw_headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.responses[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body


def parse_responses(data: bytes) -> list[Response]:
    """Every complete HTTP response in ``data`` (bodies de-chunked)."""
    collector = _Collector()
    with contextlib.suppress(httptools.HttpParserError):
        collector.parser.feed_data(data)
    return collector.responses


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read exactly one response from a kept-alive connection."""
    collector = _Collector()
    async with asyncio.timeout(TIMEOUT):
        while not collector.complete:
            chunk = await reader.read(65536)
            if not chunk:
                break
            collector.parser.feed_data(chunk)
    return collector.responses[0]


GET = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def raw_websocket(
    port: int, *extra_headers: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand: for clients that misbehave on purpose."""
    reader, writer = await open_raw(port)
    writer.write(UPGRADE + b"".join(h + b"\r\n" for h in extra_headers) + b"\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer
