"""Serve classic routing over ASGI: each WebSocket becomes a reply channel.

Per connection, client events become classic messages (``websocket.connect``,
``websocket.receive``, ``websocket.disconnect``) given to the routed function
consumer in a worker thread — never on the event loop — one at a time, in order.
What consumers send to ``message.reply_channel`` (``accept``, ``text``, ``bytes``,
``close``) goes back to the client; a consumer's sends are held until it finishes
(:mod:`djwire.classic.held`). Once accepted, ``Group(...).send({"text": ...})``
to the reply channel is written straight to the socket when the server allows it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from djwire.exceptions import DenyConnection, InvalidChannelLayerError, StopConsumer
from djwire.gateway.protocol import classic_reply_events
from djwire.layers import DEFAULT_CHANNEL_LAYER, BaseChannelLayer, get_channel_layer
from djwire.layers.direct import SCOPE_EXTENSION
from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope
from djwire.worker.extension import ConsumerHost, consumer_host

from .channel import Channel
from .held import holding_sends
from .message import Message
from .routing import ClassicRouter, Routing

logger = logging.getLogger("djwire.classic")

CONNECT, RECEIVE, DISCONNECT = "websocket.connect", "websocket.receive", "websocket.disconnect"


def _call_consumer(consumer: Any, message: Message, kwargs: dict[str, Any]) -> None:
    close_old_connections()
    try:
        # Its sends are held and flushed, in order, when it returns or raises.
        with holding_sends():
            consumer(message, **kwargs)
    finally:
        close_old_connections()


async def run_consumer(consumer: Any, message: Message, kwargs: dict[str, Any]) -> None:
    """Run a sync function consumer in the thread pool (not the thread-sensitive
    thread: connections must not queue behind each other)."""
    await sync_to_async(_call_consumer, thread_sensitive=False)(consumer, message, kwargs)


class ClassicWebsocketApp:
    """ASGI app for ``websocket`` scopes, routed by classic routing."""

    def __init__(self, routing: Routing, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.router = ClassicRouter(routing)
        self.alias = alias

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        layer = get_channel_layer(self.alias)
        if layer is None:
            raise InvalidChannelLayerError(
                f"Classic routing needs a channel layer: CHANNEL_LAYERS[{self.alias!r}] is missing"
            )
        await _Connection(self, scope, send, layer).run(receive)

    def routes_path(self, path: str) -> bool:
        content = {"path": path}
        return any(
            self.router.match(channel, content) for channel in (CONNECT, RECEIVE, DISCONNECT)
        )


class _Connection:
    #: What moves with the connection to another worker in gateway mode.
    state_attributes = ("order", "accepted", "closed", "groups")

    def __init__(
        self, app: ClassicWebsocketApp, scope: Scope, send: ASGISend, layer: BaseChannelLayer
    ):
        self.app = app
        self.scope = scope
        self.send = send
        self.layer = layer
        self.path: str = scope.get("path", "")
        self.order = 0
        self.accepted = False
        self.closed = False
        self.groups: set[str] = set()
        self.reply: Channel

    async def run(self, receive: ASGIReceive) -> None:
        host = consumer_host(self.scope)
        if host is not None and host.channel_name is not None:
            await self.run_for_gateway(host, host.channel_name, receive)
            return
        name = await self.layer.new_channel(prefix="websocket.send.")
        self.reply = Channel(name, alias=self.app.alias, channel_layer=self.layer)
        self.reply.on_group_add = self.groups.add
        # Replies are forwarded while a consumer still runs (sends with
        # immediately=True, or a flush of more than the channel holds, or replies
        # from other code); client events go to consumers one at a time, and
        # the next is read only when the last is handled, so a slow consumer
        # pushes back on the client instead of queueing its messages here.
        replies = asyncio.ensure_future(self.forward_replies(name))
        try:
            while True:
                await self.on_client_event(await receive())
        except StopConsumer:
            pass
        finally:
            replies.cancel()
            await asyncio.gather(replies, return_exceptions=True)
            self.layer.detach_socket(name)
            for group in self.groups:
                await self.layer.group_discard(group, name)

    async def run_for_gateway(self, host: ConsumerHost, name: str, receive: ASGIReceive) -> None:
        """On a worker, for a connection a gateway holds: the reply channel is the
        gateway's connection channel, and the gateway itself turns replies into
        frames (see djwire.gateway). Group memberships outlive this worker."""
        self.reply = Channel(name, alias=self.app.alias, channel_layer=self.layer)
        self.reply.on_group_add = self.groups.add
        host.adopt(self)
        try:
            while True:
                event = await receive()
                await self.on_client_event(event)
                host.handled(event)
        except StopConsumer:
            for group in self.groups:
                await self.layer.group_discard(group, name)

    async def forward_replies(self, name: str) -> None:
        while True:
            await self.on_reply(await self.layer.receive(name))

    # -- client -> consumers ----------------------------------------------------------

    async def on_client_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        content: dict[str, Any] = {"reply_channel": self.reply.name, "path": self.path}
        if kind == CONNECT:
            scope = self.scope
            content.update(
                headers=[[name, value] for name, value in scope.get("headers", [])],
                query_string=scope.get("query_string", b""),
                client=list(scope["client"]) if scope.get("client") else None,
                server=list(scope["server"]) if scope.get("server") else None,
                subprotocols=list(scope.get("subprotocols", [])),
            )
            if not self.app.routes_path(self.path):
                logger.warning("No classic route for WebSocket path %r; rejecting it", self.path)
                await self._close(None)
                return
        elif kind == RECEIVE:
            if event.get("text") is not None:
                content["text"] = event["text"]
            else:
                content["bytes"] = event.get("bytes")
        elif kind == DISCONNECT:
            content["code"] = event.get("code", 1005)
        else:
            return
        content["order"] = self.order
        self.order += 1
        match = self.app.router.match(kind, content)
        if match is None:
            if kind == CONNECT:
                await self._accept()  # Channels 1: no connect consumer means accept
        else:
            consumer, kwargs = match
            message = Message(content, kind, self.app.alias, self.reply)
            try:
                await run_consumer(consumer, message, kwargs)
            except DenyConnection:
                # Channels 1: a connect consumer refuses the socket this way.
                if kind != CONNECT:
                    logger.error("DenyConnection raised outside websocket.connect by %r", consumer)
                await self._close(None if kind == CONNECT else 1011)
            except Exception:
                logger.exception("Consumer %r for %s %s raised", consumer, kind, self.path)
                if kind != DISCONNECT:
                    await self._close(1011)
        if kind == DISCONNECT:
            raise StopConsumer()

    # -- consumers -> client -------------------------------------------------------------

    async def on_reply(self, content: dict[str, Any]) -> None:
        if self.closed:
            return
        if content.get("type") == "websocket.send":  # a Channels-4 style message
            content = {key: value for key, value in content.items() if key != "type"}
        for event in classic_reply_events(content, self.accepted):
            kind = event["type"]
            if kind == "websocket.accept":
                await self._accept()
            elif kind == "websocket.close":
                await self._close(event.get("code"))
            else:
                await self.send(event)

    async def _accept(self) -> None:
        if self.accepted or self.closed:
            return
        await self.send({"type": "websocket.accept"})
        self.accepted = True
        socket = self.scope.get("extensions", {}).get(SCOPE_EXTENSION)
        if socket is not None:
            self.layer.attach_socket(self.reply.name, socket)

    async def _close(self, code: int | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.layer.detach_socket(self.reply.name)
        message: dict[str, Any] = {"type": "websocket.close"}
        if code is not None:
            message["code"] = code
        await self.send(message)


class ClassicChannelApp:
    """ASGI app for ``channel`` scopes (from a worker): route by channel and content."""

    def __init__(self, routing: Routing, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.router = ClassicRouter(routing)
        self.alias = alias

    def named_channels(self) -> list[str]:
        """Routed channels that are not connection events (those come from sockets)."""
        return sorted(
            name
            for name in self.router.channel_names()
            if not name.startswith(("websocket.", "http."))
        )

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        channel = scope["channel"]
        # Under a djwire worker a failure ends this instance, and the worker logs it,
        # retries it (reliable channels) and starts another; elsewhere it is logged here.
        host = consumer_host(scope)
        if host is not None:
            host.adopt(self)
        while True:
            content = await receive()
            match = self.router.match(channel, content)
            if match is None:
                logger.warning("No classic route for a message on %s; dropped", channel)
                if host is not None:
                    host.handled(content)
                continue
            consumer, kwargs = match
            try:
                await run_consumer(consumer, Message(content, channel, self.alias), kwargs)
            except Exception:
                if host is not None:
                    raise
                logger.exception("Consumer %r for channel %s raised", consumer, channel)
            else:
                if host is not None:
                    host.handled(content)


class ClassicLifespan:
    """Runs the classic named-channel consumers inside the server process.

    As ``runserver`` did in Channels 1, so ``Channel("thumbnails").send(...)`` is
    handled without a separate ``runworker``. Off with
    ``DJWIRE_INPROCESS_WORKERS = False`` (then run ``manage.py runworker``).
    """

    def __init__(self, channel_app: ClassicChannelApp) -> None:
        self.channel_app = channel_app

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        from django.conf import settings

        from djwire.routing import answer_lifespan
        from djwire.worker import Worker

        channels = self.channel_app.named_channels()
        task: asyncio.Task[None] | None = None
        if channels and getattr(settings, "DJWIRE_INPROCESS_WORKERS", True):
            layer = get_channel_layer(self.channel_app.alias)
            worker = Worker(self.channel_app, channels, layer, require_type=False)
            task = asyncio.ensure_future(worker.handle())
        try:
            await answer_lifespan(receive, send)
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def classic_application_from_settings(alias: str = DEFAULT_CHANNEL_LAYER) -> ASGIApp | None:
    """The whole-project app for ``CHANNEL_LAYERS[alias]["ROUTING"]``, or None.

    WebSockets go to the classic routing; HTTP to Django's views as usual.
    """
    from django.conf import settings

    from djwire.routing import ProtocolTypeRouter

    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(alias) or {}
    routing = config.get("ROUTING")
    if not routing:
        return None
    channel_app = ClassicChannelApp(routing, alias)
    return ProtocolTypeRouter(
        {
            "http": django_http_application(),
            "websocket": ClassicWebsocketApp(routing, alias),
            "channel": channel_app,
            "lifespan": ClassicLifespan(channel_app),
        }
    )


@functools.cache
def django_http_application() -> ASGIApp:
    """Django's HTTP handler, built once."""
    from django.core.asgi import get_asgi_application

    return get_asgi_application()  # type: ignore[return-value]
