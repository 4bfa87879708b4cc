"""One HTTP/1.1 connection on asyncio: glue between the socket, the sans-I/O parser
and the ASGI app (ASGI HTTP spec 2.4).

Requests on a connection are answered in order (RFC 9112 section 9.3.2): a request
that arrives while another is answered waits in ``pipeline``. A WebSocket upgrade
hands the socket over to :class:`~djwire.server.websocket_session.WebSocketSession`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Final, cast

from djwire.server.asgi_types import (
    HTTPDisconnectEvent,
    HTTPRequestEvent,
    HTTPScope,
    Message,
)
from djwire.server.connection import (
    ALL_REASONS,
    INF,
    Connection,
    ServerAddress,
    client_name,
    peer_addresses,
    refusal_status,
    status_phrase,
)
from djwire.server.protocols.http import (
    CONTINUE_RESPONSE,
    Body,
    EndOfMessage,
    HttpRequestReader,
    InvalidResponse,
    Rejected,
    Request,
    ResponseFraming,
    WebSocketRequest,
)
from djwire.server.protocols.states import HTTP_APP, HTTP_PHASES, HttpAppState, HttpPhase
from djwire.server.state import ServerState, access_logger, logger

#: Why reading is paused (bits of ``read_paused``): the app has not read the body
#: buffered so far; too many pipelined requests wait.
_PAUSED_FOR_BODY: Final = 1
_PAUSED_FOR_PIPELINE: Final = 2
_DISCONNECT: Final[HTTPDisconnectEvent] = {"type": "http.disconnect"}
_REQUEST_TIMEOUT: Final = b"Request Timeout\n"
#: Typed as any phase, so checks after calls that may close the session type-check.
_CLOSED: HttpPhase = HttpPhase.CLOSED
_TEXT_PLAIN: Final = [(b"content-type", b"text/plain; charset=utf-8")]


class HttpSession(Connection):
    """asyncio protocol for one HTTP connection."""

    noun = "connection"

    def __init__(self, state: ServerState) -> None:
        super().__init__(state)
        self.server: ServerAddress | None = None
        #: The TCP peer is a trusted proxy: its forwarded headers are believed.
        self.peer_trusted = False
        self.reader = HttpRequestReader(state.http_limits)
        self.phase = HttpPhase.IDLE
        self.deadline = INF
        self.cycle: RequestCycle | None = None
        self.receiving: RequestCycle | None = None
        self.pipeline: deque[RequestCycle | WebSocketRequest | Rejected] = deque()
        self.over_capacity = False
        self.client_eof = False

    # -- asyncio protocol callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        state = self.state
        config = state.config
        self.transport = transport
        transport.set_write_buffer_limits(config.write_high_water, config.write_low_water)
        self.client, self.server = peer_addresses(transport)
        trusted = state.trusted_proxies
        self.peer_trusted = trusted is not None and (
            (self.client[0] if self.client else None) in trusted
        )
        # Over the limit, the client still gets an answer (503) once its request
        # head is in, rather than a reset it could mistake for a network fault.
        self.over_capacity = state.at_capacity() or state.shutting_down
        state.sessions.add(self)
        self.deadline = state.now + config.keep_alive_timeout

    def data_received(self, data: bytes) -> None:
        if self.phase is HttpPhase.CLOSED:
            return  # lingering close: the answer is out, the rest is discarded
        events = self.reader.feed(data)
        if self.phase is HttpPhase.IDLE and self.reader.in_head:
            self._move("bytes")
            self.deadline = self.state.now + self.state.config.request_head_timeout
        receiving = self.receiving
        if receiving is not None and receiving.waiter is not None:
            self.deadline = self.state.now + self.state.config.body_read_timeout
        for event in events:
            if self.phase is _CLOSED:
                break  # answered and closing (limit, overload) or upgraded: no more
            if isinstance(event, Request):
                self._on_request(event)
            elif isinstance(event, Body):
                if self.receiving is not None:
                    self.receiving.on_body(event.data)
            elif isinstance(event, EndOfMessage):
                if self.receiving is not None:
                    self.receiving.on_end()
                    self.receiving = None
            elif isinstance(event, Rejected):
                self._on_rejected(event)
            else:
                self._on_websocket(event)

    def eof_received(self) -> bool | None:
        self.client_eof = True
        cycle = self.cycle
        if cycle is None:
            return None  # close
        # The client has nothing more to say. Requests it already sent are still
        # answered (a half-closed client reads on), but an app waiting in
        # receive() for the end of the exchange learns it is over.
        for item in (cycle, *self.pipeline):
            if isinstance(item, RequestCycle):
                item.on_client_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._move("close")
        self.state.sessions.discard(self)
        self.reader.close()
        cycles = [self.cycle, *self.pipeline]
        self.pipeline.clear()
        for cycle in cycles:
            if isinstance(cycle, RequestCycle):
                cycle.on_disconnect()
        self.cycle = self.receiving = None
        self.release_drain()

    # -- session interface (registry) --------------------------------------------------

    def check_timeouts(self, now: float) -> None:
        if self.stalled_writer(now) or now < self.deadline:
            return
        phase = self.phase
        if phase is HttpPhase.IDLE:
            self._close()  # keep-alive (or fresh connection) idle too long
        elif phase is HttpPhase.HEAD:
            logger.info("Closing connection from %s: request head timed out", self.who())
            self.linger_close(self.error_answer(408, _REQUEST_TIMEOUT))
        elif phase is HttpPhase.BUSY:
            logger.info("Closing connection from %s: request body timed out", self.who())
            cycle = self.cycle
            if cycle is not None and cycle.framing is None:
                cycle.on_disconnect()
                self.linger_close(self.error_answer(408, _REQUEST_TIMEOUT))
            else:
                self.abort()
        else:
            self.abort()  # lingering close over

    def shutdown(self) -> None:
        if self.phase is HttpPhase.CLOSED:
            self.transport.close()  # stop lingering
        elif self.phase in (HttpPhase.IDLE, HttpPhase.HEAD):
            self._close()
        # BUSY: the answer in progress completes, then the connection closes
        # because response_done() sees state.shutting_down.

    def abort(self) -> None:
        self._move("close")
        self.transport.abort()

    def busy(self) -> bool:
        return self.cycle is not None

    def app_task(self) -> asyncio.Future[Any] | None:
        return None  # request tasks are in state.tasks

    # -- requests ----------------------------------------------------------------

    def _move(self, event: str) -> None:
        self.phase = HTTP_PHASES.after(self.phase, event)

    def _on_request(self, request: Request) -> None:
        if self.over_capacity:
            self._reject_busy()
            return
        cycle = RequestCycle(self, request)
        self.receiving = cycle if request.has_body else None
        if self.cycle is None:
            self._move("request")
            self.deadline = INF
            self._start(cycle)
        else:
            self._queue(cycle)

    def _queue(self, item: RequestCycle | WebSocketRequest | Rejected) -> None:
        self._move("request")
        self.pipeline.append(item)
        if len(self.pipeline) >= self.state.config.max_pipelined_requests:
            self.pause_reading(_PAUSED_FOR_PIPELINE)

    def _on_rejected(self, event: Rejected) -> None:
        cycle = self.cycle
        if cycle is not None and self.receiving is not cycle:
            self._queue(event)  # answer it after the requests before it
            return
        logger.info("Rejected request from %s: %d %s", self.who(), event.status, event.reason)
        if cycle is not None:
            # The request being answered broke a limit mid-body (413).
            cycle.on_disconnect()
            if cycle.framing is not None:
                self.abort()
                return
        self.linger_close(self.error_answer(event.status, event.reason.encode() + b"\n"))

    def _on_websocket(self, event: WebSocketRequest) -> None:
        if self.over_capacity:
            self._reject_busy()
        elif self.cycle is None:
            self._upgrade(event)
        else:
            self._queue(event)

    def _reject_busy(self) -> None:
        self.linger_close(
            self.error_answer(
                503, b"Service Unavailable: too many connections\n", [(b"retry-after", b"1")]
            )
        )

    def _upgrade(self, event: WebSocketRequest) -> None:
        from djwire.server.websocket_session import WebSocketSession

        self.resume_reading(ALL_REASONS)
        self._move("upgrade")
        self.state.sessions.discard(self)
        self.reader.close()
        session = WebSocketSession(
            self.state, self.transport, event.request, self.client, self.server, self.peer_trusted
        )
        self.transport.set_protocol(session)
        session.start(event.trailing)

    def _start(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        state = self.state
        task = state.loop.create_task(cycle.run_asgi(state.app))
        tasks = state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_done(self, cycle: RequestCycle) -> None:
        """The last byte of ``cycle``'s answer is written: next request, or close."""
        state = self.state
        if state.access_log:
            cycle.log_access()
        if (
            not cycle.keep_alive()
            or cycle.more_body
            or (self.client_eof and not self.pipeline)
            or state.shutting_down
            or self.phase is HttpPhase.CLOSED
        ):
            self._close()
            return
        self.cycle = None
        pipeline = self.pipeline
        if pipeline:
            self._move("done-pipelined")
            item = pipeline.popleft()
            if self.read_paused & _PAUSED_FOR_PIPELINE and len(pipeline) < (
                state.config.max_pipelined_requests
            ):
                self.resume_reading(_PAUSED_FOR_PIPELINE)
            if isinstance(item, RequestCycle):
                self._start(item)
            elif isinstance(item, WebSocketRequest):
                self._upgrade(item)
            else:
                self._on_rejected(item)
        elif self.reader.in_head:
            self._move("done-partial")
            self.deadline = state.now + state.config.request_head_timeout
        else:
            self._move("done-idle")
            self.deadline = state.now + state.config.keep_alive_timeout

    # -- flow control & closing -----------------------------------------------------

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written (backpressure)."""
        if not self.write_paused or self.phase is HttpPhase.CLOSED:
            return
        await self.wait_for_drain()

    def _close(self) -> None:
        if self.phase is not HttpPhase.CLOSED:
            self._move("close")
            self.transport.close()

    def linger_close(self, response: bytes) -> None:
        """Send a final answer, stop writing, and drop what the client still sends.

        Closing at once while unread request bytes sit in the kernel would reset
        the connection and might destroy the answer before the client reads it.
        """
        transport = self.transport
        self._move("close")
        self.deadline = self.state.now + self.state.config.close_linger_timeout
        self.write_deadline = INF
        self.resume_reading(ALL_REASONS)
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        else:  # pragma: no cover - TCP and Unix transports can
            transport.close()


class RequestCycle:
    """One request and its answer: the ``receive`` and ``send`` the app gets."""

    __slots__ = (
        "app_state",
        "body",
        "body_size",
        "client_eof",
        "disconnected",
        "expect_continue",
        "final_sent",
        "framing",
        "headers",
        "more_body",
        "request",
        "response_size",
        "scope",
        "session",
        "status",
        "waiter",
    )

    def __init__(self, session: HttpSession, request: Request) -> None:
        self.session = session
        self.request = request
        scope: HTTPScope = session.request_scope(
            request, "http", session.server, session.peer_trusted
        )
        scope["method"] = request.method
        scope["extensions"] = {}
        self.scope = scope
        self.body: list[bytes] = []
        self.body_size = 0
        #: More request body is still to come from the client.
        self.more_body = request.has_body
        #: The app has been handed the last chunk of the request body.
        self.final_sent = False
        #: The client is gone, or the server answered in the app's stead (408,
        #: 413): the app's messages are still checked but no longer written.
        self.disconnected = False
        self.client_eof = False
        self.expect_continue = request.expect_continue and request.has_body
        self.waiter: asyncio.Future[None] | None = None
        self.app_state = HttpAppState.START
        self.framing: ResponseFraming | None = None
        self.status = 0
        self.headers: Any = ()
        self.response_size = 0

    # -- from the connection -------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        self.body.append(data)
        self.body_size += len(data)
        if self.body_size > self.session.state.config.read_high_water:
            self.session.pause_reading(_PAUSED_FOR_BODY)
        self._wake()

    def on_end(self) -> None:
        self.more_body = False
        self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def on_client_eof(self) -> None:
        self.client_eof = True
        if self.more_body:
            self.disconnected = True  # the body will never be complete
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- ASGI receive --------------------------------------------------------------------

    async def receive(self) -> Message:
        session = self.session
        while True:
            if self.disconnected:
                return cast(Message, _DISCONNECT)
            if self.body or (not self.more_body and not self.final_sent):
                return self._take_body()
            if self.app_state is HttpAppState.DONE or self.client_eof:
                return cast(Message, _DISCONNECT)  # answered, or the client stopped talking
            if self.expect_continue:
                # RFC 9110 section 10.1.1: the client waits for this to send.
                self.expect_continue = False
                if self.framing is None:
                    session.transport.write(CONTINUE_RESPONSE)
            waiter = self.waiter = session.state.loop.create_future()
            body_wait = self.more_body and session.cycle is self
            if body_wait:
                session.deadline = session.state.now + session.state.config.body_read_timeout
            try:
                await waiter
            finally:
                if body_wait and session.cycle is self and session.phase is HttpPhase.BUSY:
                    session.deadline = INF

    def _take_body(self) -> Message:
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.body_size = 0
        session = self.session
        if session.read_paused & _PAUSED_FOR_BODY:
            session.resume_reading(_PAUSED_FOR_BODY)
        more = self.more_body
        if not more:
            self.final_sent = True
        message: HTTPRequestEvent = {"type": "http.request", "body": data, "more_body": more}
        return cast(Message, message)

    # -- ASGI send -------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.app_state
        if state is HttpAppState.BODY and kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not isinstance(body, bytes):
                if not isinstance(body, bytearray | memoryview):
                    raise TypeError(f"http.response.body 'body' must be bytes, got {body!r}")
                body = bytes(body)
            if not more:
                self.app_state = HTTP_APP.after(state, "end")
            if self.disconnected:
                return
            session = self.session
            framing = self.framing
            if framing is None:
                request = self.request
                self.framing, data = session.start_response(
                    self.status,
                    self.headers,
                    body,
                    not more,
                    head_request=request.method == "HEAD",
                    # While shutting down, say so: the client must not reuse us.
                    keep_alive=request.keep_alive and not session.state.shutting_down,
                    http11=request.http_version == "1.1",
                )
            else:
                data = framing.body(body, not more)
            self.response_size += len(body)
            if data:
                session.transport.write(data)
            if not more:
                self._wake()  # a receive() waiting for disconnect gets it now
                session.response_done(self)
            elif session.write_paused:
                await session.drain()
            return
        self.app_state = HTTP_APP.next(state, kind)
        if kind == "http.response.start":
            status = message["status"]
            if not isinstance(status, int):
                raise InvalidResponse(f"HTTP status must be an int, got {status!r}")
            self.status = status
            self.headers = message.get("headers", ())

    # -- running the app -------------------------------------------------------------

    async def run_asgi(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._fail(None)
            raise
        except Exception as exc:
            status = refusal_status(exc)
            if status is None:
                logger.exception(
                    "Exception in ASGI application for %s %s",
                    self.request.method,
                    self.scope["path"],
                )
                status = 500
            else:
                logger.warning(
                    "%s: %s %s (%s)",
                    status_phrase(status),
                    self.request.method,
                    self.scope["path"],
                    exc,
                )
            self._fail(status)
        else:
            if self.disconnected:
                return  # the client left (or got our 408/413): nothing is owed
            if self.app_state is HttpAppState.START:
                logger.error(
                    "ASGI application returned without starting a response to %s %s",
                    self.request.method,
                    self.scope["path"],
                )
                self._fail(500)
            elif self.app_state is not HttpAppState.DONE:
                logger.error(
                    "ASGI application returned without finishing its response to %s %s",
                    self.request.method,
                    self.scope["path"],
                )
                self._fail(None)

    def _fail(self, status: int | None) -> None:
        """After an app error: an error page if nothing was written, else close."""
        if self.app_state is HttpAppState.DONE or self.disconnected:
            return
        self.app_state = HTTP_APP.after(self.app_state, "error")
        session = self.session
        if status is not None and self.framing is None:
            # Nothing is on the wire yet (the head waits for the first body
            # chunk), so the client can still get a proper error answer.
            self.status = status
            body = f"{status_phrase(status)}\n".encode()
            request = self.request
            self.framing, data = session.start_response(
                status,
                _TEXT_PLAIN,
                body,
                True,
                head_request=request.method == "HEAD",
                http11=request.http_version == "1.1",
            )
            session.transport.write(data)
            self._wake()
            session.response_done(self)
            return
        self._wake()
        if session.cycle is self:
            # A half-sent answer cannot be repaired: the client must see the
            # connection end (an incomplete chunked body or short length).
            session.abort()

    def keep_alive(self) -> bool:
        framing = self.framing
        return framing is not None and framing.keep_alive and not framing.close_delimited

    def log_access(self) -> None:
        if not access_logger.isEnabledFor(logging.INFO):
            return
        request = self.request
        target = self.scope["path"]
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d %d',
            client_name(self.scope["client"], "-"),
            request.method,
            target,
            request.http_version,
            self.status,
            self.response_size,
        )
