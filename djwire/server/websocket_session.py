"""One WebSocket connection on asyncio: glue between the socket, the sans-I/O
protocol and the ASGI app (ASGI WebSocket spec 2.4, with the
``websocket.http.response`` denial extension).

An idle connection costs this object, the websockets protocol object and the app's
own task: no timer (the server's clock sweeps deadlines), no queue until messages
actually pile up, no compression state between messages.

The session is also the connection's :class:`djwire.extensions.DirectSocket`: the
channel layer may write pre-encoded frames straight to it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final, cast

from djwire.exceptions import ClientDisconnected
from djwire.extensions import DIRECT_SOCKET, FrameEncoder
from djwire.server.asgi_types import (
    Message,
    WebSocketConnectEvent,
    WebSocketDisconnectEvent,
    WebSocketScope,
)
from djwire.server.connection import (
    INF,
    Address,
    Connection,
    ServerAddress,
    client_name,
    refusal_status,
    status_phrase,
)
from djwire.server.protocols.http import Request, ResponseFraming
from djwire.server.protocols.states import WEBSOCKET_APP, WebSocketAppState
from djwire.server.protocols.websocket import (
    Closed,
    HandshakeRejected,
    WebSocketProtocol,
    encode_frame,
)
from djwire.server.state import ServerState, access_logger, logger

_CONNECT: Final[WebSocketConnectEvent] = {"type": "websocket.connect"}
#: The denial-response extension takes no options: one shared (empty) dict.
_DENIAL_EXTENSION: Final[dict[str, Any]] = {}
_OPEN = WebSocketAppState.OPEN
_CONNECTING = WebSocketAppState.CONNECTING
_RESPONDING = WebSocketAppState.RESPONDING
_CLOSED = WebSocketAppState.CLOSED
#: Why reading is paused (bits of ``read_paused``): frames arrived before the app
#: accepted; the app is not reading the messages queued for it.
_PAUSED_EARLY: Final = 1
_PAUSED_FOR_QUEUE: Final = 2


def _subprotocols(request: Request) -> list[str]:
    offered: list[str] = []
    for name, value in request.headers:
        if name == b"sec-websocket-protocol":
            offered += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
    return offered


class WebSocketSession(Connection):
    """asyncio protocol for one WebSocket connection (after the upgrade request)."""

    __slots__ = (
        "accepted",
        "app_state",
        "closed",
        "connect_sent",
        "deadline",
        "framing",
        "held",
        "held_size",
        "last_heard",
        "path",
        "pending",
        "ping_sent",
        "proto",
        "queue",
        "request",
        "response_headers",
        "response_status",
        "scope",
        "task",
        "waiter",
    )

    noun = "WebSocket"

    def __init__(
        self,
        state: ServerState,
        transport: asyncio.Transport,
        request: Request,
        client: Address | None,
        server: ServerAddress | None,
        peer_trusted: bool,
    ) -> None:
        super().__init__(state, transport, client)
        self.request: Request | None = request
        self.proto: WebSocketProtocol = None  # type: ignore[assignment]
        self.app_state = _CONNECTING
        self.closed: Closed | None = None
        self.connect_sent = False
        self.queue: deque[Message] | None = None
        self.waiter: asyncio.Future[Message] | None = None
        self.deadline = INF
        self.last_heard = state.now
        self.ping_sent = 0.0
        self.pending = b""
        self.framing: ResponseFraming | None = None
        self.response_status = 0
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.accepted = False
        self.task: asyncio.Future[None] | None = None
        # Data frames held back by hold_frames() until the loop's next turn.
        self.held: list[bytes] | None = None
        self.held_size = 0
        # The scope goes to the app at start() and is not kept here (routers copy
        # it, and an idle socket should hold one copy); logs need only these.
        scope: WebSocketScope = self.request_scope(request, "websocket", server, peer_trusted)
        scope["subprotocols"] = _subprotocols(request)
        scope["extensions"] = {"websocket.http.response": _DENIAL_EXTENSION, DIRECT_SOCKET: self}
        self.scope: WebSocketScope | None = scope
        self.client = scope["client"]  # as forwarded by a trusted proxy
        self.path = scope["path"]

    def start(self, trailing: bytes) -> None:
        """Validate the handshake and hand the connection to the app."""
        request = self.request
        assert request is not None
        state = self.state
        try:
            self.proto = WebSocketProtocol(request, state.ws_limits)
        except HandshakeRejected as exc:
            logger.info("Rejected WebSocket handshake from %s: %s", self.who(), exc)
            self.app_state = WEBSOCKET_APP.after(self.app_state, "refuse")
            self.transport.write(exc.response)
            self.transport.close()
            return
        state.sessions.add(self)
        self.deadline = state.now + state.config.ws_handshake_timeout
        if trailing:
            self._buffer_early(trailing)
        self.request = None
        # Not in state.tasks: this session (in state.sessions) knows its task;
        # the task joins state.tasks only if it outlives the connection.
        scope, self.scope = self.scope, None
        task = self.task = asyncio.ensure_future(
            state.app(scope, self.receive, self.send), loop=state.loop
        )
        task.add_done_callback(self._app_done)

    # -- asyncio protocol callbacks --------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.state.now
        if not self.accepted:
            if self.app_state is _CONNECTING or self.app_state is _RESPONDING:
                self._buffer_early(data)
            return  # handshake refused: the rest is discarded
        proto = self.proto
        events = proto.receive_data(data)
        if proto.has_output:
            self._flush()
        if events:
            self._deliver(events)

    def eof_received(self) -> bool | None:
        if self.accepted:
            closed = self.proto.receive_eof()
            self._flush()
            self._on_closed(closed)
        else:
            self._on_closed(Closed(1006, ""))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        state.sessions.discard(self)
        task = self.task
        if task is not None and not task.done():
            # The app still runs (handling its disconnect): shutdown must wait for it.
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        if self.closed is None:
            closed = self.proto.closed_event() if self.proto is not None else Closed(1006, "")
            self._on_closed(closed)
        self.release_drain()

    # -- incoming ---------------------------------------------------------------------

    def _buffer_early(self, data: bytes) -> None:
        # Frames sent before our 101 (RFC 6455 4.1 says clients must wait, some
        # don't): kept until accept, with reading paused so they stay bounded.
        self.pending += data
        self.pause_reading(_PAUSED_EARLY)

    def _deliver(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, Closed):
                self._on_closed(event)
                continue
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                self.waiter = None
                waiter.set_result(event)
                continue
            queue = self.queue
            if queue is None:
                queue = self.queue = deque()
            queue.append(event)
            if len(queue) >= self.state.config.ws_max_queue:
                # The app is not keeping up: stop reading so the client (and TCP)
                # slows down instead of us buffering without bound.
                self.pause_reading(_PAUSED_FOR_QUEUE)

    def _on_closed(self, closed: Closed) -> None:
        if self.closed is not None:
            return
        self.closed = closed
        waiter = self.waiter
        if waiter is not None and not waiter.done() and not self.queue:
            self.waiter = None
            waiter.set_result(self._disconnect_message())

    def _disconnect_message(self) -> Message:
        closed = self.closed
        assert closed is not None
        message: WebSocketDisconnectEvent = {
            "type": "websocket.disconnect",
            "code": closed.code,
            "reason": closed.reason,
        }
        return cast(Message, message)

    # -- ASGI receive -------------------------------------------------------------------

    def receive(self) -> asyncio.Future[Message]:
        """ASGI ``receive``: an awaitable, here a plain Future rather than a coroutine.

        Consumers that wait on several sources wrap each ``receive()`` in
        ``ensure_future``; a Future needs no Task around it, which is most of what
        an idle connection would otherwise cost.
        """
        future: asyncio.Future[Message] = self.state.loop.create_future()
        if not self.connect_sent:
            self.connect_sent = True
            future.set_result(cast(Message, _CONNECT))
            return future
        queue = self.queue
        if queue:
            future.set_result(queue.popleft())
            if not queue:
                self.queue = None
            if (
                self.read_paused & _PAUSED_FOR_QUEUE
                and len(queue) <= self.state.config.ws_max_queue // 2
            ):
                self.resume_reading(_PAUSED_FOR_QUEUE)
            return future
        if self.closed is not None:
            future.set_result(self._disconnect_message())
            return future
        self.waiter = future
        return future

    # -- ASGI send ---------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send" and self.app_state is _OPEN:
            if self.closed is not None or not self.proto.is_open:
                raise ClientDisconnected("WebSocket is closed")
            text = message.get("text")
            if text is not None:
                frame = self.proto.encode(text, None)
            else:
                data = message.get("bytes")
                if data is None:
                    raise ValueError("websocket.send needs 'text' or 'bytes'")
                frame = self.proto.encode(None, data)
            held = self.held
            if held is None:
                self.transport.write(frame)
            else:
                held.append(frame)
                self.held_size += len(frame)
                if self.held_size < self.state.config.write_high_water:
                    return
                self.release_frames()
            if self.write_paused:
                await self._drain()
            return
        self._send_control(kind, message)

    def hold_frames(self) -> None:
        """Hold the data frames sent from now on until the event loop's next turn,
        then write them with one system call instead of one each.

        For an application that knows it is sending several messages in a row (a
        consumer working through messages that were already waiting). Held frames
        are bounded by ``write_high_water`` bytes, and released before anything
        else is written to the socket, so the order on the wire is kept.
        """
        if self.held is None and self.app_state is _OPEN and self.closed is None:
            self.held = []
            self.state.loop.call_soon(self.release_frames)

    def release_frames(self) -> None:
        """Write the frames hold_frames() held back (as one write)."""
        held = self.held
        if held is None:
            return
        self.held = None
        self.held_size = 0
        if held and not self.transport.is_closing():
            self.transport.write(b"".join(held) if len(held) > 1 else held[0])

    def _send_control(self, kind: str, message: Message) -> None:
        if self.held is not None:
            self.release_frames()
        state = self.app_state
        if self.closed is not None or state is _CLOSED:
            if kind == "websocket.close":
                return  # closing twice is harmless
            raise ClientDisconnected("WebSocket is closed")
        # Checked first, entered once the message has been acted on: a message
        # the server cannot put on the wire (a bad header...) changes nothing.
        new_state = WEBSOCKET_APP.next(state, kind)
        if kind == "websocket.accept":
            response = self.proto.accept(
                message.get("subprotocol"),
                list(message.get("headers") or ()),
                server=self.state.server_header,
                date=None,
            )
            self.app_state = new_state  # before the early frames are delivered
            self._accepted(response)
        elif kind == "websocket.close":
            if state is _CONNECTING:
                self._refuse(403)
            else:
                self._close(message.get("code") or 1000, message.get("reason") or "")
            self.app_state = new_state
        elif kind == "websocket.http.response.start":
            self.response_status = int(message["status"])
            self.response_headers = list(message.get("headers") or ())
            self.app_state = new_state
        else:
            last = not message.get("more_body", False)
            self._write_denial_body(bytes(message.get("body", b"")), last)
            if last:
                new_state = WEBSOCKET_APP.after(new_state, "end")
            self.app_state = new_state

    def _accepted(self, response: bytes) -> None:
        state = self.state
        self.transport.write(response)
        self.accepted = True
        self.request = None
        self.deadline = INF
        self.last_heard = state.now
        if state.access_log:
            self._log_access(101)
        pending = self.pending
        if pending:
            self.pending = b""
            events = self.proto.receive_data(pending)
            self._flush()
            self._deliver(events)
        if self.closed is None:
            self.resume_reading(_PAUSED_EARLY)

    def _refuse(self, status: int, reason: str = "") -> None:
        """Deny the handshake with a plain HTTP answer and close."""
        if self.state.access_log:
            self._log_access(status)
        body = f"{status_phrase(status)}{': ' if reason else ''}{reason}\n"
        self.transport.write(self.error_answer(status, body.encode()))
        self.transport.close()
        self._on_closed(Closed(1006, ""))

    def _write_denial_body(self, body: bytes, last: bool) -> None:
        framing = self.framing
        if framing is None:
            self.framing, data = self.start_response(
                self.response_status, self.response_headers or [], body, last
            )
            self.response_headers = None
        else:
            data = framing.body(body, last)
        self.transport.write(data)
        if last:
            if self.state.access_log:
                self._log_access(self.response_status)
            self.transport.close()
            self._on_closed(Closed(1006, ""))

    def _close(self, code: int, reason: str) -> None:
        proto = self.proto
        proto.send_close(code, reason)
        self._flush()
        self.deadline = self.state.now + self.state.config.ws_close_timeout

    def _flush(self) -> None:
        if self.held is not None:
            self.release_frames()
        chunks = self.proto.data_to_send()
        if not chunks:
            return
        transport = self.transport
        close = False
        if chunks[-1] == b"":
            # websockets' SEND_EOF: the server ends the TCP connection first
            # (RFC 6455 section 7.1.1).
            chunks.pop()
            close = True
        if chunks:
            transport.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])
        if close:
            transport.close()

    async def _drain(self) -> None:
        await self.wait_for_drain()
        if self.closed is not None:
            raise ClientDisconnected("WebSocket closed while waiting to send")

    # -- DirectSocket (djwire.extensions) ---------------------------------------------------

    @property
    def frame_encoder(self) -> FrameEncoder:
        if self.proto.compressed:
            return self.proto.encode
        return encode_frame

    def write_frame(self, frame: bytes) -> bool:
        """Write a pre-encoded data frame; False unless accepted and not closing."""
        if self.app_state is not _OPEN or self.closed is not None or not self.proto.is_open:
            return False
        if self.held is not None:
            self.release_frames()
        transport = self.transport
        if transport.get_write_buffer_size() + len(frame) > self.state.config.write_buffer_limit:
            # This client reads slower than the group talks. It cannot wait
            # (fan-out never blocks), and buffering more would be unbounded.
            self.close_slow_reader()
            return False
        transport.write(frame)
        if self.write_paused:
            self.start_write_clock()  # as a send() that waits would
        return True

    # -- running the app ---------------------------------------------------------------

    def _app_done(self, task: asyncio.Future[None]) -> None:
        """The app's task ended: report how, and close what it left open.

        The app's coroutine *is* the task (no wrapper coroutine whose frame would
        live as long as the connection); this callback does a wrapper's work.
        """
        if task.cancelled():
            self._after_app(503, 1012)
            return
        error = task.exception()
        if error is None:
            self._after_app(403, 1000)
        elif isinstance(error, ClientDisconnected):
            self._after_app(500, 1011)
        elif (status := refusal_status(error)) is not None:
            # A refusal (no route...): one line, and a handshake gets 403 as any
            # denied WebSocket does (ASGI spec, websocket.close before accept).
            logger.warning("%s: WebSocket %s (%s)", status_phrase(status), self.path, error)
            self._after_app(403, 1011)
        else:
            logger.error(
                "Exception in ASGI application for WebSocket %s",
                self.path,
                exc_info=error,
            )
            self._after_app(500, 1011)

    def _after_app(self, status: int, code: int) -> None:
        """The app is done: whatever it left open is closed."""
        state = self.app_state
        if self.closed is not None and state is not _OPEN:
            return
        if state is _CONNECTING:
            self.app_state = WEBSOCKET_APP.after(state, "refuse")
            self._refuse(status)
        elif state is _RESPONDING:
            self.app_state = WEBSOCKET_APP.after(state, "end")
            self.abort()
        elif state is _OPEN:
            self.app_state = WEBSOCKET_APP.after(state, "close")
            if self.closed is None and self.proto.is_open:
                self._close(code, "")

    # -- session interface (registry) ---------------------------------------------------

    def check_timeouts(self, now: float) -> None:
        if self.stalled_writer(now):
            return
        if now >= self.deadline:
            if self.app_state is _CONNECTING:
                logger.warning(
                    "WebSocket %s: app did not accept within %ss",
                    self.path,
                    self.state.config.ws_handshake_timeout,
                )
                self.app_state = WEBSOCKET_APP.after(self.app_state, "refuse")
                self._refuse(503, "handshake timed out")
            else:
                self.abort()  # closing handshake never completed
            return
        config = self.state.config
        if self.app_state is not _OPEN or not self.proto.is_open:
            return
        release = config.ws_parser_idle_release
        if release is not None and now - self.last_heard >= release:
            self.proto.release_if_idle()
        interval = config.ws_ping_interval
        if interval is None:
            return
        if self.ping_sent:
            if self.last_heard >= self.ping_sent:
                self.ping_sent = 0.0
            elif now - self.ping_sent >= config.ws_ping_timeout:
                logger.info("Closing WebSocket from %s: keepalive ping timeout", self.who())
                self.proto.fail(1011, "keepalive ping timeout")
                self._flush()
                self._on_closed(Closed(1011, "keepalive ping timeout"))
                self.deadline = now + config.ws_close_timeout
                return
        if not self.ping_sent and now - self.last_heard >= interval:
            self.proto.send_ping(b"")
            self._flush()
            self.ping_sent = now

    def shutdown(self) -> None:
        if self.app_state is _CONNECTING:
            self.app_state = WEBSOCKET_APP.after(self.app_state, "refuse")
            self._refuse(503, "server shutting down")
        elif self.proto is not None and self.proto.is_open:
            self._close(1001, "going away")
            self._on_closed(Closed(1001, "going away"))

    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def app_task(self) -> asyncio.Future[Any] | None:
        return self.task

    # -- helpers ------------------------------------------------------------------------

    def _log_access(self, status: int) -> None:
        access_logger.info(
            '%s - "WebSocket %s" %d',
            client_name(self.client, "-"),
            self.path,
            status,
        )
