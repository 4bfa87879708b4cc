"""The gateway: an ASGI application that runs no application code.

``djwire serve --gateway`` (or ``manage.py runserver --gateway``) serves
:class:`GatewayApp`: every HTTP request and WebSocket is forwarded over the
channel layer to workers (``manage.py runworker --connections``), which run the
project's ASGI application and send the replies back. Workers can come, go,
restart or die while the sockets stay open here (see :mod:`.protocol`).

One instance per process. Besides the connections it keeps one task: reading the
gateway's own channel (acknowledgements and heartbeats of workers) and watching
for workers that went silent, whose connections it hands to other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from djwire.layers import DEFAULT_CHANNEL_LAYER, BaseChannelLayer, get_channel_layer
from djwire.typing import ASGIReceive, ASGISend, Scope

from . import protocol
from .settings import GatewaySettings

if TYPE_CHECKING:
    from .links import Link

logger = logging.getLogger("djwire.gateway")


class GatewayApp:
    """Forward connections to workers over ``CHANNEL_LAYERS[layer_alias]``."""

    def __init__(
        self, settings: GatewaySettings | None = None, layer_alias: str = DEFAULT_CHANNEL_LAYER
    ) -> None:
        self.settings = settings or GatewaySettings.from_django()
        self.layer_alias = layer_alias
        self.layer: BaseChannelLayer | None = None
        self.channel = ""  # this gateway's own channel, once started
        self.links: dict[str, Link] = {}
        #: Links by the worker that runs them; links no worker has claimed yet;
        #: closed WebSockets waiting for their worker to handle the disconnect.
        self.owned: dict[str, set[Link]] = {}
        self.waiting: set[Link] = set()
        self.lingering: set[Link] = set()
        #: Links with events their worker has not acknowledged yet.
        self.unsettled: set[Link] = set()
        #: worker channel -> when it last gave a sign of life (monotonic)
        self.workers: dict[str, float] = {}
        self.started_at = 0.0
        #: Layer messages for connections dropped because their worker was far behind.
        self.layer_drops = 0
        self._control: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.start()
        from .links import HttpLink, WebSocketLink

        if kind == "websocket":
            await WebSocketLink(self, scope, receive, send).run()
        elif kind == "http":
            await HttpLink(self, scope, receive, send).run()
        else:
            raise ValueError(f"A gateway serves http and websocket, not {kind!r}")

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    logger.exception("Gateway could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._control is not None and not self._control.done():
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._control is not None and not self._control.done():
                return
            layer = get_channel_layer(self.layer_alias)
            if layer is None:
                raise RuntimeError(
                    f"Gateway mode needs a channel layer: CHANNEL_LAYERS[{self.layer_alias!r}] "
                    "is not configured"
                )
            if _process_local(layer):
                logger.warning(
                    "Gateway mode with %s: it lives in one process, so only workers in this "
                    "process can serve the gateway. Use the Redis (or IPC) layer.",
                    type(layer).__name__,
                )
            capacity = layer.get_capacity(protocol.CONNECTION_PREFIX + "x!x")
            if capacity < protocol.REPLY_WINDOW + 16:
                logger.warning(
                    "Gateway: connection channels hold %d messages (the layer's capacity for "
                    "%s*); a worker may have %d replies in flight for one connection, so "
                    "give them at least %d (channel_capacity) or replies will be dropped",
                    capacity,
                    protocol.CONNECTION_PREFIX,
                    protocol.REPLY_WINDOW,
                    protocol.REPLY_WINDOW + 16,
                )
            self.layer = layer
            self.channel = await layer.new_channel(protocol.GATEWAY_PREFIX)
            await layer.group_add(protocol.GATEWAYS_GROUP, self.channel)
            self.started_at = time.monotonic()
            self._control = asyncio.ensure_future(self._run_control())
            logger.info(
                "Gateway %s forwarding connections to workers on channel %s",
                self.channel,
                self.settings.channel,
            )

    async def stop(self) -> None:
        if self._control is not None:
            self._control.cancel()
            await asyncio.gather(self._control, return_exceptions=True)
            self._control = None
        if self.layer is not None and self.channel:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(protocol.GATEWAYS_GROUP, self.channel)

    # -- what links ask -----------------------------------------------------------------

    def saw(self, worker: str) -> None:
        self.workers[worker] = time.monotonic()

    def worker_alive(self, worker: str) -> bool:
        seen = self.workers.get(worker)
        return seen is not None and time.monotonic() - seen <= self.settings.worker_timeout

    def any_worker(self) -> bool:
        """Whether a worker was heard from lately."""
        now = time.monotonic()
        timeout = self.settings.worker_timeout
        return any(now - seen <= timeout for seen in self.workers.values())

    def overloaded(self) -> str | None:
        """Why a new connection must be refused now, or None."""
        just_started = time.monotonic() - self.started_at <= 2 * self.settings.worker_timeout
        if not just_started and not self.any_worker():
            return "no worker is running (start: manage.py runworker --connections)"
        if len(self.waiting) >= self.settings.max_pending:
            return f"{self.settings.max_pending} connections already wait for a worker"
        return None

    # -- the gateway's own channel --------------------------------------------------------

    async def _run_control(self) -> None:
        assert self.layer is not None
        layer = self.layer
        watcher = asyncio.ensure_future(self._watch())
        try:
            while True:
                try:
                    message = await layer.receive(self.channel)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("Gateway: reading its channel failed; retrying")
                    await asyncio.sleep(0.5)
                    continue
                try:
                    self._on_control(message)
                except Exception:
                    logger.exception("Gateway: a message on its channel could not be handled")
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def _on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == protocol.ALIVE:
            self.saw(message["worker"])
        elif kind == protocol.ACKS:
            worker = message["worker"]
            self.saw(worker)
            for conn, epoch, seq, state in message.get("acks", ()):
                link = self.links.get(conn)
                if link is not None:
                    link.on_ack(epoch, seq, state)
            for conn, epoch in message.get("held", ()):
                link = self.links.get(conn)
                if link is None or link.epoch != epoch or link.owner != worker:
                    self.revoke(worker, conn, epoch)
        else:
            logger.warning("Gateway: unexpected message on its channel: %r", kind)

    def revoke(self, worker: str, conn: str, epoch: int) -> None:
        assert self.layer is not None
        message = {"type": protocol.REVOKE, "conn": conn, "epoch": epoch}
        self.spawn(self.layer.send(worker, message))

    def spawn(self, work: Any) -> None:
        """Run a send in the background; a failure is logged, not raised."""
        task = asyncio.ensure_future(work)
        task.add_done_callback(_log_failure)

    async def _watch(self) -> None:
        """Move the connections of silent workers; re-post or give up unclaimed ones."""
        assert self.layer is not None
        layer = self.layer
        interval = self.settings.heartbeat_interval
        alive = {"type": protocol.ALIVE, "gateway": self.channel}
        while True:
            await asyncio.sleep(interval)
            try:
                await layer.group_send(protocol.WORKERS_GROUP, alive)
            except Exception:
                logger.warning("Gateway: sending its heartbeat failed", exc_info=True)
            now = time.monotonic()
            for link in list(self.waiting):
                link.check_waiting(now)
            for worker, links in list(self.owned.items()):
                if not self.worker_alive(worker):
                    for link in list(links):
                        link.owner_silent()
            for link in list(self.lingering):
                link.poke()  # time to see whether it may go
            for link in list(self.unsettled):
                link.resend_if_stalled(now)
            timeout = self.settings.worker_timeout
            for worker, seen in list(self.workers.items()):
                if now - seen > 60 * timeout:
                    del self.workers[worker]  # long gone: forget it


def _process_local(layer: BaseChannelLayer) -> bool:
    from djwire.layers import InMemoryChannelLayer

    return isinstance(layer, InMemoryChannelLayer)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("Gateway: a send over the channel layer failed", exc_info=task.exception())
