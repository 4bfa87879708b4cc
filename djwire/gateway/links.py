"""One client connection at the gateway: its events, the worker that runs it, its state.

A link numbers the connection's events and keeps each until the owning worker
acknowledges it as handled. It posts the connection (OPEN) on the connections
channel, where any worker may take it; the taker CLAIMs it and is sent every
event since. When the owner falls silent or hands the connection back (RELEASE),
the link posts it again, with the consumer's last state and every event not yet
acknowledged, under a new epoch (see :mod:`.protocol`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from djwire.extensions import DIRECT_SOCKET
from djwire.typing import ASGIReceive, ASGISend, Scope

from . import protocol

if TYPE_CHECKING:
    from .app import GatewayApp

logger = logging.getLogger("djwire.gateway")

#: HTTP methods a gateway may post again when no worker claimed them in time.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Finished(Exception):
    """The link has nothing more to do."""


class Link:
    """What websocket and HTTP links share: ownership, numbering, acknowledgements."""

    kind = "connection"
    #: Whether a claim is confirmed before the worker starts the application.
    confirms = True

    def __init__(self, app: GatewayApp, scope: Scope, receive: ASGIReceive, send: ASGISend):
        assert app.layer is not None
        self.app = app
        self.layer = app.layer
        self.settings = app.settings
        self.scope = scope
        self.receive = receive
        self.send = send
        self.conn = ""
        self.epoch = 0
        self.owner: str | None = None
        self.seq = 0
        self.unacked: deque[tuple[int, dict[str, Any]]] = deque()
        self.sent_upto = 0
        self.state: bytes | None = None
        #: When the current OPEN was posted, while no worker has claimed it.
        self.waiting_since: float | None = None
        self.first_posted = 0.0
        self.finished = False
        self.wake = asyncio.Event()
        self._wakeup: asyncio.Future[None] | None = None  # the serve loop, when idle
        self._woken = False
        self.replies_done = 0  # REPLYs of the current owner passed on (see CREDIT)
        self.progress_at = 0.0  # when the owner last acknowledged (or we last resent)
        self.acked = 0  # the highest event number a worker acknowledged

    # -- numbering and ownership ----------------------------------------------------------

    async def push(self, event: dict[str, Any]) -> None:
        """Number an event and send it to the owner, or keep it until there is one."""
        self.seq += 1
        if not self.unacked:
            self.progress_at = time.monotonic()
        self.unacked.append((self.seq, event))
        self.app.unsettled.add(self)
        if self.owner is not None and self.sent_upto == self.seq - 1:
            self.sent_upto = self.seq
            await self._send_event(self.owner, self.seq, event)

    def resend_if_stalled(self, now: float) -> None:
        """Events sent but not acknowledged for ``resend_after``: send them again (one may
        have been dropped on the way; the worker ignores those it already has)."""
        if not self.unacked:
            self.app.unsettled.discard(self)
            return
        owner = self.owner
        if owner is None or now - self.progress_at < self.settings.resend_after:
            return
        self.progress_at = now
        self.app.spawn(
            self._resend(owner, [item for item in self.unacked if item[0] <= self.sent_upto])
        )

    async def _resend(self, owner: str, events: list[tuple[int, dict[str, Any]]]) -> None:
        for seq, event in events:
            if self.owner != owner:
                return
            await self._send_event(owner, seq, event)

    async def _send_event(self, owner: str, seq: int, event: dict[str, Any]) -> None:
        message = {
            "type": protocol.EVENT,
            "conn": self.conn,
            "epoch": self.epoch,
            "seq": seq,
            "event": event,
        }
        try:
            await self.layer.send(owner, message)
        except Exception:
            # The event stays unacknowledged; the next owner gets it if this one died.
            logger.warning("Gateway: sending an event to worker %s failed", owner, exc_info=True)

    def set_owner(self, worker: str | None) -> None:
        """Change the owner, keeping the gateway's index of links by owner right."""
        owned = self.app.owned
        if self.owner is not None:
            links = owned.get(self.owner)
            if links is not None:
                links.discard(self)
                if not links:
                    del owned[self.owner]
        self.owner = worker
        if worker is not None:
            owned.setdefault(worker, set()).add(self)

    def set_waiting(self, since: float | None) -> None:
        self.waiting_since = since
        if since is None:
            self.app.waiting.discard(self)
        else:
            self.app.waiting.add(self)

    def post_open(self) -> None:
        """Offer the connection to any worker (again), with what it needs to go on."""
        self.epoch += 1
        self.replies_done = 0
        self.set_owner(None)
        now = time.monotonic()
        if self.waiting_since is None and self.epoch == 1:
            self.first_posted = now
        self.set_waiting(now)
        self.sent_upto = self.seq
        message = {
            "type": protocol.OPEN,
            "conn": self.conn,
            "gateway": self.app.channel,
            "epoch": self.epoch,
            "scope": protocol.portable_scope(self.scope),
            "events": [[seq, event] for seq, event in self.unacked],
            "acked": self.acked,
            "state": self.state,
        }
        self.app.spawn(self._post(message))

    async def _post(self, message: dict[str, Any]) -> None:
        try:
            await self.layer.send(self.settings.channel, message)
        except Exception:
            # Full or unreachable: the claim timeout posts it again, then gives up.
            logger.warning(
                "Gateway: could not post %s to %s", self.kind, self.settings.channel, exc_info=True
            )

    async def on_claim(self, worker: str, epoch: int) -> None:
        if epoch != self.epoch or self.owner is not None or self.finished:
            self.app.revoke(worker, self.conn, epoch)
            return
        self.set_owner(worker)
        self.set_waiting(None)
        self.app.saw(worker)
        if self.confirms:
            confirm = {"type": protocol.CONFIRM, "conn": self.conn, "epoch": epoch}
            try:
                await self.layer.send(worker, confirm)
            except Exception:
                logger.warning("Gateway: confirming %s to %s failed", self.conn, worker)
        # Events that arrived after the OPEN was posted.
        for seq, event in list(self.unacked):
            if seq > self.sent_upto and self.owner == worker:
                self.sent_upto = seq
                await self._send_event(worker, seq, event)

    def on_ack(self, epoch: int, seq: int, state: bytes | None) -> None:
        if epoch != self.epoch:
            return
        unacked = self.unacked
        if seq > self.acked:
            self.acked = seq
        if unacked and unacked[0][0] <= seq:
            self.progress_at = time.monotonic()
        while unacked and unacked[0][0] <= seq:
            unacked.popleft()
        if not unacked:
            self.app.unsettled.discard(self)
        if state is not None:
            self.state = state
        self.poke()

    def on_release(self, worker: str, epoch: int, seq: int, state: bytes | None) -> None:
        self.on_ack(epoch, seq, state)
        if epoch == self.epoch and self.owner == worker and not self.finished:
            logger.info("Gateway: worker %s handed %s back; moving it", worker, self.conn)
            self.handed_back()

    def handed_back(self) -> None:
        """The owner stopped and gave the connection back, its events up to date."""
        self.post_open()

    def owner_lost(self) -> None:
        self.post_open()

    def owner_silent(self) -> None:
        """The owner sent no heartbeat for ``worker_timeout``."""
        if self.finished:
            return
        logger.warning(
            "Gateway: worker %s is silent; moving %s to another worker", self.owner, self.conn
        )
        self.owner_lost()

    def check_waiting(self, now: float) -> None:
        """Called every heartbeat interval while no worker has claimed the connection."""
        if self.finished or self.waiting_since is None:
            return
        if now - self.first_posted > self.settings.open_timeout:
            self.give_up()
        elif (
            now - self.waiting_since > self.settings.claim_timeout
            and self.app.any_worker()
            and self.may_repost()
        ):
            logger.warning("Gateway: no worker took %s in time; posting it again", self.conn)
            self.post_open()

    def may_repost(self) -> bool:
        return True

    def give_up(self) -> None:
        """No worker took the connection within ``open_timeout``."""
        self.set_waiting(None)
        self.finished = True
        self.poke()

    # -- the connection's channel -----------------------------------------------------------

    async def open_channel(self) -> None:
        self.conn = await self.layer.new_channel(protocol.CONNECTION_PREFIX)
        self.app.links[self.conn] = self

    def close_channel(self) -> None:
        if self.conn:
            self.app.links.pop(self.conn, None)
            self.layer.detach_socket(self.conn)
        self.set_owner(None)
        self.set_waiting(None)
        self.app.lingering.discard(self)
        self.app.unsettled.discard(self)

    def receive_conn(self) -> asyncio.Future[dict[str, Any]]:
        claim = getattr(self.layer, "claim_receive", None)
        if claim is not None:
            future: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(claim(self.conn))
            return future
        return asyncio.ensure_future(self.layer.receive(self.conn))

    async def on_conn_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == protocol.REPLY:
            if message.get("epoch") == self.epoch:
                for event in message.get("events") or (message["event"],):
                    await self.on_reply(event)
                self._credit()
        elif kind == protocol.CLAIM:
            await self.on_claim(message["worker"], message["epoch"])
        elif kind == protocol.RELEASE:
            self.on_release(message["worker"], message["epoch"], message["seq"], message["state"])
        elif protocol.is_direct_reply(message):
            await self.on_direct(message)
        else:
            await self.on_layer_message(message)

    async def on_reply(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def _credit(self) -> None:
        """Let the owner send more replies once enough went to the client."""
        self.replies_done += 1
        if self.replies_done % protocol.CREDIT_EVERY == 0 and self.owner is not None:
            message = {
                "type": protocol.CREDIT,
                "conn": self.conn,
                "epoch": self.epoch,
                "n": protocol.CREDIT_EVERY,
            }
            self.app.spawn(self.layer.send(self.owner, message))

    async def on_direct(self, message: dict[str, Any]) -> None:
        logger.warning("Gateway: %s got a socket message; dropped", self.kind)

    async def on_layer_message(self, message: dict[str, Any]) -> None:
        """A message for the connection's consumer: pass it on, like a client event."""
        if len(self.unacked) >= 10 * self.settings.max_unacked:
            self.app.layer_drops += 1
            if self.app.layer_drops == 1 or self.app.layer_drops % 1000 == 0:
                logger.warning(
                    "Gateway: %s has %d events its worker has not handled; dropped a layer "
                    "message (%d so far)",
                    self.conn,
                    len(self.unacked),
                    self.app.layer_drops,
                )
            return
        await self.push(message)

    # -- the loop ---------------------------------------------------------------------------

    async def next_client_event(self) -> dict[str, Any]:
        raise NotImplementedError

    async def on_client_event(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def client_ready(self) -> bool:
        """Whether the next client event may be read now."""
        return True

    def _client_future(self) -> asyncio.Future[dict[str, Any]]:
        if self.client_ready():
            # djwire's server hands out a future: no Task per client event.
            return asyncio.ensure_future(self.receive())
        return asyncio.ensure_future(self.next_client_event())

    def poke(self) -> None:
        """Something changed (acknowledgements, timers): look at the link again."""
        self.wake.set()
        self._woken = True
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def serve(self) -> None:
        """Handle client events and channel messages until the link is finished.

        Each source has one pending future whose done-callback queues it; one wake-up
        future is awaited when nothing is queued (no asyncio.wait per event)."""
        loop = asyncio.get_running_loop()
        ready: deque[tuple[bool, asyncio.Future[dict[str, Any]]]] = deque()

        def arm(from_client: bool, future: asyncio.Future[dict[str, Any]]) -> Any:
            def arrived(done: asyncio.Future[dict[str, Any]]) -> None:
                ready.append((from_client, done))
                wakeup = self._wakeup
                if wakeup is not None and not wakeup.done():
                    wakeup.set_result(None)

            future.add_done_callback(arrived)
            return future

        client = arm(True, self._client_future())
        conn = arm(False, self.receive_conn())
        try:
            while not self.finished:
                if not ready and not self._woken:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                if self._woken:
                    self._woken = False
                    self.on_wake()
                    continue
                from_client, done = ready.popleft()
                if from_client:
                    # Handled before reading on: after a disconnect there is no next.
                    await self.on_client_event(done.result())
                    client = arm(True, self._client_future())
                else:
                    conn = arm(False, self.receive_conn())
                    await self.on_conn_message(done.result())
        except _Finished:
            pass
        finally:
            for pending in (client, conn):
                pending.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(client, conn, return_exceptions=True)

    def on_wake(self) -> None:
        """Something changed (acks, timers): see whether the link is done."""


#: Replies a WebSocket link passes to the server as they are.
_PASSED_ON = frozenset(
    {"websocket.send", "websocket.http.response.start", "websocket.http.response.body"}
)


class WebSocketLink(Link):
    kind = "websocket"

    def __init__(self, app: GatewayApp, scope: Scope, receive: ASGIReceive, send: ASGISend):
        super().__init__(app, scope, receive, send)
        self.accepted = False
        self.closed = False  # we sent websocket.close
        self.disconnected = False  # the client is gone
        self.disconnected_at = 0.0

    async def run(self) -> None:
        event = await self.receive()
        if event.get("type") != "websocket.connect":
            return
        refusal = self.app.overloaded()
        if refusal is not None:
            await self._refuse(refusal)
            return
        await self.open_channel()
        try:
            await self.push(event)
            self.post_open()
            await self.serve()
        finally:
            self.close_channel()

    async def _refuse(self, reason: str) -> None:
        logger.warning("Gateway: refusing a WebSocket handshake: %s", reason)
        if "websocket.http.response" in self.scope.get("extensions", {}):
            body = f"Service unavailable: {reason}\n".encode()
            await self.send(
                {
                    "type": "websocket.http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await self.send({"type": "websocket.http.response.body", "body": body})
        else:
            await self.send({"type": "websocket.close", "code": 1013})

    def client_ready(self) -> bool:
        # The worker is behind: stop reading, and the client's TCP window fills.
        return not self.disconnected and len(self.unacked) < self.settings.max_unacked

    async def next_client_event(self) -> dict[str, Any]:
        while not self.disconnected and not self.client_ready():
            self.wake.clear()
            await self.wake.wait()
        if self.disconnected:
            await asyncio.get_running_loop().create_future()  # nothing more to read
        event: dict[str, Any] = await self.receive()
        return event

    async def on_client_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "websocket.disconnect":
            self.disconnected = True
            self.disconnected_at = time.monotonic()
            self.app.lingering.add(self)
            self.layer.detach_socket(self.conn)
            await self.push(event)
        elif kind == "websocket.receive":
            await self.push(event)

    async def on_reply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self.closed or self.disconnected:
            return
        if kind == "websocket.accept":
            if self.accepted:
                return  # a resumed consumer accepting again
            self.accepted = True
            await self._send(event)
            socket = self.scope.get("extensions", {}).get(DIRECT_SOCKET)
            if socket is not None:
                self.layer.attach_socket(self.conn, socket)
        elif kind == "websocket.close":
            self.closed = True
            self.layer.detach_socket(self.conn)
            await self._send(event)
        elif kind == "websocket.send" and not self.accepted:
            logger.warning(
                "Gateway: a websocket.send before the accept was dropped (%s)", self.conn
            )
        elif kind in _PASSED_ON:
            await self._send(event)
        else:
            logger.warning("Gateway: unexpected reply %r for a WebSocket; ignored", kind)

    async def on_direct(self, message: dict[str, Any]) -> None:
        """A ``websocket.send`` or a classic reply that reached the link itself (the
        socket was not attached yet, or had messages queued before it)."""
        if message.get("type") == "websocket.send":
            await self.on_reply(message)
            return
        for event in protocol.classic_reply_events(message, self.accepted):
            await self.on_reply(event)

    async def _send(self, event: dict[str, Any]) -> None:
        try:
            await self.send(event)
        except Exception:  # the client is gone; its disconnect event follows
            logger.debug("Gateway: sending to a closed WebSocket failed", exc_info=True)

    def give_up(self) -> None:
        logger.error(
            "Gateway: no worker took a WebSocket within %ss; closing it (1013)",
            self.settings.open_timeout,
        )
        super().give_up()
        if not self.disconnected:
            self.app.spawn(self._send({"type": "websocket.close", "code": 1013}))

    def on_wake(self) -> None:
        if not self.disconnected:
            return
        # The client is gone: done once the worker has handled the disconnect.
        lingered = time.monotonic() - self.disconnected_at
        if not self.unacked or lingered > self.settings.linger:
            if self.unacked:
                logger.warning(
                    "Gateway: %s closed; its worker did not confirm the last %d event(s) "
                    "within %ss",
                    self.conn,
                    len(self.unacked),
                    self.settings.linger,
                )
            self.finished = True


class HttpLink(Link):
    kind = "HTTP request"
    confirms = False  # the worker starts at once (see ConnectionHost._open)

    def __init__(self, app: GatewayApp, scope: Scope, receive: ASGIReceive, send: ASGISend):
        super().__init__(app, scope, receive, send)
        self.response_started = False
        self.client_gone = False

    async def run(self) -> None:
        body = await self._read_body()
        if body is None:
            return
        refusal = self.app.overloaded()
        if refusal is not None:
            logger.warning("Gateway: answering 503: %s", refusal)
            await self._respond(503, f"Service unavailable: {refusal}\n")
            return
        await self.open_channel()
        try:
            await self.push({"type": "http.request", "body": body, "more_body": False})
            self.post_open()
            await self.serve()
        finally:
            self.close_channel()

    async def _read_body(self) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        limit = self.settings.max_request_body
        while True:
            event = await self.receive()
            if event["type"] == "http.disconnect":
                return None
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._respond(413, f"Request body larger than {limit} bytes\n")
                return None
            chunks.append(chunk)
            if not event.get("more_body", False):
                return b"".join(chunks)

    async def _respond(self, status: int, text: str) -> None:
        with contextlib.suppress(Exception):
            await self.send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"connection", b"close"),
                    ],
                }
            )
            await self.send({"type": "http.response.body", "body": text.encode()})

    def client_ready(self) -> bool:
        return not self.client_gone

    async def next_client_event(self) -> dict[str, Any]:
        await asyncio.get_running_loop().create_future()  # the client is gone: nothing more
        raise AssertionError("unreachable")

    async def on_client_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "http.disconnect":
            self.client_gone = True
            await self.push(event)
            self.finished = True

    async def on_reply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "http.response.start":
            self.response_started = True
        try:
            await self.send(event)
        except Exception:
            logger.debug("Gateway: the HTTP client left during the response", exc_info=True)
            self.finished = True
            return
        if kind == "http.response.body" and not event.get("more_body", False):
            self.finished = True

    def may_repost(self) -> bool:
        return self.scope.get("method", "GET") in SAFE_METHODS

    def handed_back(self) -> None:
        if self.unacked and self.unacked[0][0] == 1 and not self.response_started:
            self.post_open()  # the request never started: another worker may run it
        else:
            self.owner_lost()

    def owner_lost(self) -> None:
        logger.error("Gateway: the worker running %s went away mid-request", self.conn)
        self.set_owner(None)
        self.finished = True
        self.poke()
        if not self.response_started:
            self.app.spawn(self._respond(502, "Bad gateway: the worker went away\n"))

    def give_up(self) -> None:
        logger.error(
            "Gateway: no worker took a request within %ss; answering 503",
            self.settings.open_timeout,
        )
        super().give_up()
        self.app.spawn(self._respond(503, "Service unavailable: no worker took the request\n"))
