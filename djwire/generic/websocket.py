"""WebSocket consumers: connect/receive/disconnect methods instead of raw ASGI events.

Same names, signatures and behaviour as Django Channels 4; additionally a group
message of type ``websocket.send`` is forwarded to the client, and after ``accept()``
such messages go straight to the socket when the server offers it (see
:mod:`djwire.layers.direct`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

from asgiref.sync import async_to_sync

from djwire.consumer import (
    AsyncConsumer,
    SyncConsumer,
    _forward_websocket_send,
    _forward_websocket_send_sync,
)
from djwire.exceptions import (
    AcceptConnection,
    DenyConnection,
    InvalidChannelLayerError,
    StopConsumer,
)

Headers = Iterable[tuple[bytes, bytes]]

_NO_GROUPS = (
    "BACKEND is unconfigured or doesn't support groups: configure CHANNEL_LAYERS, or set "
    "groups = [] on the consumer"
)


def _accept_message(subprotocol: str | None, headers: Headers | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _data_message(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("You must pass one of bytes_data or text_data")


def _close_message(code: int | bool | None, reason: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "websocket.close"}
    if code is not None and code is not True:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


_BASE_SEND = AsyncConsumer.send


def _next_send(cls: type, after: type) -> Any:
    """The ``send`` that ``super().send`` finds in a method of ``after`` on ``cls``."""
    mro = cls.__mro__
    for klass in mro[mro.index(after) + 1 :]:
        if "send" in vars(klass):
            return vars(klass)["send"]
    return None


class WebsocketConsumer(SyncConsumer):
    """A synchronous WebSocket consumer; handlers run in a worker thread."""

    groups: list[str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups is None:
            self.groups = []

    def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            for group in self.groups or ():
                async_to_sync(self.channel_layer.group_add)(group, self.channel_name)  # type: ignore[union-attr]
        except AttributeError:
            raise InvalidChannelLayerError(_NO_GROUPS) from None
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        super().send(_accept_message(subprotocol, headers))
        self.attach_direct_socket()

    def websocket_receive(self, message: dict[str, Any]) -> None:
        if message.get("text") is not None:
            self.receive(text_data=message["text"])
        else:
            self.receive(bytes_data=message.get("bytes"))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each message from the client; override it."""

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        super().send(_data_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept: reject the handshake)."""
        super().send(_close_message(code, reason))

    websocket_send = _forward_websocket_send_sync

    def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            for group in self.groups or ():
                async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)  # type: ignore[union-attr]
        except AttributeError:
            raise InvalidChannelLayerError(_NO_GROUPS) from None
        self.disconnect(message.get("code", 1005))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        """Called when the socket closes, with the close code; override it."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """A WebsocketConsumer that speaks JSON text frames."""

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data:
            self.receive_json(self.decode_json(text_data), **kwargs)
        else:
            raise ValueError("No text section for incoming WebSocket frame!")

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message; override it."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        super().send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class AsyncWebsocketConsumer(AsyncConsumer):
    """An asynchronous WebSocket consumer; handlers are coroutines."""

    groups: list[str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups is None:
            self.groups = []

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            for group in self.groups or ():
                await self.channel_layer.group_add(group, self.channel_name)  # type: ignore[union-attr]
        except AttributeError:
            raise InvalidChannelLayerError(_NO_GROUPS) from None
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        await super().send(_accept_message(subprotocol, headers))
        self.attach_direct_socket()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if message.get("text") is not None:
            await self.receive(text_data=message["text"])
        else:
            await self.receive(bytes_data=message.get("bytes"))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each message from the client; override it."""

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        message = _data_message(text_data, bytes_data)
        if self._send_is_base_send and AsyncConsumer.send is _BASE_SEND:
            # What super().send() would do, minus a coroutine per frame.
            await self.base_send(message)
        else:
            await super().send(message)
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept: reject the handshake)."""
        await super().send(_close_message(code, reason))

    websocket_send = _forward_websocket_send

    #: Whether ``super().send`` here is ``AsyncConsumer.send`` (no class in between
    #: overrides it); set for each subclass.
    _send_is_base_send: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._send_is_base_send = _next_send(cls, AsyncWebsocketConsumer) is _BASE_SEND

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            for group in self.groups or ():
                await self.channel_layer.group_discard(group, self.channel_name)  # type: ignore[union-attr]
        except AttributeError:
            raise InvalidChannelLayerError(_NO_GROUPS) from None
        await self.disconnect(message.get("code", 1005))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes, with the close code; override it."""


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """An AsyncWebsocketConsumer that speaks JSON text frames."""

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data:
            await self.receive_json(await self.decode_json(text_data), **kwargs)
        else:
            raise ValueError("No text section for incoming WebSocket frame!")

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message; override it."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        await super().send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content)
