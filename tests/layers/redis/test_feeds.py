"""The inbox feed: an idle process gets its next message with the wake-up."""

from __future__ import annotations

import asyncio

import pytest
import redis

from djwire.layers.redis import RedisChannelLayer, envelope
from djwire.layers.redis.envelope import Kind, now_ms
from tests.support.redis_servers import RedisServer

from .conftest import MakeLayer, eventually


async def receive(layer: RedisChannelLayer, channel: str, seconds: float = 5) -> dict:
    return await asyncio.wait_for(layer.receive(channel), seconds)


async def nothing_for(layer: RedisChannelLayer, channel: str, seconds: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), seconds)


def idle_mark(layer: RedisChannelLayer) -> bytes:
    return layer.keys.idle(layer.keys.inbox(layer.token))


async def until_marked_idle(layer: RedisChannelLayer, redis_server: RedisServer) -> None:
    """Wait (at most 5 s) until the layer's inbox feed has left its idle mark."""
    assert await eventually(lambda: redis_server.command("EXISTS", idle_mark(layer)) == 1, 5)


async def test_a_message_to_an_idle_inbox_comes_with_its_wake_up(
    make_layer: MakeLayer, redis_server: RedisServer
) -> None:
    sender, receiver = make_layer(), make_layer()
    channel = await receiver.new_channel()
    await until_marked_idle(receiver, redis_server)
    watcher = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5).pubsub()
    try:
        watcher.subscribe(receiver.keys.wake(receiver.keys.inbox(receiver.token)))
        assert watcher.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        await sender.send(channel, {"type": "hello", "n": 1})
        assert await receive(receiver, channel) == {"type": "hello", "n": 1}
        published = watcher.get_message(timeout=5)
    finally:
        watcher.close()
    assert published is not None
    batch_id, _, item = published["data"].partition(b"\n")
    assert batch_id.startswith(b"#" + receiver.token.encode())
    assert receiver.serializer.loads(envelope.parse(item).payload) == {"type": "hello", "n": 1}
    await nothing_for(receiver, channel)  # delivered once, though the next take confirms it
    # The feed marked itself idle again, so the next message comes the same way.
    await until_marked_idle(receiver, redis_server)


async def test_a_message_whose_wake_up_nobody_heard_is_delivered_once_in_order(
    make_layer: MakeLayer, redis_server: RedisServer
) -> None:
    sender, receiver = make_layer(), make_layer()
    channel = await receiver.new_channel()
    await until_marked_idle(receiver, redis_server)
    receiver.feeds.inbox.stop()  # type: ignore[union-attr]  # it stops listening too
    await asyncio.sleep(0.05)
    for n in range(20):  # the first becomes the stopped feed's batch, the rest queue
        await sender.send(channel, {"type": "m", "n": n})
    inbox = receiver.keys.inbox(receiver.token)
    assert redis_server.command("LLEN", receiver.keys.taken(inbox, receiver.token)) == 3
    assert redis_server.command("LLEN", inbox) == 19
    got = [await receive(receiver, channel) for _ in range(20)]  # a new feed starts
    assert [message["n"] for message in got] == list(range(20))
    await nothing_for(receiver, channel)


async def test_a_batch_that_comes_twice_is_delivered_once(make_layer: MakeLayer) -> None:
    # A batch comes with its wake-up and may also come in the reply of a take that
    # ran before the feed confirmed it.
    receiver = make_layer()
    channel = await receiver.new_channel()
    await nothing_for(receiver, channel)  # the feed runs and is idle
    feed = receiver.feeds.inbox
    assert feed is not None
    item = envelope.build(
        now_ms() + 10_000, Kind.MESSAGE, channel, receiver.serialize({"type": "once"})
    )
    batch = f"#{receiver.token}.{10**12}".encode()
    feed._woken(batch + b"\n" + item)
    feed._woken(batch + b"\n" + item)
    feed._deliver_batch(batch, b"", [item])
    assert await receive(receiver, channel) == {"type": "once"}
    await nothing_for(receiver, channel)
