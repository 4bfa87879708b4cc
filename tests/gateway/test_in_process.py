"""Gateway mode in one process: a gateway and connection workers on one in-memory layer,
over real sockets. Fast checks of the exchange; tests/gateway/test_split.py runs the
real thing (separate processes, Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.urls import path
from websockets.asyncio.client import connect

from djwire.gateway.app import GatewayApp
from djwire.gateway.settings import GatewaySettings
from djwire.generic.websocket import AsyncJsonWebsocketConsumer, WebsocketConsumer
from djwire.layers import InMemoryChannelLayer, channel_layers
from djwire.routing import ProtocolTypeRouter, URLRouter
from djwire.worker import WorkerSettings
from djwire.worker.connections import ConnectionHost
from tests.server.support import serve

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 5
STREAMED_CHUNKS = 300
FAST = GatewaySettings(heartbeat_interval=0.05, worker_timeout=0.3, claim_timeout=1.0)


class Counter(AsyncJsonWebsocketConsumer):
    """Keeps state on the instance, as consumers do."""

    async def connect(self) -> None:
        self.count = 0
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content.get("say"):
            await self.channel_layer.group_send(
                self.room, {"type": "chat.message", "text": content["say"]}
            )
            return
        self.count += 1
        await self.send_json({"count": self.count})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"heard": event["text"]})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=f"echo:{text_data}")


class Broken(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the consumer")


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/silent/":
        return  # returns without a response: the worker answers 500 for it
    if scope["path"] == "/stream/":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(STREAMED_CHUNKS):
            chunk = b"%05d" % n * 2000
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    event = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-n", b"1")]})
    await send({"type": "http.response.body", "body": b"hello " + event.get("body", b"")})


application = ProtocolTypeRouter(
    {
        "http": hello,
        "websocket": URLRouter(
            [
                path("count/<room>/", Counter.as_asgi()),
                path("echo/", SyncEcho.as_asgi()),
                path("broken/", Broken.as_asgi()),
            ]
        ),
    }
)


@contextlib.asynccontextmanager
async def running_worker(layer: InMemoryChannelLayer) -> AsyncIterator[ConnectionHost]:
    host = ConnectionHost(
        application, layer, WorkerSettings(concurrency=4, shutdown_timeout=2), FAST
    )
    task = asyncio.ensure_future(host.handle())
    try:
        yield host
    finally:
        await host.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryChannelLayer]:
    layer = InMemoryChannelLayer()
    old = channel_layers.set("default", layer)
    try:
        yield layer
    finally:
        channel_layers.set("default", old)


async def recv_json(ws: Any) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def test_a_consumer_runs_on_a_worker_and_keeps_its_state(
    layer: InMemoryChannelLayer,
) -> None:
    gateway = GatewayApp(FAST)
    async with (
        running_worker(layer),
        serve(gateway) as server,
        connect(server.url("/count/lobby/")) as ws,
    ):
        for n in range(1, 4):
            await ws.send(json.dumps({}))
            assert await recv_json(ws) == {"count": n}


async def test_group_messages_reach_the_consumer_through_the_gateway(
    layer: InMemoryChannelLayer,
) -> None:
    gateway = GatewayApp(FAST)
    async with running_worker(layer), serve(gateway) as server:
        async with (
            connect(server.url("/count/room/")) as a,
            connect(server.url("/count/room/")) as b,
        ):
            await a.send(json.dumps({}))  # both joined once their first reply came
            await b.send(json.dumps({}))
            assert await recv_json(a) == {"count": 1}
            assert await recv_json(b) == {"count": 1}
            await a.send(json.dumps({"say": "hi"}))
            assert await recv_json(a) == {"heard": "hi"}
            assert await recv_json(b) == {"heard": "hi"}
            # A websocket.send group message goes straight to the sockets.
            await layer.group_send("room", {"type": "websocket.send", "text": "direct"})
            assert await asyncio.wait_for(a.recv(), TIMEOUT) == "direct"
            assert await asyncio.wait_for(b.recv(), TIMEOUT) == "direct"
        assert layer.stats.direct_deliveries >= 2


async def test_sync_consumers_and_http_run_on_workers(layer: InMemoryChannelLayer) -> None:
    import urllib.request

    gateway = GatewayApp(FAST)
    async with running_worker(layer), serve(gateway) as server:
        async with connect(server.url("/echo/")) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "echo:x"

        def fetch() -> tuple[bytes, str | None]:
            request = urllib.request.Request(server.url("/", "http"), data=b"there")
            with urllib.request.urlopen(request, timeout=TIMEOUT) as page:
                return page.read(), page.headers["x-n"]

        assert await asyncio.to_thread(fetch) == (b"hello there", "1")


async def test_a_stopped_worker_hands_its_connections_to_another_with_their_state(
    layer: InMemoryChannelLayer,
) -> None:
    gateway = GatewayApp(FAST)
    async with (
        serve(gateway) as server,
        running_worker(layer),
        connect(server.url("/count/lobby/")) as ws,
    ):
        async with running_worker(layer) as first:
            await ws.send(json.dumps({}))
            assert await recv_json(ws) == {"count": 1}
        # `first` stopped; the other worker carries on, socket open, state intact.
        assert not first.connections
        await ws.send(json.dumps({}))
        assert await recv_json(ws) == {"count": 2}


async def test_without_a_worker_new_connections_wait_and_then_get_served(
    layer: InMemoryChannelLayer,
) -> None:
    gateway = GatewayApp(FAST)
    async with serve(gateway) as server:
        opening = asyncio.ensure_future(connect(server.url("/count/lobby/")))
        await asyncio.sleep(0.3)
        assert not opening.done()  # the handshake waits for a worker
        async with running_worker(layer), await opening as ws:
            await ws.send(json.dumps({}))
            assert await recv_json(ws) == {"count": 1}


async def test_past_max_pending_new_handshakes_and_requests_get_503(
    layer: InMemoryChannelLayer,
) -> None:
    import urllib.error
    import urllib.request

    from websockets.exceptions import InvalidStatus

    settings = GatewaySettings(
        heartbeat_interval=0.05, worker_timeout=10.0, claim_timeout=5.0, max_pending=2
    )
    gateway = GatewayApp(settings)
    async with serve(gateway) as server:
        waiting = [asyncio.ensure_future(connect(server.url("/count/a/"))) for _ in range(2)]
        for _ in range(100):
            if len(gateway.waiting) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(gateway.waiting) == 2
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url("/count/a/"))
        assert refused.value.response.status_code == 503

        def fetch() -> int:
            try:
                with urllib.request.urlopen(server.url("/", "http"), timeout=TIMEOUT) as page:
                    return int(page.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        assert await asyncio.to_thread(fetch) == 503
        async with running_worker(layer):  # the waiting ones are served after all
            for opening in waiting:
                async with await opening as ws:
                    await ws.send(json.dumps({}))
                    assert await recv_json(ws) == {"count": 1}


async def test_what_the_application_leaves_open_is_closed_as_in_process(
    layer: InMemoryChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    import urllib.error
    import urllib.request

    from websockets.exceptions import ConnectionClosedError, InvalidStatus

    gateway = GatewayApp(FAST)
    async with running_worker(layer), serve(gateway) as server:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url("/no/such/route/"))
        assert refused.value.response.status_code == 403
        async with connect(server.url("/broken/")) as ws:
            await ws.send(json.dumps({}))
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1011

        def fetch() -> int:
            try:
                with urllib.request.urlopen(server.url("/silent/", "http"), timeout=TIMEOUT):
                    return 200
            except urllib.error.HTTPError as error:
                return int(error.code)

        assert await asyncio.to_thread(fetch) == 500
    assert "Not Found: websocket /no/such/route/" in caplog.text
    assert "a bug in the consumer" in caplog.text


async def test_a_long_streamed_response_reaches_a_slow_client_whole(
    layer: InMemoryChannelLayer,
) -> None:
    gateway = GatewayApp(FAST)
    async with running_worker(layer), serve(gateway) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = bytearray()
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            received += chunk
            await asyncio.sleep(0.005)  # a slow client: the worker must wait, not drop
        writer.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    # chunked transfer coding: take the chunk sizes out
    data = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        data += body[:size]
        body = body[size + 2 :]
    expected = b"".join(b"%05d" % n * 2000 for n in range(STREAMED_CHUNKS))
    assert len(data) == len(expected) and data == expected
    assert layer.stats.dropped_full == 0


async def test_a_classic_connection_moves_to_another_worker_and_goes_on(
    layer: InMemoryChannelLayer,
) -> None:
    from djwire.classic.app import ClassicWebsocketApp

    classic = ClassicWebsocketApp("tests.gateway.project.classic.channel_routing")

    @contextlib.asynccontextmanager
    async def classic_worker() -> AsyncIterator[ConnectionHost]:
        host = ConnectionHost(classic, layer, WorkerSettings(shutdown_timeout=2), FAST)
        task = asyncio.ensure_future(host.handle())
        try:
            yield host
        finally:
            await host.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    gateway = GatewayApp(FAST)
    async with serve(gateway) as server, contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(classic_worker())
        ws = await stack.enter_async_context(connect(server.url("/")))
        await ws.send("one")  # handled on the first worker, which acknowledges it
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "one"
        await stack.enter_async_context(classic_worker())
        await first.stop()  # the connection moves, with nothing left to replay
        for text in ("two", "three"):
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == text
        await ws.close()  # while a worker still runs it


class Resumable(AsyncJsonWebsocketConsumer):
    """Keeps a future (cannot travel) and a name (travels); rebuilds the future on resume."""

    async def connect(self) -> None:
        self.name = "kept"
        self.pending = asyncio.get_running_loop().create_future()
        self.resumes = 0
        await self.accept()

    async def resumed(self) -> None:
        self.resumes += 1
        self.pending = asyncio.get_running_loop().create_future()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        assert not self.pending.done()
        await self.send_json({"name": self.name, "resumes": self.resumes})


class Narrow(AsyncJsonWebsocketConsumer):
    state_attributes = ("kept",)

    async def connect(self) -> None:
        self.kept, self.dropped = 1, 2
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"kept": self.kept, "dropped": getattr(self, "dropped", None)})


async def test_what_moves_with_a_consumer_and_what_resumed_rebuilds(
    layer: InMemoryChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    app = URLRouter([path("resumable/", Resumable.as_asgi()), path("narrow/", Narrow.as_asgi())])

    @contextlib.asynccontextmanager
    async def worker() -> AsyncIterator[ConnectionHost]:
        host = ConnectionHost(app, layer, WorkerSettings(shutdown_timeout=2), FAST)
        task = asyncio.ensure_future(host.handle())
        try:
            yield host
        finally:
            await host.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    gateway = GatewayApp(FAST)
    async with serve(gateway) as server, contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(worker())
        resumable = await stack.enter_async_context(connect(server.url("/resumable/")))
        narrow = await stack.enter_async_context(connect(server.url("/narrow/")))
        await resumable.send("{}")
        assert await recv_json(resumable) == {"name": "kept", "resumes": 0}
        await narrow.send("{}")
        assert await recv_json(narrow) == {"kept": 1, "dropped": 2}
        await stack.enter_async_context(worker())
        await first.stop()  # both move: new instances, state restored, resumed() called
        await resumable.send("{}")
        assert await recv_json(resumable) == {"name": "kept", "resumes": 1}
        await narrow.send("{}")
        assert await recv_json(narrow) == {"kept": 1, "dropped": None}
        await resumable.close()
        await narrow.close()
    assert "Resumable.pending cannot be pickled" in caplog.text
