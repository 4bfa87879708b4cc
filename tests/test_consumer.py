"""Consumers, driven through the communicators: dispatch by type, threads, the layer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from djwire.consumer import AsyncConsumer, SyncConsumer, get_handler_name
from djwire.exceptions import StopConsumer
from djwire.layers import get_channel_layer
from djwire.testing import ApplicationCommunicator
from tests.support.awaitables import KINDS, with_awaitable_callables


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}


SCOPE = {"type": "testing"}


class Recorder(AsyncConsumer):
    """Echoes each chat.message back with its handler's name and its channel name."""

    async def chat_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "echo", "got": message["text"], "channel": self.channel_name})

    async def chat_stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


def test_handler_names_replace_dots_with_underscores() -> None:
    assert get_handler_name({"type": "chat.message.new"}) == "chat_message_new"
    with pytest.raises(ValueError, match="no 'type'"):
        get_handler_name({})
    with pytest.raises(ValueError, match="leading underscore"):
        get_handler_name({"type": "._private"})


async def test_a_message_is_dispatched_to_the_method_named_by_its_type() -> None:
    communicator = ApplicationCommunicator(Recorder.as_asgi(), SCOPE)
    await communicator.send_input({"type": "chat.message", "text": "hi"})
    reply = await communicator.receive_output()
    assert reply["type"] == "echo" and reply["got"] == "hi"
    await communicator.send_input({"type": "chat.stop"})
    await communicator.wait()


async def test_layer_messages_to_the_consumers_channel_reach_its_handlers() -> None:
    communicator = ApplicationCommunicator(Recorder.as_asgi(), SCOPE)
    await communicator.send_input({"type": "chat.message", "text": "who am I"})
    channel_name = (await communicator.receive_output())["channel"]
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(channel_name, {"type": "chat.message", "text": "from the layer"})
    assert (await communicator.receive_output())["got"] == "from the layer"
    await communicator.send_input({"type": "chat.stop"})
    await communicator.wait()


async def test_a_message_without_a_handler_is_an_error() -> None:
    communicator = ApplicationCommunicator(Recorder.as_asgi(), SCOPE)
    await communicator.send_input({"type": "chat.unknown"})
    with pytest.raises(ValueError, match=r"No handler for message type chat\.unknown"):
        await communicator.receive_output()


async def test_a_consumer_works_without_a_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}

    class Plain(AsyncConsumer):
        async def ping(self, message: dict[str, Any]) -> None:
            await self.send({"type": "pong", "layer": self.channel_layer})

    communicator = ApplicationCommunicator(Plain.as_asgi(), SCOPE)
    await communicator.send_input({"type": "ping"})
    assert await communicator.receive_output() == {"type": "pong", "layer": None}
    communicator.stop()


async def test_channel_layer_alias_picks_the_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"},
        "other": {"BACKEND": "djwire.layers.InMemoryChannelLayer"},
    }

    class OnOther(Recorder):
        channel_layer_alias = "other"

    communicator = ApplicationCommunicator(OnOther.as_asgi(), SCOPE)
    await communicator.send_input({"type": "chat.message", "text": "x"})
    channel_name = (await communicator.receive_output())["channel"]
    other = get_channel_layer("other")
    assert other is not None and other is not get_channel_layer()
    await other.send(channel_name, {"type": "chat.message", "text": "via other"})
    assert (await communicator.receive_output())["got"] == "via other"
    communicator.stop()


async def test_as_asgi_makes_one_instance_per_connection_with_initkwargs() -> None:
    instances: list[Any] = []

    class Tagged(AsyncConsumer):
        tag = "default"

        async def hello(self, message: dict[str, Any]) -> None:
            instances.append(self)
            await self.send({"type": "tag", "tag": self.tag})

    app = Tagged.as_asgi(tag="custom")
    assert app.consumer_class is Tagged  # type: ignore[attr-defined]
    assert app.consumer_initkwargs == {"tag": "custom"}  # type: ignore[attr-defined]
    first, second = ApplicationCommunicator(app, SCOPE), ApplicationCommunicator(app, SCOPE)
    for communicator in (first, second):
        await communicator.send_input({"type": "hello"})
        assert (await communicator.receive_output())["tag"] == "custom"
        communicator.stop()
    assert len(instances) == 2 and instances[0] is not instances[1]


class ThreadReporter(SyncConsumer):
    def where_am_i(self, message: dict[str, Any]) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        self.send({"type": "here", "thread": threading.get_ident(), "on_loop": on_loop})


async def test_sync_consumer_handlers_run_in_a_thread_off_the_event_loop() -> None:
    communicator = ApplicationCommunicator(ThreadReporter.as_asgi(), SCOPE)
    await communicator.send_input({"type": "where.am.i"})
    reply = await communicator.receive_output()
    assert reply["thread"] != threading.get_ident()
    assert reply["on_loop"] is False
    communicator.stop()


@pytest.mark.django_db(transaction=True)
async def test_sync_consumer_can_use_the_database() -> None:
    from django.contrib.auth.models import User

    class Counter(SyncConsumer):
        def count(self, message: dict[str, Any]) -> None:
            self.send({"type": "count", "users": User.objects.count()})

    communicator = ApplicationCommunicator(Counter.as_asgi(), SCOPE)
    await communicator.send_input({"type": "count"})
    assert (await communicator.receive_output())["users"] == 0
    communicator.stop()


# -- ASGI awaitable callables (issue 10 item 4) -------------------------------------------


class Pinger(AsyncConsumer):
    async def ping(self, message: dict[str, Any]) -> None:
        await self.send({"type": "pong", "channel": self.channel_name})


class SyncPinger(SyncConsumer):
    def ping(self, message: dict[str, Any]) -> None:
        self.send({"type": "pong", "channel": self.channel_name})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("consumer", [Pinger, SyncPinger])
async def test_receive_and_send_may_return_futures(consumer: type, kind: str) -> None:
    # ASGI allows any callable returning an awaitable. A sync consumer's send went
    # through async_to_sync, which called it in the handler's thread: no event
    # loop there for ensure_future, so every send failed.
    app = with_awaitable_callables(consumer.as_asgi(), kind)
    communicator = ApplicationCommunicator(app, SCOPE)
    await communicator.send_input({"type": "ping"})
    reply = await communicator.receive_output()
    assert reply["type"] == "pong"
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(reply["channel"], {"type": "ping"})
    assert (await communicator.receive_output())["type"] == "pong"
    communicator.stop()
