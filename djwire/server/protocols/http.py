"""HTTP/1.1 without I/O: request bytes in, events out; response parts in, bytes out.

Parsing is httptools' (llhttp, the parser of Node.js); this module adds the limits a
server needs (RFC 9110/9112) and the response framing rules:

* request head larger than ``max_header_size`` or with more than
  ``max_header_count`` fields -> :class:`Rejected` 431 (RFC 6585 section 5);
* a body over ``max_request_body_size`` -> :class:`Rejected` 413 (RFC 9110 15.5.14);
* an HTTP/1.1 request without a ``Host`` header, or any request with more than one
  -> :class:`Rejected` 400 (RFC 9112 section 3.2; HTTP/1.0 may omit it);
* anything llhttp refuses -> :class:`Rejected` 400, after which the connection
  must close (RFC 9112 section 2.2: a server that cannot parse the framing
  cannot find the next request).
"""

from __future__ import annotations

import http
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import httptools

from djwire.server.asgi_types import Headers


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_size: int = 16 * 1024
    max_header_count: int = 100
    max_request_body_size: int | None = 64 * 1024 * 1024


# -- events ------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """A complete request head."""

    method: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: Headers
    keep_alive: bool
    expect_continue: bool
    #: Bytes of body announced by Content-Length; None when chunked or absent.
    content_length: int | None
    #: The request carries a body (Content-Length > 0 or chunked).
    has_body: bool

    @property
    def path(self) -> str:
        # ASGI: "path" is the percent-decoded UTF-8 path (spec 2.4, HTTP scope).
        return unquote(self.raw_path.decode("latin-1"))


@dataclass(slots=True)
class Body:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    pass


@dataclass(slots=True)
class Rejected:
    """The client broke the protocol or a limit; answer ``status`` and close."""

    status: int
    reason: str


@dataclass(slots=True)
class WebSocketRequest:
    """An upgrade to WebSocket; ``trailing`` holds bytes that followed the head."""

    request: Request
    trailing: bytes = b""


Event = Request | Body | EndOfMessage | Rejected | WebSocketRequest
END_OF_MESSAGE: Final = EndOfMessage()


class _LimitExceeded(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


# -- request parsing -----------------------------------------------------------------

#: One shared bytes object per common header name: a request's headers live as long
#: as its connection (in the ASGI scope), so thousands of idle WebSockets would
#: otherwise each hold their own copies of b"host", b"user-agent"...
_COMMON_NAMES: Final = {
    name: name
    for name in (
        b"accept", b"accept-encoding", b"accept-language", b"authorization",
        b"cache-control", b"connection", b"content-length", b"content-type", b"cookie",
        b"expect", b"forwarded", b"host", b"origin", b"pragma", b"referer",
        b"sec-websocket-extensions", b"sec-websocket-key", b"sec-websocket-protocol",
        b"sec-websocket-version", b"sec-fetch-dest", b"sec-fetch-mode", b"sec-fetch-site",
        b"transfer-encoding", b"upgrade", b"user-agent", b"x-forwarded-for",
        b"x-forwarded-proto", b"x-real-ip", b"x-request-id",
    )
}  # fmt: skip
#: Likewise for values every WebSocket handshake repeats.
_COMMON_VALUES: Final = {
    value: value
    for value in (
        b"websocket", b"Upgrade", b"upgrade", b"keep-alive, Upgrade", b"13", b"keep-alive",
        b"close", b"permessage-deflate; client_max_window_bits", b"no-cache",
    )
}  # fmt: skip


class HttpRequestReader:
    """Turns the bytes of one connection into request events (httptools callbacks)."""

    __slots__ = (
        "_body_size",
        "_dead",
        "_events",
        "_head_bytes",
        "_header_bytes",
        "_headers",
        "_in_head",
        "_limits",
        "_parser",
        "_url",
        "_websocket",
    )

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0
        self._head_bytes = 0
        self._body_size = 0
        self._in_head = False
        self._dead = False
        self._websocket: Request | None = None

    def close(self) -> None:
        """Drop the parser (it and this reader refer to each other)."""
        self._dead = True
        self._parser = None  # type: ignore[assignment]

    @property
    def in_head(self) -> bool:
        """A request head has started and is not complete yet."""
        return self._in_head

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes."""
        if self._dead:
            return []
        events = self._events
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._dead = True
            if self._websocket is not None:
                offset = upgrade.args[0]
                events.append(WebSocketRequest(self._websocket, bytes(data[offset:])))
            # Any other upgrade was answered as plain HTTP with keep-alive off;
            # bytes after it belong to a protocol we don't speak and are dropped.
        except httptools.HttpParserCallbackError as exc:
            self._dead = True
            cause = exc.__context__
            if isinstance(cause, _LimitExceeded):
                events.append(Rejected(cause.status, cause.reason))
            else:  # pragma: no cover - our callbacks raise nothing else
                raise
        except httptools.HttpParserError as exc:
            self._dead = True
            events.append(Rejected(400, f"Malformed request: {exc}"))
        else:
            if self._in_head:
                # A head still incomplete after this chunk: everything since it
                # began counts (llhttp would otherwise buffer a huge field whole).
                self._head_bytes += len(data)
                if self._head_bytes > self._limits.max_header_size:
                    self._dead = True
                    events.append(Rejected(431, "Request header fields too large"))
        self._events = []
        return events

    # httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._head_bytes = 0
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_size:
            raise _LimitExceeded(431, "Request line too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        # 4 = ": " and CRLF, as the bytes were on the wire.
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._limits.max_header_size:
            raise _LimitExceeded(431, "Request header fields too large")
        if len(headers) >= self._limits.max_header_count:
            raise _LimitExceeded(431, "Too many request header fields")
        lower = name.lower()
        headers.append((_COMMON_NAMES.get(lower, lower), _COMMON_VALUES.get(value, value)))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        url = self._url
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
            # A fragment is never sent by conforming clients; drop it if one is.
            raw_path = raw_path.partition(b"#")[0]
            query = query.partition(b"#")[0]
        elif url == b"*":
            raw_path, query = url, b""
        else:
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise _LimitExceeded(400, "Invalid request target") from None
            raw_path = parsed.path or b"/"
            query = parsed.query or b""
        content_length: int | None = None
        chunked = False
        expect_continue = False
        upgrade: bytes | None = None
        hosts = 0
        for name, value in self._headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                content_length = int(value)  # llhttp has validated the digits
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif name == b"upgrade":
                upgrade = value.lower()
        http_version = parser.get_http_version()
        if hosts != 1 and (hosts or http_version != "1.0"):
            # RFC 9112 section 3.2: the target's authority cannot be known.
            raise _LimitExceeded(
                400, "Missing Host header" if not hosts else "Several Host headers"
            )
        if chunked:
            content_length = None
        limit = self._limits.max_request_body_size
        if limit is not None and content_length is not None and content_length > limit:
            raise _LimitExceeded(413, "Request body too large")
        method = parser.get_method().decode("ascii")
        request = Request(
            method=method,
            raw_path=raw_path,
            query_string=query,
            http_version=http_version,
            headers=self._headers,
            keep_alive=parser.should_keep_alive(),
            expect_continue=expect_continue,
            content_length=content_length,
            has_body=chunked or bool(content_length),
        )
        if parser.should_upgrade():
            if upgrade == b"websocket":
                # Reported with its trailing bytes once llhttp stops at the upgrade.
                self._websocket = request
                return
            # Other upgrades (h2c...) get a plain HTTP answer; then we close.
            request.keep_alive = False
        self._events.append(request)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        limit = self._limits.max_request_body_size
        if limit is not None and self._body_size > limit:
            raise _LimitExceeded(413, "Request body too large")
        self._events.append(Body(body))

    def on_message_complete(self) -> None:
        if self._websocket is None:
            self._events.append(END_OF_MESSAGE)


# -- responses ------------------------------------------------------------------------

_STATUS_LINES: dict[int, bytes] = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("latin-1")
    for status in http.HTTPStatus
}

# RFC 9110 section 5.1 (token) and 5.5 (field values: no CR, LF or NUL).
_INVALID_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

#: Statuses that never carry a body (RFC 9110 sections 6.4.1, 15.3.5, 15.4.5).
_NO_BODY_STATUSES = frozenset({204, 304})


class InvalidResponse(ValueError):
    """The app sent a response the server must not put on the wire."""


def check_header(name: bytes, value: bytes) -> None:
    """Refuse header lines that would break the framing (response splitting)."""
    if not isinstance(name, bytes) or not isinstance(value, bytes):
        raise InvalidResponse(f"Header names and values must be bytes, got {name!r}: {value!r}")
    if not name or _INVALID_NAME.search(name):
        raise InvalidResponse(f"Invalid header name {name!r}")
    if _INVALID_VALUE.search(value):
        raise InvalidResponse(f"Invalid header value for {name!r}")


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise InvalidResponse(f"Invalid HTTP status {status!r}")
        line = f"HTTP/1.1 {status} \r\n".encode("latin-1")
    return line


@dataclass(slots=True)
class ResponseFraming:
    """How one response body goes on the wire, decided when its head is written.

    The head is held back until the first body chunk so that a response sent in
    one piece gets a Content-Length instead of chunked encoding, and goes out in
    one write.
    """

    #: Request was HEAD: headers as for GET, but no body (RFC 9110 9.3.2).
    head_request: bool
    #: Client may reuse the connection (its request asked for keep-alive).
    keep_alive: bool
    http11: bool
    chunked: bool = False
    #: Body bytes still allowed by a Content-Length, or None if not length-framed.
    remaining: int | None = None
    no_body: bool = False
    #: Response length unknown and chunking unavailable: body ends at close.
    close_delimited: bool = False

    def head(
        self,
        status: int,
        headers: Headers,
        first_chunk: bytes,
        last: bool,
        *,
        date: bytes | None,
        server: bytes | None,
    ) -> bytes:
        """Status line and header block, plus the first chunk framed."""
        if not isinstance(status, int):
            raise InvalidResponse(f"HTTP status must be an int, got {status!r}")
        parts = [status_line(status)]
        content_length: int | None = None
        has_date = has_server = False
        for name, value in headers:
            check_header(name, value)
            lower = name.lower()
            if lower == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    raise InvalidResponse(f"Invalid Content-Length {value!r}") from None
            elif lower == b"transfer-encoding":
                # We do the framing; an app's own chunking would be applied twice.
                continue
            elif lower == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                continue
            elif lower == b"date":
                has_date = True
            elif lower == b"server":
                has_server = True
            parts += (name, b": ", value, b"\r\n")
        if date is not None and not has_date:
            parts += (b"date: ", date, b"\r\n")
        if server is not None and not has_server:
            parts += (b"server: ", server, b"\r\n")

        if status in _NO_BODY_STATUSES or status < 200:
            self.no_body = True
        elif content_length is not None:
            self.remaining = content_length
        elif last:
            content_length = len(first_chunk)
            self.remaining = content_length
            parts += (b"content-length: ", str(content_length).encode("ascii"), b"\r\n")
        elif self.http11:
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            # HTTP/1.0 has no chunking: the body ends when we close (RFC 9112 6.3).
            self.close_delimited = True
            self.keep_alive = False
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        elif not self.http11:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        body = self.body(first_chunk, last)
        if body:
            parts.append(body)
        return b"".join(parts)

    def body(self, data: bytes, last: bool) -> bytes:
        """Frame one chunk of body; with ``last``, whatever ends the body."""
        if self.no_body or self.head_request:
            if self.remaining is not None:
                self.remaining -= len(data)
            return b""
        if self.chunked:
            if data:
                framed = b"%x\r\n%b\r\n" % (len(data), data)
                return framed + b"0\r\n\r\n" if last else framed
            return b"0\r\n\r\n" if last else b""
        if self.remaining is not None:
            self.remaining -= len(data)
            if self.remaining < 0:
                raise InvalidResponse("Response body longer than its Content-Length")
            if last and self.remaining > 0:
                # The client would wait for bytes that never come: the
                # connection cannot be reused (RFC 9112 section 6.3, item 5).
                self.keep_alive = False
        return data


def simple_response(
    status: int, body: bytes, *, date: bytes | None = None, extra: Headers | None = None
) -> bytes:
    """A complete response that closes the connection (for errors and limits)."""
    parts = [
        status_line(status),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    if date is not None:
        parts += (b"date: ", date, b"\r\n")
    for name, value in extra or ():
        parts += (name, b": ", value, b"\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
