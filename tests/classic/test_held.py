"""Channels 1 semantics of sends inside a classic consumer: held until it finishes
(returns or raises), in order; at once with ``immediately=True`` or outside a consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from djwire import Channel, Group
from djwire.classic.held import current
from djwire.exceptions import ChannelFull
from djwire.layers import get_channel_layer
from djwire.routing import route
from tests.classic.test_api import members, open_socket


@contextlib.asynccontextmanager
async def paused_consumer() -> AsyncIterator[tuple[threading.Event, Callable[[], None]]]:
    """(release, done): a consumer waits on ``release`` and calls ``done()`` last.

    The loop is kept running until the consumer is done: its flush needs the loop.
    """
    release, finished = threading.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        yield release, lambda: loop.call_soon_threadsafe(finished.set)
    finally:
        release.set()
        await asyncio.wait_for(finished.wait(), 5)


async def test_sends_are_held_until_the_consumer_returns_then_sent_in_order() -> None:
    async with paused_consumer() as (release, done):

        def consumer(message: Any) -> None:
            try:
                message.reply_channel.send({"text": "one"})
                Group("held").send({"text": "to the group"})
                Channel(message.reply_channel.name).send({"text": "two"})
                release.wait(5)
            finally:
                done()

        def join(message: Any) -> None:
            message.reply_channel.send({"accept": True})
            Group("held").add(message.reply_channel)

        routing = [route("websocket.connect", join), route("websocket.receive", consumer)]
        communicator = await open_socket(routing, "/")
        await members("held", 1)
        await communicator.send_to(text_data="go")
        assert await communicator.receive_nothing(timeout=0.3)
        release.set()
        assert [await communicator.receive_from() for _ in range(3)] == [
            "one",
            "to the group",
            "two",
        ]
        await communicator.disconnect()


async def test_held_sends_are_flushed_when_the_consumer_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(message: Any) -> None:
        message.reply_channel.send({"text": "last words"})
        raise RuntimeError("classic bug")

    communicator = await open_socket([route("websocket.receive", broken)], "/")
    with caplog.at_level(logging.ERROR, logger="djwire.classic"):
        await communicator.send_to(text_data="x")
        assert await communicator.receive_from() == "last words"
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 1011}
    assert "classic bug" in caplog.text
    await communicator.disconnect(code=1011)


async def test_immediately_sends_at_once_ahead_of_the_held_sends() -> None:
    async with paused_consumer() as (release, done):

        def consumer(message: Any) -> None:
            try:
                message.reply_channel.send({"text": "held"})
                message.reply_channel.send({"text": "now"}, immediately=True)
                release.wait(5)
            finally:
                done()

        communicator = await open_socket([route("websocket.receive", consumer)], "/")
        await communicator.send_to(text_data="go")
        assert await communicator.receive_from() == "now"
        assert await communicator.receive_nothing(timeout=0.2)
        release.set()
        assert await communicator.receive_from() == "held"
        await communicator.disconnect()


async def test_the_talks_chat_accepts_only_once_the_socket_is_in_the_group() -> None:
    # The talk's order: accept, then join. Held, the accept reaches the client after
    # the join, so a message sent as soon as the client is connected is not missed.
    def chat_connect(message: Any) -> None:
        message.reply_channel.send({"accept": True})
        Group("talk-chat").add(message.reply_channel)

    communicator = await open_socket([route("websocket.connect", chat_connect)], "/")
    layer = get_channel_layer()
    assert layer is not None
    assert len(await layer.group_channels("talk-chat")) == 1
    await communicator.disconnect()


@pytest.mark.django_db
async def test_sends_outside_a_consumer_are_immediate() -> None:
    layer = get_channel_layer()
    assert layer is not None
    name = await layer.new_channel()

    def from_a_view() -> bool:
        Channel(name).send({"text": "at once"})
        return current() is None

    assert await sync_to_async(from_a_view)()
    assert await asyncio.wait_for(layer.receive(name), 1) == {"text": "at once"}


async def test_a_channel_that_stays_full_ends_the_flush_with_channel_full(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DJWIRE_CLASSIC_FULL_RETRY = 0.05
    layer = get_channel_layer()
    assert layer is not None
    capacity = layer.get_capacity("nobody-reads")

    def flood(message: Any) -> None:
        for n in range(capacity + 5):
            Channel("nobody-reads").send({"n": n})

    communicator = await open_socket([route("websocket.receive", flood)], "/")
    with caplog.at_level(logging.ERROR, logger="djwire.classic"):
        await communicator.send_to(text_data="go")
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 1011}
    assert "'nobody-reads' stayed full" in caplog.text
    assert "5 message(s) held by the consumer were not sent" in caplog.text
    assert ChannelFull.__name__ in caplog.text
    received = [(await layer.receive("nobody-reads"))["n"] for _ in range(capacity)]
    assert received == list(range(capacity))
    await communicator.disconnect(code=1011)


def test_sends_check_their_content_even_when_held() -> None:
    with pytest.raises(TypeError, match="only send dicts"):
        Channel("x").send("text")  # type: ignore[arg-type]


async def test_a_named_channel_consumer_holds_its_sends_too() -> None:
    from djwire.classic.app import ClassicChannelApp
    from djwire.testing import ApplicationCommunicator

    layer = get_channel_layer()
    assert layer is not None
    reply = await layer.new_channel()
    async with paused_consumer() as (release, done):

        def thumbnail(message: Any) -> None:
            try:
                Channel(reply).send({"done": message["id"]})
                release.wait(5)
            finally:
                done()

        app = ClassicChannelApp([route("thumbnails", thumbnail)])
        communicator = ApplicationCommunicator(app, {"type": "channel", "channel": "thumbnails"})
        await communicator.send_input({"id": 7})
        receiving = asyncio.ensure_future(layer.receive(reply))
        done_early, _ = await asyncio.wait({receiving}, timeout=0.2)
        assert not done_early
        release.set()
        assert await asyncio.wait_for(receiving, 2) == {"done": 7}
    communicator.stop()  # type: ignore[no-untyped-call]
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.wait()
