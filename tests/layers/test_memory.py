"""In-memory layer specifics: direct socket delivery, O(1) housekeeping, threads."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from asgiref.sync import async_to_sync

from djwire.layers import InMemoryChannelLayer
from djwire.layers.delivery import fast_copy
from djwire.layers.direct import socket_payload


class Encoder:
    """A shared frame encoder that counts how often it encodes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str | None, data: bytes | None) -> bytes:
        self.calls += 1
        return b"frame:" + (text.encode() if text is not None else data or b"")

    def __hash__(self) -> int:
        return id(self)


class Socket:
    def __init__(self, encoder: Encoder, open_: bool = True) -> None:
        self.frame_encoder = encoder
        self.open = open_
        self.frames: list[bytes] = []
        self.write_paused = False

    def write_frame(self, frame: bytes) -> bool:
        if not self.open:
            return False
        self.frames.append(frame)
        return True


async def test_group_websocket_send_is_encoded_once_and_written_to_every_socket() -> None:
    layer = InMemoryChannelLayer()
    encoder = Encoder()
    sockets = [Socket(encoder) for _ in range(50)]
    for socket in sockets:
        channel = await layer.new_channel()
        await layer.group_add("fans", channel)
        assert layer.attach_socket(channel, socket)
    await layer.group_send("fans", {"type": "websocket.send", "text": "goal"})
    assert encoder.calls == 1
    assert all(socket.frames == [b"frame:goal"] for socket in sockets)
    assert layer.stats.direct_deliveries == 50


async def test_classic_text_reply_goes_direct_too() -> None:
    layer = InMemoryChannelLayer()
    socket = Socket(Encoder())
    channel = await layer.new_channel()
    layer.attach_socket(channel, socket)
    await layer.group_add("g", channel)
    await layer.group_send("g", {"text": "classic"})
    await layer.send(channel, {"bytes": b"\x01"})
    assert socket.frames == [b"frame:classic", b"frame:\x01"]


async def test_refused_or_busy_sockets_get_the_message_through_the_queue() -> None:
    layer = InMemoryChannelLayer()
    closed = Socket(Encoder(), open_=False)
    busy = Socket(Encoder())
    closed_channel, busy_channel = await layer.new_channel(), await layer.new_channel()
    layer.attach_socket(closed_channel, closed)
    layer.attach_socket(busy_channel, busy)
    await layer.send(busy_channel, {"type": "other.event"})  # queue not empty: keep order
    for channel in (closed_channel, busy_channel):
        await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "websocket.send", "text": "x"})
    assert closed.frames == [] and busy.frames == []
    assert (await layer.receive(closed_channel))["text"] == "x"
    assert (await layer.receive(busy_channel))["type"] == "other.event"
    assert (await layer.receive(busy_channel))["text"] == "x"


async def test_frames_wait_while_the_consumer_handles_a_message_it_claimed() -> None:
    # A claimed message may not have reached its handler yet (or the handler is
    # still sending): a websocket.send after it must not overtake it on the socket.
    layer = InMemoryChannelLayer()
    socket = Socket(Encoder())
    channel = await layer.new_channel()
    layer.attach_socket(channel, socket)
    claim = layer.claim_receive(channel)
    await layer.send(channel, {"type": "chat.message", "text": "first"})
    await layer.send(channel, {"type": "websocket.send", "text": "second"})
    assert socket.frames == []
    assert (await claim)["text"] == "first"
    assert (await layer.claim_receive(channel))["text"] == "second"
    # Done with both (it asks again): the socket takes frames directly again.
    pending = layer.claim_receive(channel)
    await layer.send(channel, {"type": "websocket.send", "text": "third"})
    assert socket.frames == [b"frame:third"] and not pending.done()


async def test_detached_socket_gets_nothing_directly() -> None:
    layer = InMemoryChannelLayer()
    socket = Socket(Encoder())
    channel = await layer.new_channel()
    layer.attach_socket(channel, socket)
    layer.detach_socket(channel)
    await layer.send(channel, {"type": "websocket.send", "text": "x"})
    assert socket.frames == []
    assert (await layer.receive(channel))["text"] == "x"


@pytest.mark.parametrize(
    "message, payload",
    [
        ({"type": "websocket.send", "text": "t"}, ("t", None)),
        ({"type": "websocket.send", "bytes": b"b"}, (None, b"b")),
        ({"text": "t"}, ("t", None)),
        ({"type": "websocket.send", "text": "t", "extra": 1}, None),
        ({"text": "t", "close": True}, None),
        ({"type": "chat.message", "text": "t"}, None),
        ({"type": "websocket.send", "text": 5}, None),
    ],
)
def test_only_plain_data_messages_qualify_for_direct_delivery(message, payload) -> None:
    assert socket_payload(message) == payload


async def test_idle_channels_and_their_bookkeeping_go_away_after_expiry() -> None:
    now = [0.0]
    layer = InMemoryChannelLayer(expiry=10)
    layer.local.clock = lambda: now[0]
    for n in range(10_000):
        await layer.send(f"idle-{n}", {"type": "x"})
    assert len(layer.local) == 10_000
    assert len(layer.local._heap) == 10_000  # one entry per channel, not per message
    for _ in range(5):
        await layer.send("idle-1", {"type": "x"})
    assert len(layer.local._heap) == 10_000
    now[0] = 11.0
    await layer.send("fresh", {"type": "x"})
    assert len(layer.local) == 1
    assert layer.stats.expired == 10_005


async def test_consumed_channels_do_not_leak_queues() -> None:
    layer = InMemoryChannelLayer()
    for _ in range(1000):
        channel = await layer.new_channel()
        task = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(layer.local) == 0


async def test_group_members_expire_without_a_send_to_the_group() -> None:
    now = [0.0]
    layer = InMemoryChannelLayer(group_expiry=10)
    layer.memberships.clock = lambda: now[0]
    for n in range(100):
        await layer.group_add(f"group-{n}", "some-channel")
    now[0] = 11.0
    await layer.group_add("trigger", "some-channel")
    assert len(layer.memberships) == 1


async def test_full_member_drop_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    layer = InMemoryChannelLayer(capacity=1)
    await layer.group_add("g", "member")
    with caplog.at_level(logging.WARNING, logger="djwire.layers"):
        await layer.group_send("g", {"type": "a"})
        await layer.group_send("g", {"type": "b"})
    assert layer.stats.dropped_full == 1
    assert "Dropped a group message for member (its queue is full)" in caplog.text


async def test_send_from_another_thread_wakes_a_receiver_on_this_loop() -> None:
    layer = InMemoryChannelLayer()
    waiting = asyncio.ensure_future(layer.receive("cross"))
    await asyncio.sleep(0.01)

    def sync_code() -> None:  # e.g. Post.save() in a thread, with its own event loop
        async_to_sync(layer.send)("cross", {"type": "from.thread"})

    thread = threading.Thread(target=sync_code)
    thread.start()
    message = await asyncio.wait_for(waiting, 2)
    thread.join()
    assert message["type"] == "from.thread"


def test_fast_copy_copies_containers_and_keeps_types() -> None:
    original = {"a": [1, {"b": (2, 3)}], "c": b"x", "d": None}
    copied = fast_copy(original)
    assert copied == original
    assert copied["a"] is not original["a"]
    assert copied["a"][1] is not original["a"][1]
    assert isinstance(copied["a"][1]["b"], tuple)


def test_unknown_backend_and_bad_config_give_clear_errors(settings) -> None:
    from djwire.exceptions import InvalidChannelLayerError
    from djwire.layers import channel_layers, get_channel_layer

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "nowhere.Layer"}}
    with pytest.raises(InvalidChannelLayerError, match=r"Cannot import BACKEND 'nowhere\.Layer'"):
        get_channel_layer()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "djwire.layers.InMemoryChannelLayer", "CONFIG": {"bogus": 1}}
    }
    assert get_channel_layer() is not None  # extra kwargs are tolerated, as in Channels
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "djwire.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 0}}
    }
    with pytest.raises(ValueError, match="capacity"):
        get_channel_layer()
    settings.CHANNEL_LAYERS = {}
    assert get_channel_layer() is None
    assert "default" not in channel_layers


async def test_claim_hands_a_message_to_a_waiting_consumer_without_queueing() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    claim = layer.claim_receive(channel)
    assert not claim.done()
    await layer.send(channel, {"type": "x", "n": 1})
    assert claim.done() and claim.result() == {"type": "x", "n": 1}
    assert not layer.local._queues[channel].items  # handed over, never queued
    layer.detach_socket(channel)  # what a consumer does when it ends
    assert len(layer.local) == 0


async def test_cancelled_claims_of_ended_consumers_leave_nothing_behind() -> None:
    layer = InMemoryChannelLayer()
    for _ in range(100):
        channel = await layer.new_channel()
        layer.claim_receive(channel).cancel()
        layer.detach_socket(channel)
    assert len(layer.local) == 0


async def test_claim_returns_a_queued_message_at_once_and_keeps_order() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "x", "n": n})
    got = [(await layer.claim_receive(channel))["n"] for _ in range(3)]
    assert got == [0, 1, 2]


async def test_cancelled_claim_leaves_later_messages_for_the_next_receiver() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    claim = layer.claim_receive(channel)
    claim.cancel()
    await asyncio.sleep(0)
    await layer.send(channel, {"type": "after"})
    assert (await layer.receive(channel))["type"] == "after"


async def test_claim_is_fulfilled_by_a_send_from_another_thread() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    claim = layer.claim_receive(channel)

    def sync_code() -> None:
        async_to_sync(layer.send)(channel, {"type": "threaded"})

    thread = threading.Thread(target=sync_code)
    thread.start()
    message = await asyncio.wait_for(claim, 2)
    thread.join()
    assert message == {"type": "threaded"}


async def test_a_finished_consumer_leaves_no_queue_in_the_layer() -> None:
    from djwire.generic.websocket import AsyncWebsocketConsumer
    from djwire.layers import get_channel_layer
    from djwire.testing import WebsocketCommunicator

    class Echo(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data=text_data)

    layer = get_channel_layer()
    for _ in range(20):
        communicator = WebsocketCommunicator(Echo.as_asgi(), "/")
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(text_data="hi")
        assert await communicator.receive_from() == "hi"
        await communicator.disconnect()
    assert len(layer.local) == 0
