"""Consumers: ASGI applications that dispatch each message to a method named by its type.

A message ``{"type": "chat.message"}`` calls ``chat_message(message)``. Messages come
from the client (through the server) and from the channel layer (``channel_name``).
``SyncConsumer`` handlers run in a worker thread; ``AsyncConsumer`` handlers on the
event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction

from djwire import db
from djwire.db import aclose_old_connections, database_sync_to_async
from djwire.exceptions import StopConsumer
from djwire.layers import DEFAULT_CHANNEL_LAYER, BaseChannelLayer, get_channel_layer
from djwire.layers.direct import SCOPE_EXTENSION
from djwire.typing import ASGIReceive, ASGISend, Scope
from djwire.utils import await_many_dispatch, dispatch_client_and_channel
from djwire.worker.extension import ConsumerHost, consumer_host

#: Handler names of the message types seen so far (a consumer dispatches a handful
#: of types over and over); bounded, since layer messages may carry any type.
_HANDLER_NAMES: dict[str, str] = {}
_MAX_HANDLER_NAMES = 1000


def get_handler_name(message: dict[str, Any]) -> str:
    """``"chat.message"`` -> ``"chat_message"``; rejects missing and private types."""
    if "type" not in message:
        raise ValueError("Incoming message has no 'type' attribute")
    kind = message["type"]
    cacheable = type(kind) is str
    if cacheable:
        handler_name: str | None = _HANDLER_NAMES.get(kind)
        if handler_name is not None:
            return handler_name
    handler_name = kind.replace(".", "_")
    if handler_name.startswith("_"):
        raise ValueError("Malformed type in message (leading underscore)")
    if cacheable and len(_HANDLER_NAMES) < _MAX_HANDLER_NAMES:
        _HANDLER_NAMES[kind] = handler_name
    return handler_name


class AsyncConsumer:
    """Base consumer: one instance per connection, handlers are coroutines."""

    _sync: ClassVar[bool] = False
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER

    scope: Scope
    channel_layer: BaseChannelLayer | None
    channel_name: str
    base_send: Callable[[dict[str, Any]], Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Any initkwargs passed to as_asgi() are set as attributes, as in Channels.
        for key, value in kwargs.items():
            setattr(self, key, value)

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        host = consumer_host(scope)
        if host is not None:
            await self._run_hosted(host, receive, send)
            return
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
        self.base_send = _blocking_send(send) if self._sync else send
        try:
            if self.channel_layer is not None:
                # Layers with process-local queues claim with a plain future: an idle
                # consumer then costs no Task for its channel.
                socket = (scope.get("extensions") or {}).get(SCOPE_EXTENSION)
                if not hasattr(socket, "hold_frames"):
                    socket = None
                await dispatch_client_and_channel(
                    receive,
                    self.channel_layer.claim_receive,
                    self.channel_name,
                    self.dispatch,
                    socket,
                )
            else:
                await await_many_dispatch([receive], self.dispatch)
        except StopConsumer:
            pass
        finally:
            if self.channel_layer is not None:
                self.channel_layer.detach_socket(self.channel_name)

    async def _run_hosted(self, host: ConsumerHost, receive: ASGIReceive, send: ASGISend) -> None:
        """Run under a worker (see djwire.worker.extension): report each handled
        message, and in gateway mode use the connection's channel."""
        self.base_send = _blocking_send(send) if self._sync else send
        sources: list[Callable[[], Awaitable[Any]]] = [receive]
        own_channel = host.channel_name is None and self.channel_layer is not None
        if host.channel_name is not None:
            self.channel_name = host.channel_name
        elif self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            sources.append(self.channel_receive)
        if host.adopt(self):
            await self._resumed()

        async def dispatch(message: dict[str, Any]) -> None:
            await self.dispatch(message)
            host.handled(message)

        try:
            await await_many_dispatch(sources, dispatch)
        except StopConsumer:
            pass
        finally:
            if own_channel:
                assert self.channel_layer is not None
                self.channel_layer.detach_socket(self.channel_name)

    async def _resumed(self) -> None:
        resumed = getattr(self, "resumed", None)
        if resumed is None:
            return
        if self._sync:
            await database_sync_to_async(resumed)()
        else:
            await resumed()

    def channel_receive(self) -> Awaitable[dict[str, Any]]:
        """The next message on this consumer's channel."""
        assert self.channel_layer is not None
        return self.channel_layer.receive(self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler for ``message["type"]``."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if db.connections_opened():
            await aclose_old_connections()
        await handler(message)

    async def send(self, message: dict[str, Any]) -> None:
        """Send an ASGI message to the client (through the server)."""
        await self.base_send(message)

    def attach_direct_socket(self) -> bool:
        """Let ``websocket.send`` group messages skip this consumer and go to the socket.

        Only when the server offers it, a layer is configured, and the class does not
        override ``websocket_send`` (which it would then bypass).
        """
        socket = self.scope.get("extensions", {}).get(SCOPE_EXTENSION)
        if socket is None or self.channel_layer is None:
            return False
        if getattr(type(self), "websocket_send", None) not in _FORWARDERS:
            return False
        return self.channel_layer.attach_socket(self.channel_name, socket)

    @classmethod
    def as_asgi(
        cls, **initkwargs: Any
    ) -> Callable[[Scope, ASGIReceive, ASGISend], Awaitable[None]]:
        """An ASGI application that makes a new instance for each connection."""

        @markcoroutinefunction
        def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> Awaitable[None]:
            # Returns the consumer's coroutine rather than awaiting it: one frame
            # less per connection for as long as it is open.
            try:
                return cls(**initkwargs)(scope, receive, send)
            except Exception as exc:
                return _raise_when_awaited(exc)

        app._djwire_routes_synchronously = True  # type: ignore[attr-defined]
        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app


class SyncConsumer(AsyncConsumer):
    """A consumer whose handlers are plain functions, run in a worker thread."""

    _sync: ClassVar[bool] = True

    @database_sync_to_async
    def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        handler(message)

    def send(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        self.base_send(message)


async def _forward_websocket_send(self: AsyncConsumer, message: dict[str, Any]) -> None:
    """A ``websocket.send`` from the layer (e.g. a group send) goes to the client.

    Django Channels has no such handler (it raises "No handler"); djwire forwards,
    which is what lets a group message skip consumer code entirely.
    """
    await self.base_send(message)


def _forward_websocket_send_sync(self: SyncConsumer, message: dict[str, Any]) -> None:
    self.base_send(message)


_FORWARDERS = (_forward_websocket_send, _forward_websocket_send_sync)


def _blocking_send(send: ASGISend) -> Callable[[dict[str, Any]], None]:
    """``send`` for handlers in a worker thread.

    ASGI lets ``send`` be any callable returning an awaitable, e.g. a Future made
    with ``asyncio.ensure_future``. ``async_to_sync`` calls what it wraps in the
    calling thread, where such a callable finds no event loop; a coroutine function
    around it makes the call happen on the event loop.
    """
    # An object whose class has an ``async def __call__`` counts as a coroutine function.
    if not (iscoroutinefunction(send) or iscoroutinefunction(type(send).__call__)):
        original = send

        async def send(message: dict[str, Any]) -> None:
            await original(message)

    return async_to_sync(send)


async def _raise_when_awaited(exc: BaseException) -> None:
    raise exc
