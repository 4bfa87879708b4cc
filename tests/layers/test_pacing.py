"""Backpressure for senders in a loop (djwire/layers/pacing.py), beyond the contract suite:
sync senders in a thread, a consumer sending to its own group, and end to end with
djwire's server and real WebSocket clients on every backend with local delivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.urls import path
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from djwire.generic.websocket import AsyncWebsocketConsumer
from djwire.layers import InMemoryChannelLayer, get_channel_layer
from djwire.routing import URLRouter
from tests.server.support import TIMEOUT, serve

pytestmark = pytest.mark.asyncio

PAD = "x" * 1024  # 1 KiB messages, as in the issue


async def test_a_sync_sender_in_a_thread_is_paced_too() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("threaded", channel)
    got: list[int] = []

    async def consume() -> None:
        while len(got) < 1000:
            got.append((await layer.receive(channel))["n"])
            await asyncio.sleep(0)

    receiver = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)

    def sync_code() -> None:  # e.g. a management command: each call on a fresh loop
        for n in range(1000):
            async_to_sync(layer.group_send)("threaded", {"type": "n", "n": n})

    thread = threading.Thread(target=sync_code)
    thread.start()
    await asyncio.wait_for(receiver, TIMEOUT)
    thread.join(TIMEOUT)
    assert got == list(range(1000))
    assert layer.stats.dropped_full == 0


async def test_a_consumer_sending_to_its_own_group_is_not_held_up_by_itself() -> None:
    layer = InMemoryChannelLayer(capacity=10)
    channel = await layer.new_channel()
    await layer.group_add("mine", channel)
    claim = layer.claim_receive(channel)  # as a consumer's task does while it handles

    async with asyncio.timeout(TIMEOUT):  # in this task, as a consumer's handler
        for n in range(30):  # it cannot take from its own queue while it sends
            await layer.group_send("mine", {"type": "n", "n": n})
    assert (await claim)["n"] == 0
    assert "backpressure_timeouts" not in layer.stats.extra
    assert layer.stats.dropped_full == 30 - 1 - 10  # beyond its capacity, as before


# -- end to end: djwire's server, consumers, real WebSocket clients ----------------------


class Member(AsyncWebsocketConsumer):
    groups = ["pacing-e2e"]

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data="joined")

    async def burst_item(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class Trigger(AsyncWebsocketConsumer):
    """Sends a burst of group messages from one handler, back to back."""

    async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
        assert text_data is not None
        mode, burst, count = text_data.split()
        for n in range(int(count)):
            text = json.dumps([int(burst), n, PAD])
            if mode == "direct":  # straight to the member's socket
                message = {"type": "websocket.send", "text": text}
            else:  # through the member's handler
                message = {"type": "burst.item", "text": text}
            await self.channel_layer.group_send("pacing-e2e", message)
        await self.send(text_data="sent")


application = URLRouter([path("member/", Member.as_asgi()), path("trigger/", Trigger.as_asgi())])


@pytest.fixture(params=["memory", "ipc", "redis"])
def layer_settings(request: pytest.FixtureRequest, settings: Any) -> Iterator[None]:
    if request.param == "memory":
        config: dict[str, Any] = {"BACKEND": "djwire.layers.InMemoryChannelLayer"}
    elif request.param == "ipc":
        space = tempfile.mkdtemp(prefix="djw-ipc-")
        request.addfinalizer(lambda: shutil.rmtree(space, ignore_errors=True))
        config = {"BACKEND": "djwire.layers.ipc.IPCChannelLayer", "CONFIG": {"path": space}}
    else:
        from tests.support.redis_servers import single_server

        url = single_server(request.config).url
        config = {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": "pacing-e2e"},
        }
    settings.CHANNEL_LAYERS = {"default": config}
    yield


def _small_buffer_socket(port: int) -> socket.socket:
    """A client socket whose kernel receive buffer is small, so what a reader that is
    not scheduled yet cannot take piles up in the server, not in the kernel (Linux
    grows a loopback receive buffer to tcp_rmem's maximum, tens of MiB, otherwise)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connecting
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def member_and_trigger() -> AsyncIterator[tuple[ClientConnection, ClientConnection]]:
    """djwire's server running ``application``, a member's client (joined) and a
    trigger's client."""
    async with (
        serve(application) as running,
        # No compression: 1 KiB of "x" would deflate to a few bytes.
        connect(
            running.url("/member/"), sock=_small_buffer_socket(running.port), compression=None
        ) as member,
        connect(running.url("/trigger/")) as trigger,
    ):
        assert await asyncio.wait_for(member.recv(), TIMEOUT) == "joined"
        yield member, trigger


async def _read_bursts(member: ClientConnection, bursts: int, count: int) -> list[list[int]]:
    got: list[list[int]] = []
    while len(got) < bursts * count:
        burst, n, _ = json.loads(await asyncio.wait_for(member.recv(), TIMEOUT))
        got.append([burst, n])
    return got


@pytest.mark.parametrize("mode", ["handler", "direct"])
async def test_bursts_of_group_messages_from_a_handler_all_reach_a_member_that_reads(
    layer_settings: None, mode: str
) -> None:
    # 1,000 x 1 KiB per burst through the handler; written directly, 16 MiB at once:
    # more than the socket buffers and the server's write_buffer_limit (4 MiB) hold.
    bursts, count = (3, 1000) if mode == "handler" else (1, 16_000)
    async with member_and_trigger() as (member, trigger):
        reading = asyncio.ensure_future(_read_bursts(member, bursts, count))
        for burst in range(bursts):
            await trigger.send(f"{mode} {burst} {count}")
            assert await asyncio.wait_for(trigger.recv(), TIMEOUT) == "sent"
        got = await asyncio.wait_for(reading, TIMEOUT)
    assert got == [[burst, n] for burst in range(bursts) for n in range(count)]
    assert get_channel_layer().stats.dropped_full == 0


async def test_a_member_whose_client_stops_reading_holds_the_sender_up_once(
    settings: Any,
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "djwire.layers.InMemoryChannelLayer",
            "CONFIG": {"backpressure_timeout": 0.2},
        }
    }
    async with member_and_trigger() as (member, trigger):
        # The member's client reads nothing more: its buffers fill, then the server's.
        for burst in range(2):  # 12 MiB in all
            await trigger.send(f"direct {burst} 6000")
            assert await asyncio.wait_for(trigger.recv(), TIMEOUT) == "sent"
        stats = get_channel_layer().stats
        assert stats.extra["backpressure_timeouts"] == 1  # then no more waiting for it
        # Past write_buffer_limit (4 MiB) the server disconnected it as a slow reader.
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                for _ in range(12_001):  # bounded: fewer than that can arrive
                    await member.recv()
