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


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    event = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-n", b"1")]})
    await send({"type": "http.response.body", "body": b"hello " + event.get("body", b"")})


application = ProtocolTypeRouter(
    {
        "http": hello,
        "websocket": URLRouter(
            [path("count/<room>/", Counter.as_asgi()), path("echo/", SyncEcho.as_asgi())]
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
