"""What an HTTP and a WebSocket connection share: one base class for both sessions.

* the ASGI scope of a request (proxy headers, ``root_path``, lifespan state);
* write backpressure: the transport calls ``pause_writing()`` above the high-water
  mark and ``resume_writing()`` below the low-water mark; a sender waits in
  :meth:`Connection.wait_for_drain`, and a client that does not catch up within
  ``send_timeout`` is closed by the server's clock (:meth:`Connection.stalled_writer`);
* read pausing, as a set of reasons (bits): the socket is read again only once
  every reason to pause is gone;
* the framing of a response head, with the server's ``date`` and ``server`` headers;
* how log lines name the client.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any, ClassVar, Final, Literal

from djwire.server.asgi_types import HTTP_ASGI, Headers
from djwire.server.protocols.http import Request, ResponseFraming, simple_response
from djwire.server.protocols.proxy import apply_proxy_headers
from djwire.server.state import ServerState, logger

INF: Final = float("inf")
#: Every read-pause reason at once.
ALL_REASONS: Final = -1

Address = tuple[str, int]
ServerAddress = tuple[str, int | None]

#: Hosts and server addresses seen, shared between connections (bounded): an idle
#: WebSocket keeps its scope's "client" and "server" for its whole life.
_SHARED: dict[Any, Any] = {}
_SHARED_LIMIT: Final = 4096


def _shared(value: Any) -> Any:
    known = _SHARED.get(value)
    if known is not None:
        return known
    if len(_SHARED) < _SHARED_LIMIT:
        _SHARED[value] = value
    return value


def client_name(client: Address | None, unknown: str = "unix socket") -> str:
    """``127.0.0.1:45910`` as log lines name a client; ``unknown`` without an address."""
    return f"{client[0]}:{client[1]}" if client else unknown


def refusal_status(error: BaseException) -> int | None:
    """The 4xx status an exception from the application asks for, if it asks for one.

    The neutral protocol by which an application tells the server "refuse this"
    without the server knowing its classes: an exception with an integer
    ``http_status`` attribute from 400 to 499 (djwire's router raises
    :class:`~djwire.exceptions.RouteNotFound`, whose ``http_status`` is 404). It is
    logged as one warning line, not as a crash with its traceback.
    """
    status = getattr(error, "http_status", None)
    if type(status) is int and 400 <= status <= 499:
        return status
    return None


def status_phrase(status: int) -> str:
    """``Not Found`` for 404; ``Error`` for a status without a standard phrase."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def peer_addresses(
    transport: asyncio.BaseTransport,
) -> tuple[Address | None, ServerAddress | None]:
    """ASGI ``client`` and ``server`` for a socket (UDS: no client, server=(path, None))."""
    peer = transport.get_extra_info("peername")
    sock = transport.get_extra_info("sockname")
    client = (_shared(str(peer[0])), int(peer[1])) if isinstance(peer, tuple | list) else None
    if isinstance(sock, tuple | list):
        server: ServerAddress | None = _shared((str(sock[0]), int(sock[1])))
    elif sock:
        server = _shared((str(sock), None))
    else:
        server = None
    return client, server


class Connection(asyncio.Protocol):
    """An asyncio protocol for one client connection of this server."""

    __slots__ = (
        "client",
        "drain_waiter",
        "read_paused",
        "state",
        "transport",
        "write_deadline",
        "write_paused",
    )

    #: How log lines call this kind of connection.
    noun: ClassVar[str]

    def __init__(
        self,
        state: ServerState,
        transport: asyncio.Transport | None = None,
        client: Address | None = None,
    ) -> None:
        self.state = state
        #: Set by ``connection_made`` when the session is created before its socket.
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        #: The client as logs name it.
        self.client = client
        #: Reasons (bits) for which reading from the socket is paused; 0: reading.
        self.read_paused = 0
        self.write_paused = False
        #: When a client that stopped reading is closed (``send_timeout``).
        self.write_deadline = INF
        self.drain_waiter: asyncio.Future[None] | None = None

    def who(self) -> str:
        """The client as log lines name it."""
        return client_name(self.client)

    def abort(self) -> None:
        """Close now: drop the socket."""
        self.transport.abort()

    # -- the request's ASGI scope --------------------------------------------------------

    def request_scope(
        self,
        request: Request,
        kind: Literal["http", "websocket"],
        server: ServerAddress | None,
        peer_trusted: bool,
    ) -> Any:
        """The scope keys an HTTP request and a WebSocket handshake have in common.

        ``peer_trusted``: the TCP peer is a trusted proxy, whose forwarded headers
        are believed. Typed ``Any``: each session completes it as its own TypedDict.
        """
        state = self.state
        client = self.client
        scheme = "http" if kind == "http" else "ws"
        if peer_trusted:
            assert state.trusted_proxies is not None
            client, scheme = apply_proxy_headers(
                request.headers, client, scheme, state.trusted_proxies, peer_trusted=True
            )
        root_path = state.config.root_path
        path = request.path
        raw_path = request.raw_path
        if root_path:
            # Like uvicorn and Starlette: "path" includes the root path, which
            # Django strips again when building path_info.
            path = root_path + path
            raw_path = root_path.encode() + raw_path
        scope: dict[str, Any] = {
            "type": kind,
            "asgi": HTTP_ASGI,
            "http_version": request.http_version,
            "server": server,
            "client": client,
            "scheme": scheme,
            "root_path": root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": request.query_string,
            "headers": request.headers,
        }
        if state.lifespan_state is not None:
            scope["state"] = state.lifespan_state.copy()
        return scope

    # -- answers -------------------------------------------------------------------------

    def start_response(
        self,
        status: int,
        headers: Headers,
        first_chunk: bytes,
        last: bool,
        *,
        head_request: bool = False,
        keep_alive: bool = False,
        http11: bool = True,
    ) -> tuple[ResponseFraming, bytes]:
        """A response's framing, and its head with the first body chunk, as bytes.

        The head waits for the first chunk so that a response sent in one piece
        gets a Content-Length and goes out in one write.
        """
        framing = ResponseFraming(head_request=head_request, keep_alive=keep_alive, http11=http11)
        state = self.state
        data = framing.head(
            status, headers, first_chunk, last, date=state.date, server=state.server_header
        )
        return framing, data

    def error_answer(self, status: int, body: bytes, extra: Headers | None = None) -> bytes:
        """A complete plain-text answer that closes the connection."""
        return simple_response(status, body, date=self.state.date, extra=extra)

    # -- reading -------------------------------------------------------------------------

    def pause_reading(self, reason: int) -> None:
        if not self.read_paused:
            self.transport.pause_reading()
        self.read_paused |= reason

    def resume_reading(self, reason: int) -> None:
        """Drop ``reason`` (bits; ALL_REASONS for every one); read again if none is left."""
        paused = self.read_paused
        if paused & reason:
            self.read_paused = paused & ~reason
            if not self.read_paused and not self.transport.is_closing():
                self.transport.resume_reading()

    # -- writing (asyncio flow control callbacks) -------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        # The client caught up: whoever started the slow-reader clock (a send()
        # or a direct frame write), it stops now.
        self.write_deadline = INF
        self.release_drain()

    def release_drain(self) -> None:
        """Wake a sender waiting for the buffer to drain (caught up or gone)."""
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def start_write_clock(self) -> None:
        """The client is behind: it has ``send_timeout`` from now (or less) to catch up."""
        state = self.state
        self.write_deadline = min(self.write_deadline, state.now + state.config.send_timeout)

    def drain_future(self) -> asyncio.Future[None]:
        """Done when the write buffer has drained (or the connection has ended)."""
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.state.loop.create_future()
            self.start_write_clock()
        return waiter

    async def wait_for_drain(self) -> None:
        # Shielded: a cancelled sender must not cancel the waiter others share.
        await asyncio.shield(self.drain_future())

    def stalled_writer(self, now: float) -> bool:
        """Close the connection if its client stopped reading too long ago; True if so."""
        if now < self.write_deadline:
            return False
        self.close_slow_reader()
        return True

    def close_slow_reader(self) -> None:
        logger.info("Closing %s from %s: client stopped reading", self.noun, self.who())
        self.abort()
