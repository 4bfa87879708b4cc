"""WebSocket (RFC 6455, RFC 7692) without I/O, on the sans-I/O protocol of ``websockets``.

``websockets.server.ServerProtocol`` parses and checks frames, answers pings and runs
the closing handshake and permessage-deflate. This module adds what an ASGI server
needs on top: the handshake driven by the app's accept/deny, frames assembled into
whole messages with UTF-8 checked fragment by fragment (so invalid text fails fast,
RFC 6455 section 8.1), and ASGI ``websocket.receive``/``disconnect`` events.

The request head arrives already parsed by the HTTP layer, so the websockets
protocol object starts in the OPEN state and only ever parses frames; its
``process_request()`` validates the upgrade and negotiates extensions.
"""

from __future__ import annotations

import codecs
import functools
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from websockets.datastructures import Headers as WsHeaders
from websockets.exceptions import InvalidHandshake, InvalidUpgrade
from websockets.extensions import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import BINARY, CLOSE, CONT, TEXT, Close, CloseCode, Frame
from websockets.http11 import Request as WsRequest
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol

from djwire.server.asgi_types import Headers
from djwire.server.protocols.http import (
    InvalidResponse,
    Request,
    check_header,
    simple_response,
)

#: Members of websockets' ``ServerProtocol`` this module uses that are not its
#: documented API, with what for. tests/server/test_private_apis.py checks each one
#: against the installed websockets and fails naming it when a release changes it.
WEBSOCKETS_INTERNALS: Final = {
    "current_size": "idle release; a close frame inside a fragmented message",
    "expect_continuation_frame": "idle release: no fragmented message being sent",
    "reader": "idle release: nothing buffered (reader.buffer)",
    "writes": "idle release, has_output: nothing waiting to be written",
    "events": "idle release: no frame waiting to be taken",
    "parser": "idle release: the parser generator waits between frames (at_eof)",
    "eof_sent": "the connection is over once the server ended the stream",
    "close_rcvd": "the close code and reason for websocket.disconnect",
    "close_sent": "the close code and reason for websocket.disconnect",
    "extensions": "the negotiated extensions, kept while the parser is released",
    "process_request": "handshake validation and negotiation, without the response",
    "recv_frame": "overridden: a close frame inside a fragmented message",
}

# websockets logs "connection open/closed" at INFO for every socket; the server has
# its own access log, so its protocol objects log to a quiet child logger.
_PROTOCOL_LOGGER = logging.getLogger("djwire.server.websocket.protocol")


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    max_message_size: int | None = 1024 * 1024
    max_frame_size: int | None = None
    per_message_deflate: bool = True
    deflate_context_takeover: bool = False


@dataclass(slots=True)
class Closed:
    """The connection is over: the close code and reason the app should see."""

    code: int
    reason: str


def encode_frame(text: str | None, data: bytes | None) -> bytes:
    """One unmasked, uncompressed, final data frame (RFC 6455 section 5.2).

    Server frames are never masked, so this is the same for every connection that
    did not negotiate compression: it is the shared encoder that lets a group
    message be encoded once and written to many sockets.
    """
    if text is not None:
        payload = text.encode()
        head = 0x81  # FIN + text
    else:
        payload = data if data is not None else b""
        head = 0x82  # FIN + binary
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", head, length) + payload
    if length < 65536:
        return struct.pack("!BBH", head, 126, length) + payload
    return struct.pack("!BBQ", head, 127, length) + payload


@functools.cache
def _extension_factories(limits: WebSocketLimits) -> Sequence[ServerExtensionFactory] | None:
    """Negotiation settings, built once per limits and shared by every connection."""
    if not limits.per_message_deflate:
        return None
    takeover = limits.deflate_context_takeover
    return (
        ServerPerMessageDeflateFactory(
            # Without context takeover zlib state lives only while a message is
            # being (de)compressed, so an idle socket holds none (RFC 7692 7.1.1).
            server_no_context_takeover=not takeover,
            client_no_context_takeover=not takeover,
            server_max_window_bits=12 if takeover else None,
            compress_settings={"memLevel": 5},
        ),
    )


class _ServerProtocol(ServerProtocol):
    """websockets' server protocol, accepting a close frame inside a fragmented message.

    RFC 6455 section 5.4 lets control frames arrive between the fragments of a
    message, and 5.5.1 says a close frame is answered with a close; the partial
    message is simply abandoned. websockets fails such a connection with 1002
    instead (Autobahn case 7.1.5).
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is CLOSE:
            self.current_size = None
        super().recv_frame(frame)


def _waiting_for_a_frame(parser: Any) -> bool:
    """True when websockets' parser generator waits for the first byte of a frame.

    Between frames ``Protocol.parse()`` sits in ``StreamReader.at_eof()``; inside a
    frame it sits in ``read_exact()``.
    """
    generator = parser
    for _ in range(8):
        inner = getattr(generator, "gi_yieldfrom", None)
        if inner is None:
            break
        generator = inner
    code = getattr(generator, "gi_code", None)
    return getattr(code, "co_name", None) == "at_eof"


class HandshakeRejected(Exception):
    """The upgrade request is not a valid WebSocket handshake."""

    def __init__(self, response: bytes, reason: str) -> None:
        super().__init__(reason)
        self.response = response


class WebSocketProtocol:
    """One server-side WebSocket connection, from handshake to close."""

    __slots__ = (
        "_accept_key",
        "_decoder",
        "_extensions",
        "_extensions_header",
        "_fragment_is_text",
        "_fragments",
        "_limits",
        "_reported",
        "_ws",
        "compressed",
    )

    def __init__(self, request: Request, limits: WebSocketLimits) -> None:
        """Validate the upgrade ``request``; raise :class:`HandshakeRejected` if bad."""
        self._limits = limits
        self._ws: _ServerProtocol | None = self._new_protocol()
        self._extensions: list[Extension] = []
        self._fragments: list[Any] | None = None
        self._fragment_is_text = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._reported = False
        try:
            headers = WsHeaders(
                [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in request.headers
                ]
            )
            target = request.raw_path.decode("latin-1")
            if request.query_string:
                target += "?" + request.query_string.decode("latin-1")
            protocol = f"HTTP/{request.http_version}"
            accept_key, extensions_header, _ = self.ws.process_request(
                WsRequest(target, headers, request.method, protocol)
            )
            self._extensions = self.ws.extensions
        except InvalidHandshake as exc:
            status = 426 if isinstance(exc, InvalidUpgrade) else 400
            if request.method != "GET":
                status = 405
            reason = f"Failed to open a WebSocket connection: {exc}.\n"
            extra = [(b"upgrade", b"websocket")] if status == 426 else None
            raise HandshakeRejected(
                simple_response(status, reason.encode(), extra=extra), reason
            ) from exc
        self._accept_key = accept_key.encode("ascii")
        self._extensions_header = (
            extensions_header.encode("latin-1") if extensions_header else None
        )
        self.compressed = bool(self._extensions)

    # -- the websockets protocol object, dropped while idle ------------------------

    def _new_protocol(self) -> _ServerProtocol:
        limits = self._limits
        return _ServerProtocol(
            state=OPEN,
            max_size=(limits.max_message_size, limits.max_frame_size),
            extensions=_extension_factories(limits),
            logger=_PROTOCOL_LOGGER,
        )

    @property
    def ws(self) -> _ServerProtocol:
        """websockets' protocol object, rebuilt if it was released while idle."""
        ws = self._ws
        if ws is None:
            ws = self._ws = self._new_protocol()
            ws.extensions = self._extensions
        return ws

    def release_if_idle(self) -> bool:
        """Drop the frame parser if nothing is in flight; True if none is held now.

        A silent connection otherwise keeps websockets' protocol object and its
        parser generators (~1.5 KiB) just to wait for the next frame header. Safe
        only at a frame boundary: open, no partial frame or fragmented message,
        nothing buffered either way. Anything else (or a websockets version whose
        parser cannot be inspected) keeps the object.
        """
        ws = self._ws
        if ws is None:
            return True
        if (
            ws.state is not OPEN
            or ws.current_size is not None
            or ws.expect_continuation_frame
            or ws.reader.buffer
            or ws.writes
            or ws.events
            or self._fragments is not None
            or not _waiting_for_a_frame(ws.parser)
        ):
            return False
        self._ws = None
        # Its parser generator refers back to it: close it now so the pair is
        # freed at once rather than by the cycle collector.
        ws.parser.close()
        return True

    # -- handshake ------------------------------------------------------------

    def accept(
        self,
        subprotocol: str | None,
        headers: Headers,
        *,
        server: bytes | None = None,
        date: bytes | None = None,
    ) -> bytes:
        """The 101 response (RFC 6455 section 4.2.2) with the app's subprotocol."""
        parts = [
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"upgrade: websocket\r\n"
            b"connection: Upgrade\r\n"
            b"sec-websocket-accept: ",
            self._accept_key,
            b"\r\n",
        ]
        if self._extensions_header is not None:
            parts += (b"sec-websocket-extensions: ", self._extensions_header, b"\r\n")
        if subprotocol is not None:
            if not isinstance(subprotocol, str):
                raise InvalidResponse(f"subprotocol must be a str, got {subprotocol!r}")
            parts += (b"sec-websocket-protocol: ", subprotocol.encode("latin-1"), b"\r\n")
        for name, value in headers:
            check_header(name, value)
            parts += (name, b": ", value, b"\r\n")
        if date is not None:
            parts += (b"date: ", date, b"\r\n")
        if server is not None:
            parts += (b"server: ", server, b"\r\n")
        parts.append(b"\r\n")
        self._accept_key = b""  # needed once
        return b"".join(parts)

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[dict[str, Any] | Closed]:
        """Feed bytes from the socket; return ASGI receive events and/or Closed."""
        ws = self.ws
        ws.receive_data(data)
        # Frames only: the handshake was done by the HTTP layer.
        frames = cast(list[Frame], ws.events_received())
        if not frames:
            return self._closed_if_done([])
        events: list[dict[str, Any] | Closed] = []
        for frame in frames:
            opcode = frame.opcode
            if opcode is TEXT:
                if frame.fin:
                    try:
                        text = cast(bytes, frame.data).decode()
                    except UnicodeDecodeError as exc:
                        self._fail_invalid_utf8(exc)
                        break
                    events.append({"type": "websocket.receive", "text": text})
                else:
                    self._start_fragments(frame, is_text=True)
                    if not self._decode_fragment(frame):
                        break
            elif opcode is BINARY:
                if frame.fin:
                    payload = frame.data
                    if not isinstance(payload, bytes):
                        payload = bytes(payload)
                    events.append({"type": "websocket.receive", "bytes": payload})
                else:
                    self._start_fragments(frame, is_text=False)
            elif opcode is CONT:
                if not self._decode_fragment(frame):
                    break
                if frame.fin:
                    events.append(self._finish_fragments())
            elif opcode is CLOSE:
                break
            # PING is answered by websockets itself; PONG only proves liveness.
        return self._closed_if_done(events)

    def receive_eof(self) -> Closed:
        self.ws.receive_eof()
        self._reported = True
        return self.closed_event()

    def _start_fragments(self, frame: Frame, *, is_text: bool) -> None:
        self._fragment_is_text = is_text
        self._fragments = [] if is_text else [frame.data]
        if is_text:
            self._decoder = codecs.getincrementaldecoder("utf-8")()

    def _decode_fragment(self, frame: Frame) -> bool:
        fragments = self._fragments
        assert fragments is not None
        if not self._fragment_is_text:
            if frame.opcode is CONT:
                fragments.append(frame.data)
            return True
        decoder = self._decoder
        assert decoder is not None
        try:
            fragments.append(decoder.decode(frame.data, frame.fin))
        except UnicodeDecodeError as exc:
            self._fail_invalid_utf8(exc)
            return False
        return True

    def _finish_fragments(self) -> dict[str, Any]:
        fragments = self._fragments
        assert fragments is not None
        self._fragments = None
        self._decoder = None
        if self._fragment_is_text:
            return {"type": "websocket.receive", "text": "".join(fragments)}
        return {"type": "websocket.receive", "bytes": b"".join(fragments)}

    def _fail_invalid_utf8(self, exc: UnicodeDecodeError) -> None:
        # RFC 6455 section 8.1: invalid UTF-8 in a text message fails the
        # connection with 1007.
        self._fragments = None
        self._decoder = None
        self.ws.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at position {exc.start}")

    def _closed_if_done(
        self, events: list[dict[str, Any] | Closed]
    ) -> list[dict[str, Any] | Closed]:
        # The connection is over once websockets ends the stream: after the
        # closing handshake, or after failing the connection (1002, 1007, 1009).
        # A close frame we sent alone is not the end: the client may still send.
        if self.ws.eof_sent and not self._reported:
            self._reported = True
            events.append(self.closed_event())
        return events

    def closed_event(self) -> Closed:
        """Code and reason for the app's ``websocket.disconnect``."""
        ws = self._ws
        if ws is None:
            return Closed(int(CloseCode.ABNORMAL_CLOSURE), "")
        received: Close | None = ws.close_rcvd
        if received is not None:
            return Closed(int(received.code), received.reason)
        sent: Close | None = ws.close_sent
        if sent is not None:
            # We failed the connection (1002, 1007, 1009...): tell the app why.
            return Closed(int(sent.code), sent.reason)
        return Closed(int(CloseCode.ABNORMAL_CLOSURE), "")

    # -- sending ------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Data frames may still be sent (no close frame sent or received)."""
        ws = self._ws
        return ws is None or ws.state is OPEN  # released only while open

    @property
    def state(self) -> State:
        ws = self._ws
        return OPEN if ws is None else ws.state

    @property
    def has_output(self) -> bool:
        ws = self._ws
        return ws is not None and bool(ws.writes)

    def encode(self, text: str | None, data: bytes | None) -> bytes:
        """A data frame for this connection (compressed if negotiated)."""
        if not self.compressed:
            return encode_frame(text, data)
        if text is not None:
            frame = Frame(TEXT, text.encode())
        else:
            frame = Frame(BINARY, data if data is not None else b"")
        return frame.serialize(mask=False, extensions=self._extensions)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2)."""
        if self.ws.state is OPEN:
            if len(reason.encode()) > 123:
                # A close frame's payload is at most 125 bytes (section 5.5).
                reason = reason.encode()[:123].decode(errors="ignore")
            self.ws.send_close(code, reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (section 7.1.7): close frame, then end of stream."""
        self.ws.fail(code, reason)

    def send_ping(self, payload: bytes = b"") -> None:
        self.ws.send_ping(payload)

    def data_to_send(self) -> list[bytes]:
        """Bytes to write; an empty bytes object means: close the TCP connection."""
        ws = self._ws
        return [] if ws is None else ws.data_to_send()
