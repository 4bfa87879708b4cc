"""Class-based classic consumers (Channels 1 ``channels.generic.websockets``).

Route them with ``route_class(MyConsumer, path=r"^/chat/$")``. One instance
handles one message: it is created with the message and dispatches at once to
``connect``/``receive``/``disconnect``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from .channel import Group
from .message import Message
from .routing import RouteClass


class BaseConsumer:
    """Map channel names to methods (``method_mapping``) and call the right one."""

    method_mapping: ClassVar[dict[str, str]] = {}
    #: Wrap handlers with :func:`djwire.classic.sessions.channel_session`.
    channel_session: ClassVar[bool] = False
    #: Wrap handlers with :func:`djwire.classic.auth.channel_session_user`.
    channel_session_user: ClassVar[bool] = False

    def __init__(self, message: Message, **kwargs: Any) -> None:
        self.message = message
        self.kwargs = kwargs
        self.dispatch(message, **kwargs)

    @classmethod
    def channel_names(cls) -> set[str]:
        return set(cls.method_mapping)

    @classmethod
    def as_route(cls, attrs: dict[str, Any] | None = None, **filters: Any) -> RouteClass:
        """``route_class()`` for this class, or for a subclass with ``attrs`` set."""
        consumer = type(cls.__name__, (cls,), dict(attrs)) if attrs else cls
        return RouteClass(consumer, **filters)

    def get_handler(self, message: Message, **kwargs: Any) -> Callable[..., Any]:
        name = self.method_mapping.get(message.channel.name)
        if name is None:
            raise ValueError(f"{type(self).__name__} has no method for {message.channel.name!r}")
        handler: Callable[..., Any] = getattr(self, name)
        if self.channel_session_user:
            from .auth import channel_session_user

            return channel_session_user(handler)
        if self.channel_session:
            from .sessions import channel_session

            return channel_session(handler)
        return handler

    def dispatch(self, message: Message, **kwargs: Any) -> Any:
        return self.get_handler(message, **kwargs)(message, **kwargs)


class WebsocketConsumer(BaseConsumer):
    """connect / receive(text=, bytes=) / disconnect, with optional ``groups``."""

    method_mapping: ClassVar[dict[str, str]] = {
        "websocket.connect": "raw_connect",
        "websocket.receive": "raw_receive",
        "websocket.disconnect": "raw_disconnect",
    }
    #: Take the user from the HTTP session on connect and keep it in the channel session.
    http_user: ClassVar[bool] = False
    #: Same as http_user, and also keep the HTTP session.
    http_user_and_session: ClassVar[bool] = False
    #: Channels 1 reordered a socket's messages with this; djwire hands them over in
    #: order anyway, so it only adds enforce_ordering's channel session and checks.
    strict_ordering: ClassVar[bool] = False
    groups: ClassVar[list[str] | None] = None

    def get_handler(self, message: Message, **kwargs: Any) -> Callable[..., Any]:
        # As Channels 1.1: the HTTP user implies the channel session user, and the
        # transfer from the HTTP session wraps every message of the connection.
        if getattr(self, "slight_ordering", False):
            raise ValueError(
                "Slight ordering is now always on. Please remove `slight_ordering=True`."
            )
        if self.http_user or self.http_user_and_session:
            self.channel_session_user = True  # type: ignore[misc]
        self.path = message["path"]
        handler = super().get_handler(message, **kwargs)
        if self.http_user_and_session:
            from .auth import channel_and_http_session_user_from_http

            handler = channel_and_http_session_user_from_http(handler)
        elif self.http_user:
            from .auth import channel_session_user_from_http

            handler = channel_session_user_from_http(handler)
        if self.strict_ordering:
            from .sessions import enforce_ordering

            handler = enforce_ordering(handler)
        return handler

    def connection_groups(self, **kwargs: Any) -> list[str]:
        """Groups the connection joins on connect and leaves on disconnect."""
        return list(self.groups or [])

    def raw_connect(self, message: Message, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, alias=message.channel_layer_alias).add(message.reply_channel)  # type: ignore[arg-type]
        self.connect(message, **kwargs)

    def connect(self, message: Message, **kwargs: Any) -> None:
        message.reply_channel.send({"accept": True})  # type: ignore[union-attr]

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        if message.get("text") is not None:
            self.receive(text=message["text"], **kwargs)
        else:
            self.receive(bytes=message.get("bytes"), **kwargs)

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        """Called with each client message; override it."""

    def send(
        self, text: str | None = None, bytes: bytes | None = None, close: bool | int = False
    ) -> None:
        self.message.reply_channel.send(_reply(text, bytes, close))  # type: ignore[union-attr]

    @classmethod
    def group_send(
        cls,
        name: str,
        text: str | None = None,
        bytes: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        Group(name).send(_reply(text, bytes, close))

    def close(self, status: bool | int = True) -> None:
        self.message.reply_channel.send({"close": status})  # type: ignore[union-attr]

    def raw_disconnect(self, message: Message, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, alias=message.channel_layer_alias).discard(message.reply_channel)  # type: ignore[arg-type]
        self.disconnect(message, **kwargs)

    def disconnect(self, message: Message, **kwargs: Any) -> None:
        """Called when the socket closes; override it."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """A classic WebsocketConsumer whose messages are JSON."""

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        if message.get("text") is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        self.receive(self.decode_json(message["text"]), **kwargs)

    def receive(self, content: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Called with each decoded JSON message; override it."""

    def send(self, content: Any, close: bool | int = False) -> None:  # type: ignore[override]
        super().send(text=self.encode_json(content), close=close)

    @classmethod
    def group_send(cls, name: str, content: Any, close: bool | int = False) -> None:  # type: ignore[override]
        WebsocketConsumer.group_send(name, cls.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text: str) -> Any:
        return json.loads(text)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


def _reply(text: str | None, data: bytes | None, close: bool | int) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if text is not None:
        message["text"] = text
    elif data is not None:
        message["bytes"] = data
    if close:
        message["close"] = close
    if not message:
        raise ValueError("You must pass text or bytes (or close)")
    return message
