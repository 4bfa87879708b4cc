"""Connection workers: run the consumers and views of connections held by gateways.

``manage.py runworker --connections`` takes new connections from the connections
channel (any worker may take each), claims them, and runs the project's ASGI
application for each: one application instance per connection, fed the events the
gateway forwards, its replies sent back to the connection's channel. See
:mod:`djwire.gateway.protocol` for the exchange and what happens when a worker
stops or dies.

Per connection the worker acknowledges each handled event (in batches, per
gateway), with a snapshot of the consumer's state when it changed
(:mod:`.state`). On SIGTERM it takes no new connection, lets each connection
finish the event in hand, and hands it back to its gateway (RELEASE) with the
last state, so another worker carries on with the socket still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict, deque
from typing import Any

from djwire.exceptions import RouteNotFound
from djwire.gateway import protocol
from djwire.gateway.settings import GatewaySettings
from djwire.layers import BaseChannelLayer
from djwire.typing import ASGIApp

from . import state
from .extension import WORKER_EXTENSION
from .settings import WorkerSettings
from .threads import ThreadPool

logger = logging.getLogger("djwire.worker")

#: Connections taken from the connections channel per call.
TAKE_BATCH = 16
#: How often acknowledgements are sent (s): they are batched per gateway meanwhile.
ACK_INTERVAL = 0.05
#: How often a worker lists its connections to their gateways, which revoke stale ones.
AUDIT_INTERVAL = 2.0
#: Events of a connection kept while one before them is missing (it is sent again).
MAX_EARLY_EVENTS = 1000
#: Ended connections remembered, to acknowledge their last events (see ``ended``).
MAX_FINISHED = 10_000
#: Capacity of a connection worker's own channel, unless configured otherwise.
WORKER_CHANNEL_CAPACITY = 10_000


class _Replied:
    """What the application has sent so far: enough to close what it leaves open."""

    __slots__ = ("closed", "finished", "started")

    def __init__(self) -> None:
        self.started = self.finished = self.closed = False

    def note(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "http.response.start":
            self.started = True
        elif kind == "http.response.body" and not event.get("more_body", False):
            self.finished = True
        elif kind == "websocket.close" or kind == "websocket.http.response.body":
            self.closed = True


class HostedConnection:
    """One gateway connection on this worker: its application instance and events."""

    def __init__(self, host: ConnectionHost, message: dict[str, Any]) -> None:
        self.host = host
        self.conn: str = message["conn"]
        self.gateway: str = message["gateway"]
        self.epoch: int = message["epoch"]
        events = [(int(seq), event) for seq, event in message.get("events", ())]
        self.events: deque[tuple[int, dict[str, Any]]] = deque(events)
        self.early: dict[int, dict[str, Any]] = {}  # arrived ahead of a missing one
        # Events up to ``acked`` were handled by an earlier worker; numbering goes on.
        acked = int(message.get("acked", 0))
        self.last_seq = events[-1][0] if events else acked
        self.resumed = acked > 0
        self.saved_state: bytes | None = message.get("state")
        self.done_seq = acked
        self.current: tuple[int, dict[str, Any]] | None = None
        scope = protocol.worker_scope(message["scope"])
        scope["extensions"] = {**(scope.get("extensions") or {}), WORKER_EXTENSION: self}
        self.scope = scope
        self.is_websocket = scope.get("type") == "websocket"
        self.consumer: Any = None
        self.replied = _Replied()
        self.held_start: dict[str, Any] | None = None
        self.in_flight = 0  # REPLYs the gateway has not credited yet
        self.credit = asyncio.Event()
        self.absorb_accept = False
        self.released = False
        self.claimed_at = time.monotonic()
        self.arrived = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task[None] | None = None

    # -- the ConsumerHost protocol (djwire.worker.extension) ---------------------------

    @property
    def channel_name(self) -> str:
        return self.conn

    def adopt(self, consumer: Any) -> bool:
        self.consumer = consumer
        if self.resumed and self.saved_state is not None:
            state.restore(consumer, self.saved_state)
        return self.resumed

    def handled(self, message: dict[str, Any]) -> None:
        current = self.current
        if current is not None and current[1] is message:
            self._done(current[0])

    # -- the application's receive and send --------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if self.consumer is not None:
            await self.idle.wait()  # the consumer asks early; one event at a time
        elif self.current is not None:
            self._done(self.current[0])
        elif self.resumed and self.is_websocket and not self.absorb_accept:
            # An application that is not a djwire consumer restarts on this worker:
            # it sees the handshake again, and its accept is not passed on.
            self.absorb_accept = True
            return {"type": "websocket.connect"}
        while not self.events:
            self.arrived.clear()
            await self.arrived.wait()
        self.current = self.events.popleft()
        self.idle.clear()
        return self.current[1]

    async def send(self, event: dict[str, Any]) -> None:
        if self.released:
            return
        kind = event.get("type")
        if self.absorb_accept and kind == "websocket.accept":
            self.absorb_accept = False
            return
        self.replied.note(event)
        if kind == "http.response.start":
            # Held for the first body: the two travel as one message, as servers only
            # write the head with the body anyway.
            self.held_start = event
            return
        layer = self.host.layer
        if kind == "websocket.send" and len(event) == 2:
            # As it is: the gateway writes it straight to the socket.
            await layer.send(self.conn, event)
        else:
            while self.in_flight >= protocol.REPLY_WINDOW:
                # The gateway is behind (a slow client): wait, as send() does in-process.
                self.credit.clear()
                await self.credit.wait()
            self.in_flight += 1
            reply: dict[str, Any] = {"type": protocol.REPLY, "epoch": self.epoch}
            if self.held_start is not None:
                reply["events"] = [self.held_start, event]
                self.held_start = None
            else:
                reply["event"] = event
            await layer.send(self.conn, reply)

    # -- events ------------------------------------------------------------------------

    def deliver(self, seq: int, event: dict[str, Any]) -> None:
        """Queue event ``seq`` for the application, in order, each once."""
        if seq <= self.last_seq or seq in self.early:
            return  # a duplicate: already queued or handled
        if seq != self.last_seq + 1:
            # One before it went missing (a full channel): the gateway sends it again.
            if len(self.early) < MAX_EARLY_EVENTS:
                self.early[seq] = event
            return
        self.last_seq = seq
        self.events.append((seq, event))
        while (later := self.early.pop(self.last_seq + 1, None)) is not None:
            self.last_seq += 1
            self.events.append((self.last_seq, later))
        self.arrived.set()

    def _done(self, seq: int) -> None:
        self.current = None
        self.done_seq = seq
        self.idle.set()
        snapshot = None
        if self.consumer is not None and self.is_websocket:
            snapshot = state.snapshot(
                self.consumer, self.host.gateway_settings.max_state_size, self.saved_state
            )
            if snapshot is not None:  # changed since the last one
                self.saved_state = snapshot
        self.host.acknowledge(self, seq, snapshot)

    def busy(self) -> bool:
        return self.current is not None or bool(self.events)

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        async def run() -> None:
            async with self.host.threads.context():
                await self.host.application(self.scope, self.receive, self.send)

        self.task = asyncio.ensure_future(run())
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The application returned or raised: close what it left open, as the
        interface server does in-process."""
        if task.cancelled() or self.released:
            self.host.forget(self)
            return
        self.host.ended(self)
        error = task.exception()
        if self.current is not None:
            self._done(self.current[0])  # handled, if badly: not to be run again
        path = self.scope.get("path")
        if isinstance(error, RouteNotFound):
            logger.warning("Not Found: %s %s (%s)", self.scope.get("type"), path, error)
        elif error is not None:
            logger.error(
                "Exception in ASGI application for %s %s",
                self.scope.get("type"),
                path,
                exc_info=error,
            )
        if self.is_websocket:
            if not self.replied.closed:
                code = 1000 if error is None else 1011
                self.host.spawn(self.send({"type": "websocket.close", "code": code}))
        elif not self.replied.finished:
            if error is None:
                logger.error(
                    "ASGI application returned without finishing its response to %s", path
                )
            self.host.spawn(self._end_response(404 if isinstance(error, RouteNotFound) else 500))

    async def _end_response(self, status: int) -> None:
        if not self.replied.started:
            text = b"Not Found\n" if status == 404 else b"Internal Server Error\n"
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            await self.send({"type": "http.response.start", "status": status, "headers": headers})
            await self.send({"type": "http.response.body", "body": text})
        else:
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def release(self) -> None:
        """Hand the connection back to its gateway, for another worker to run."""
        if self.released:
            return
        self.released = True
        snapshot = self.saved_state
        if self.consumer is not None and self.is_websocket:
            snapshot = state.snapshot(self.consumer, self.host.gateway_settings.max_state_size)
        message = {
            "type": protocol.RELEASE,
            "worker": self.host.channel,
            "epoch": self.epoch,
            "seq": self.done_seq,
            "state": snapshot,
        }
        try:
            await self.host.layer.send(self.conn, message)
        except Exception:
            logger.warning("Could not hand %s back to its gateway", self.conn, exc_info=True)
        await self.abandon()

    async def abandon(self) -> None:
        """Stop running the connection here without telling the consumer (it moved)."""
        self.released = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.host.forget(self)

    def gateway_gone(self) -> None:
        """The gateway holding the socket is gone: the client is disconnected."""
        if self.is_websocket:
            self.deliver(self.last_seq + 1, {"type": "websocket.disconnect", "code": 1006})
        else:
            self.deliver(self.last_seq + 1, {"type": "http.disconnect"})


class ConnectionHost:
    """Take connections from gateways and run them until stopped."""

    def __init__(
        self,
        application: ASGIApp,
        layer: BaseChannelLayer,
        settings: WorkerSettings | None = None,
        gateway_settings: GatewaySettings | None = None,
    ) -> None:
        self.settings = settings or WorkerSettings()
        if self.settings.django_fast_path:
            from djwire.django_http import accelerate

            application = accelerate(application, threads=self.settings.django_threads)
        self.application = application
        self.layer = layer
        self.gateway_settings = gateway_settings or GatewaySettings.from_django()
        self.max_connections = self.settings.max_connections
        self.channel = ""
        self.connections: dict[str, HostedConnection] = {}
        #: Connections whose application ended here lately: conn -> (gateway, epoch).
        self.finished: OrderedDict[str, tuple[str, int]] = OrderedDict()
        #: gateway channel -> when it last gave a sign of life (monotonic)
        self.gateways: dict[str, float] = {}
        self.threads = ThreadPool(self.settings.concurrency, "djwire-connections")
        self.stopping = False
        self._acks: dict[str, dict[str, list[Any]]] = {}
        self._ack_wake = asyncio.Event()
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._stopped = asyncio.Event()

    # -- running -----------------------------------------------------------------------

    async def handle(self) -> None:
        self.channel = await self.layer.new_channel(protocol.WORKER_PREFIX)
        if not self.layer.configured_capacity(self.channel):
            # Events for every connection of this worker share its channel, which it
            # drains into per-connection queues at once; a busy moment must not
            # overflow it (what does is sent again, after resend_after).
            own = self.channel.partition("!")[0] + "!"
            self.layer.set_capacity(
                re.compile(re.escape(own)), max(self.layer.capacity, WORKER_CHANNEL_CAPACITY)
            )
        await self.layer.group_add(protocol.WORKERS_GROUP, self.channel)
        logger.info(
            "Connection worker %s taking connections from %s",
            self.channel,
            self.gateway_settings.channel,
        )
        self._tasks = [
            asyncio.ensure_future(work)
            for work in (self._take(), self._read_own_channel(), self._beat(), self._send_acks())
        ]
        try:
            await self._stopped.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Take no new connection; hand each back once its event in hand is done."""
        if self.stopping:
            await self._stopped.wait()
            return
        self.stopping = True
        taker = self._tasks[0] if self._tasks else None
        if taker is not None:
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        while self.connections and loop.time() < deadline:
            for hosted in list(self.connections.values()):
                if hosted.task is None:
                    await hosted.release()  # claimed, never started: the next worker starts it
                elif hosted.is_websocket and not hosted.busy():
                    await hosted.release()
            if self.connections:
                await asyncio.sleep(0.01)
        for hosted in list(self.connections.values()):
            # Past the deadline: what is in hand is run again by the next worker.
            if hosted.is_websocket:
                await hosted.release()
            else:
                await hosted.abandon()
        await self._flush_acks()
        with contextlib.suppress(Exception):
            await self.layer.group_discard(protocol.WORKERS_GROUP, self.channel)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self.threads.shutdown()
        self._stopped.set()

    def spawn(self, work: Any) -> None:
        future = asyncio.ensure_future(work)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    # -- new connections ---------------------------------------------------------------

    async def _take(self) -> None:
        channel = self.gateway_settings.channel
        while not self.stopping:
            room = self.max_connections - len(self.connections)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                deliveries = await self.layer.take(channel, min(room, TAKE_BATCH))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Taking connections from %s failed; retrying", channel)
                await asyncio.sleep(1)
                continue
            for delivery in deliveries:
                await self._open(delivery.message)

    async def _open(self, message: dict[str, Any]) -> None:
        if message.get("type") != protocol.OPEN:
            logger.error("Unexpected message on the connections channel: %r", message.get("type"))
            return
        try:
            hosted = HostedConnection(self, message)
        except (KeyError, TypeError, ValueError):
            logger.exception("A malformed connection was posted; dropped")
            return
        old = self.connections.get(hosted.conn)
        if old is not None:
            await old.abandon()
        self.connections[hosted.conn] = hosted
        self.gateways[hosted.gateway] = time.monotonic()
        claim = {"type": protocol.CLAIM, "worker": self.channel, "epoch": hosted.epoch}
        try:
            await self.layer.send(hosted.conn, claim)
        except Exception:
            logger.warning("Could not claim %s; leaving it", hosted.conn, exc_info=True)
            self.forget(hosted)
        if not hosted.is_websocket:
            # An HTTP request starts at once: the gateway posts one again only when it
            # is safe to run twice (GET, HEAD, OPTIONS), and a late duplicate's replies
            # are dropped. A WebSocket starts when the gateway confirms the claim, so
            # connect() never runs twice.
            hosted.start()

    def forget(self, hosted: HostedConnection) -> None:
        if self.connections.get(hosted.conn) is hosted:
            del self.connections[hosted.conn]
            self._room.set()

    def ended(self, hosted: HostedConnection) -> None:
        """Its application returned: events still on their way (a disconnect after the
        app closed the socket) are acknowledged, not handed back."""
        self.forget(hosted)
        self.finished[hosted.conn] = (hosted.gateway, hosted.epoch)
        if len(self.finished) > MAX_FINISHED:
            self.finished.popitem(last=False)

    # -- this worker's channel ---------------------------------------------------------

    async def _read_own_channel(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Reading %s failed; retrying", self.channel)
                await asyncio.sleep(0.5)
                continue
            kind = message.get("type")
            hosted = self.connections.get(message.get("conn", ""))
            finished = self.finished.get(message.get("conn", ""))
            if kind == protocol.EVENT and hosted is None and finished is not None:
                if finished[1] == message["epoch"]:
                    self._acknowledge(
                        finished[0], message["conn"], finished[1], message["seq"], None
                    )
            elif kind in (protocol.EVENT, protocol.CONFIRM) and (
                hosted is None or hosted.epoch < message["epoch"]
            ):
                # The gateway thinks this worker runs a connection it does not (any
                # more): hand it back, so the gateway gives it to a worker that will.
                self.spawn(self._disown(message["conn"], message["epoch"]))
            elif kind == protocol.EVENT:
                if hosted is not None and hosted.epoch == message["epoch"] and not hosted.released:
                    hosted.deliver(message["seq"], message["event"])
            elif kind == protocol.CREDIT:
                if hosted is not None and hosted.epoch == message["epoch"]:
                    hosted.in_flight = max(0, hosted.in_flight - int(message["n"]))
                    hosted.credit.set()
            elif kind == protocol.CONFIRM:
                if hosted is not None and hosted.epoch == message["epoch"] and hosted.task is None:
                    hosted.start()
            elif kind == protocol.REVOKE:
                if hosted is not None and hosted.epoch == message["epoch"]:
                    logger.info("%s now runs on another worker; dropping it here", hosted.conn)
                    self.spawn(hosted.abandon())
            elif kind == protocol.ALIVE:
                self.gateways[message["gateway"]] = time.monotonic()
            else:
                logger.warning("Unexpected message on %s: %r", self.channel, kind)

    async def _beat(self) -> None:
        """Heartbeats to gateways; connections of gateways that fell silent end."""
        settings = self.gateway_settings
        alive = {"type": protocol.ALIVE, "worker": self.channel}
        last_audit = time.monotonic()
        while True:
            try:
                await self.layer.group_send(protocol.GATEWAYS_GROUP, alive)
            except Exception:
                logger.warning("Sending the worker heartbeat failed", exc_info=True)
            now = time.monotonic()
            for hosted in list(self.connections.values()):
                if hosted.task is None:
                    if now - hosted.claimed_at > 2 * settings.claim_timeout:
                        self.forget(hosted)  # never confirmed: the gateway gave it elsewhere
                    continue
                seen = self.gateways.get(hosted.gateway, now)
                if now - seen > settings.gateway_timeout and not hosted.released:
                    logger.warning(
                        "Gateway %s is silent; ending its connection %s",
                        hosted.gateway,
                        hosted.conn,
                    )
                    hosted.released = True
                    hosted.gateway_gone()
            if now - last_audit >= AUDIT_INTERVAL:
                last_audit = now
                await self._audit()
            await asyncio.sleep(settings.heartbeat_interval)

    async def _disown(self, conn: str, epoch: int) -> None:
        message = {
            "type": protocol.RELEASE,
            "worker": self.channel,
            "epoch": epoch,
            "seq": 0,
            "state": None,
        }
        with contextlib.suppress(Exception):
            await self.layer.send(conn, message)

    async def _audit(self) -> None:
        """List held connections to their gateways, which revoke any moved elsewhere."""
        held: dict[str, list[list[Any]]] = {}
        for hosted in self.connections.values():
            # Only confirmed ones: an unconfirmed claim may still be on its way to the
            # gateway, which would take this list to mean "held by someone else".
            if hosted.task is not None and not hosted.released:
                held.setdefault(hosted.gateway, []).append([hosted.conn, hosted.epoch])
        for gateway, conns in held.items():
            message = {"type": protocol.ACKS, "worker": self.channel, "acks": [], "held": conns}
            with contextlib.suppress(Exception):
                await self.layer.send(gateway, message)

    # -- acknowledgements --------------------------------------------------------------

    def acknowledge(self, hosted: HostedConnection, seq: int, snapshot: bytes | None) -> None:
        self._acknowledge(hosted.gateway, hosted.conn, hosted.epoch, seq, snapshot)

    def _acknowledge(
        self, gateway: str, conn: str, epoch: int, seq: int, snapshot: bytes | None
    ) -> None:
        pending = self._acks.setdefault(gateway, {})
        entry = pending.get(conn)
        if entry is None or entry[0] != epoch:
            pending[conn] = [epoch, seq, snapshot]
        else:
            entry[1] = seq
            if snapshot is not None:
                entry[2] = snapshot
        self._ack_wake.set()

    async def _send_acks(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            await self._flush_acks()
            await asyncio.sleep(ACK_INTERVAL)  # let acknowledgements gather

    async def _flush_acks(self) -> None:
        pending, self._acks = self._acks, {}
        for gateway, entries in pending.items():
            acks = [[conn, epoch, seq, snap] for conn, (epoch, seq, snap) in entries.items()]
            message = {"type": protocol.ACKS, "worker": self.channel, "acks": acks}
            try:
                await self.layer.send(gateway, message)
            except Exception:
                logger.warning("Acknowledging to gateway %s failed", gateway, exc_info=True)
