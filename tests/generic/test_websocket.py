"""WebSocket consumers (sync, async, JSON) through WebsocketCommunicator."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.urls import path

from djwire.auth import AuthMiddlewareStack
from djwire.consumer import AsyncConsumer
from djwire.exceptions import AcceptConnection, DenyConnection, InvalidChannelLayerError
from djwire.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from djwire.layers import get_channel_layer
from djwire.routing import ProtocolTypeRouter, URLRouter
from djwire.security.websocket import AllowedHostsOriginValidator
from djwire.testing import WebsocketCommunicator
from tests.support.awaitables import KINDS, with_awaitable_callables

# -- the same chat consumer, written sync and async -----------------------------------


class SyncChat(WebsocketConsumer):
    """Echoes frames; joins "room"; relays chat.message group events to the client."""

    groups = ["room"]
    closed_with: list[int] = []

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            self.close(code=4000, reason="asked")
        elif text_data == "bye":
            self.send(text_data="bye!", close=True)
        elif text_data is not None:
            self.send(text_data=f"sync:{text_data}:{threading.get_ident()}")
        else:
            self.send(bytes_data=bytes_data[::-1] if bytes_data else b"")

    def chat_message(self, event: dict[str, Any]) -> None:
        self.send(text_data=event["text"])

    def disconnect(self, code: int) -> None:
        self.closed_with.append(code)


class AsyncChat(AsyncWebsocketConsumer):
    groups = ["room"]
    closed_with: list[int] = []

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            await self.close(code=4000, reason="asked")
        elif text_data == "bye":
            await self.send(text_data="bye!", close=True)
        elif text_data is not None:
            await self.send(text_data=f"async:{text_data}:{threading.get_ident()}")
        else:
            await self.send(bytes_data=bytes_data[::-1] if bytes_data else b"")

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])

    async def disconnect(self, code: int) -> None:
        self.closed_with.append(code)


both = pytest.mark.parametrize("consumer", [SyncChat, AsyncChat], ids=["sync", "async"])


async def connected(consumer: Any, path: str = "/chat/") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    ok, subprotocol = await communicator.connect()
    assert ok and subprotocol is None
    return communicator


@both
async def test_text_and_binary_frames_round_trip(consumer: Any) -> None:
    communicator = await connected(consumer)
    assert await communicator.receive_nothing()
    await communicator.send_to(text_data="hi")
    reply = await communicator.receive_from()
    assert isinstance(reply, str) and reply.split(":")[1] == "hi"
    await communicator.send_to(bytes_data=b"\x00\x01\x02")
    assert await communicator.receive_from() == b"\x02\x01\x00"
    await communicator.disconnect()


async def test_sync_handlers_run_off_the_loop_thread_and_async_ones_on_it() -> None:
    loop_thread = threading.get_ident()
    for consumer, on_loop in ((SyncChat, False), (AsyncChat, True)):
        communicator = await connected(consumer)
        await communicator.send_to(text_data="where")
        thread = int(str(await communicator.receive_from()).rsplit(":", 1)[1])
        assert (thread == loop_thread) is on_loop
        await communicator.disconnect()


@both
async def test_group_messages_reach_every_member_and_disconnect_leaves_the_group(
    consumer: Any,
) -> None:
    consumer.closed_with = []
    first, second = await connected(consumer), await connected(consumer)
    layer = get_channel_layer()
    assert layer is not None
    assert len(await layer.group_channels("room")) == 2
    await layer.group_send("room", {"type": "chat.message", "text": "to all"})
    assert await first.receive_from() == "to all"
    assert await second.receive_from() == "to all"
    await first.disconnect(code=1001)
    assert len(await layer.group_channels("room")) == 1
    await second.disconnect(code=4321)
    assert await layer.group_channels("room") == []
    assert consumer.closed_with == [1001, 4321]


@both
async def test_a_websocket_send_group_message_goes_to_the_client(consumer: Any) -> None:
    # djwire forwards type websocket.send (Channels would need a handler for it).
    communicator = await connected(consumer)
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send("room", {"type": "websocket.send", "text": "direct"})
    assert await communicator.receive_from() == "direct"
    await communicator.disconnect()


@both
async def test_close_sends_the_code_and_reason(consumer: Any) -> None:
    communicator = await connected(consumer)
    await communicator.send_to(text_data="close")
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4000,
        "reason": "asked",
    }
    await communicator.disconnect(code=4000)


@both
async def test_send_with_close_sends_then_closes(consumer: Any) -> None:
    communicator = await connected(consumer)
    await communicator.send_to(text_data="bye")
    assert await communicator.receive_from() == "bye!"
    assert await communicator.receive_output() == {"type": "websocket.close"}
    await communicator.disconnect()


# -- handshake -------------------------------------------------------------------------


class Picky(AsyncWebsocketConsumer):
    """Accepts with the "v2" subprotocol and a header; rejects other clients."""

    async def connect(self) -> None:
        if "v2" in self.scope["subprotocols"]:
            await self.accept("v2", headers=[(b"x-server", b"djwire")])
        elif "raise-accept" in self.scope["subprotocols"]:
            raise AcceptConnection()
        elif "raise-deny" in self.scope["subprotocols"]:
            raise DenyConnection()
        else:
            await self.close(code=4403)


async def handshake(*subprotocols: str) -> tuple[WebsocketCommunicator, tuple[bool, Any]]:
    communicator = WebsocketCommunicator(Picky.as_asgi(), "/", subprotocols=list(subprotocols))
    return communicator, await communicator.connect()


async def test_accept_with_a_subprotocol_and_headers() -> None:
    communicator, result = await handshake("v1", "v2")
    assert result == (True, "v2")
    assert communicator.response_headers == [(b"x-server", b"djwire")]
    await communicator.disconnect()


async def test_close_in_connect_rejects_with_the_code() -> None:
    communicator, result = await handshake()
    assert result == (False, 4403)
    await communicator.disconnect()


async def test_accept_and_deny_connection_exceptions() -> None:
    communicator, result = await handshake("raise-accept")
    assert result == (True, None)
    await communicator.disconnect()
    communicator, result = await handshake("raise-deny")
    assert result == (False, 1000)
    await communicator.disconnect()


# -- JSON ------------------------------------------------------------------------------


class SyncJson(JsonWebsocketConsumer):
    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.send_json({"echo": content, "kind": "sync"})


class AsyncJson(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content, "kind": "async"})


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson], ids=["sync", "async"])
async def test_json_consumers_decode_and_encode(consumer: Any) -> None:
    communicator = await connected(consumer)
    await communicator.send_json_to({"a": [1, 2, None]})
    reply = await communicator.receive_json_from()
    assert reply["echo"] == {"a": [1, 2, None]}
    await communicator.disconnect()


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson], ids=["sync", "async"])
async def test_json_consumers_reject_binary_frames(consumer: Any) -> None:
    communicator = await connected(consumer)
    await communicator.send_to(bytes_data=b"{}")
    with pytest.raises(ValueError, match="No text section"):
        await communicator.receive_output()


async def test_json_encoding_can_be_overridden() -> None:
    class Compact(AsyncJsonWebsocketConsumer):
        @classmethod
        async def encode_json(cls, content: Any) -> str:
            return "custom:" + str(content)

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await self.send_json(content)

    communicator = await connected(Compact)
    await communicator.send_json_to(7)
    assert await communicator.receive_from() == "custom:7"
    await communicator.disconnect()


# -- errors ----------------------------------------------------------------------------


class Crashing(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raise RuntimeError("consumer bug")


async def test_a_consumer_that_raises_surfaces_the_error() -> None:
    # Through a server the error is logged and the socket closed with 1011; a
    # communicator hands the exception to the test.
    communicator = await connected(Crashing)
    await communicator.send_to(text_data="x")
    with pytest.raises(RuntimeError, match="consumer bug"):
        await communicator.receive_output()


async def test_groups_without_a_channel_layer_are_a_clear_error(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    communicator = WebsocketCommunicator(AsyncChat.as_asgi(), "/")
    with pytest.raises(InvalidChannelLayerError, match="groups"):
        await communicator.connect()


async def test_consumers_without_groups_need_no_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}

    class Lonely(AsyncWebsocketConsumer):
        async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
            await self.send(text_data=text_data)

    communicator = await connected(Lonely)
    await communicator.send_to(text_data="alone")
    assert await communicator.receive_from() == "alone"
    await communicator.disconnect()


def test_a_sync_test_can_drive_a_communicator_with_async_to_sync() -> None:
    async def talk() -> Any:
        communicator = await connected(AsyncJson)
        await communicator.send_json_to({"from": "sync test"})
        reply = await communicator.receive_json_from()
        await communicator.disconnect()
        return reply

    assert async_to_sync(talk)()["echo"] == {"from": "sync test"}


# -- ASGI awaitable callables (issue 10 item 4) -------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "consumer", [SyncChat, AsyncChat, SyncJson, AsyncJson], ids=lambda c: c.__name__
)
async def test_receive_and_send_may_return_futures_through_routers_and_middleware(
    consumer: Any, kind: str
) -> None:
    routed = URLRouter([path("chat/", consumer.as_asgi())])
    app = ProtocolTypeRouter(
        {"websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(routed))}
    )
    communicator = WebsocketCommunicator(
        with_awaitable_callables(app, kind),
        "/chat/",
        headers=[(b"host", b"testserver"), (b"origin", b"http://testserver")],
    )
    assert (await communicator.connect())[0]
    if consumer in (SyncJson, AsyncJson):
        await communicator.send_json_to({"a": 1})
        assert (await communicator.receive_json_from())["echo"] == {"a": 1}
    else:
        await communicator.send_to(text_data="hi")
        assert str(await communicator.receive_from()).split(":")[1] == "hi"
        layer = get_channel_layer()
        assert layer is not None
        await layer.group_send("room", {"type": "chat.message", "text": "to all"})
        assert await communicator.receive_from() == "to all"
    await communicator.disconnect()


# -- send() goes through every override ------------------------------------------------


class CountingSend(AsyncConsumer):
    """A mixin between AsyncWebsocketConsumer and AsyncConsumer that overrides send."""

    sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        await super().send(message)


class CountedChat(AsyncChat, CountingSend):
    pass


async def test_send_reaches_an_override_between_the_websocket_consumer_and_its_base() -> None:
    # AsyncWebsocketConsumer.send skips AsyncConsumer.send (one coroutine less per
    # frame) only when nothing in between overrides it.
    assert not CountedChat._send_is_base_send and AsyncChat._send_is_base_send
    CountingSend.sent = []
    communicator = await connected(CountedChat)
    await communicator.send_to(text_data="hi")
    assert str(await communicator.receive_from()).startswith("async:hi:")
    assert [m["type"] for m in CountingSend.sent] == ["websocket.accept", "websocket.send"]
    await communicator.disconnect()
