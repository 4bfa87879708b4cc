"""Every knob of the interface server, each with a safe default.

One frozen dataclass holds every resource limit and timeout, so there is exactly one
place to read what a hostile client can make the server spend. ``None`` disables a
limit only where a field says so.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from djwire.server.protocols.proxy import TrustedProxies

KiB = 1024
MiB = 1024 * KiB

#: Addresses whose X-Forwarded-* / Forwarded headers are believed by default: a
#: reverse proxy on the same host. Anything else must be listed explicitly.
DEFAULT_FORWARDED_ALLOW_IPS = ("127.0.0.1", "::1")

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


@dataclass(frozen=True)
class Config:
    """Settings of one ``djwire serve`` process (and of its workers)."""

    # -- what to serve and where -------------------------------------------------
    #: The ASGI application, or "module:attribute" (attribute defaults to
    #: ``application``). Workers re-import it, so multi-process needs the string.
    app: str | Callable[..., Any] = "djwire.routing:get_default_application"
    host: str = "127.0.0.1"
    port: int = 8000
    #: Listen on this Unix domain socket instead of host:port.
    uds: str | None = None
    #: Serve an already-listening socket inherited as this file descriptor.
    fd: int | None = None
    #: Worker processes sharing the listening socket; 1 means no supervisor.
    workers: int = 1
    backlog: int = 2048
    #: Event loop: "auto" (uvloop when installed), "uvloop" or "asyncio".
    loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    #: ASGI lifespan protocol: "auto" tolerates apps without it, "on" requires it.
    lifespan: Literal["auto", "on", "off"] = "auto"
    #: Prefix under which the app is mounted (ASGI ``root_path``).
    root_path: str = ""

    # -- proxies ---------------------------------------------------------------
    #: Take the client address and scheme from X-Forwarded-For/-Proto and
    #: Forwarded (RFC 7239), but only from peers in ``forwarded_allow_ips``.
    proxy_headers: bool = True
    #: Trusted proxy addresses or networks ("10.0.0.0/8"); "*" trusts everyone,
    #: "unix" trusts Unix-socket peers. Host names are refused: they are not resolved.
    forwarded_allow_ips: tuple[str, ...] = DEFAULT_FORWARDED_ALLOW_IPS

    # -- connections -------------------------------------------------------------
    #: Concurrent connections per process; beyond it a new client gets a 503.
    max_connections: int = 10_000
    #: Seconds an HTTP connection may sit without a request in progress: a fresh
    #: connection that sends nothing, or a kept-alive one between requests.
    keep_alive_timeout: float = 5.0
    #: Seconds from the first byte of a request to the end of its head. Defeats
    #: slow-loris clients that trickle headers to hold a connection open.
    request_head_timeout: float = 10.0
    #: Seconds without a byte of request body while the app waits for more.
    body_read_timeout: float = 60.0
    #: Seconds a send() may wait for a slow reader to drain the write buffer
    #: before the connection is closed.
    send_timeout: float = 30.0
    #: Seconds to keep reading (and discarding) after a final error answer such
    #: as 413, so the client reads the answer instead of a connection reset.
    close_linger_timeout: float = 2.0

    # -- HTTP limits ---------------------------------------------------------------
    #: Bytes in the request line and all header lines together (431 beyond).
    max_header_size: int = 16 * KiB
    #: Number of header fields in one request (431 beyond).
    max_header_count: int = 100
    #: Bytes of request body (413 beyond); None disables the limit. Bodies are
    #: streamed with backpressure, so this is policy, not memory protection.
    max_request_body_size: int | None = 64 * MiB
    #: Request body bytes buffered for the app before the server stops reading.
    read_high_water: int = 64 * KiB
    #: Requests received ahead of the one being answered (HTTP pipelining)
    #: before the server stops reading.
    max_pipelined_requests: int = 16

    # -- write buffering ------------------------------------------------------------
    #: Above this many buffered outgoing bytes, send() waits (backpressure).
    write_high_water: int = 64 * KiB
    #: ...and resumes once the buffer falls below this.
    write_low_water: int = 16 * KiB
    #: Hard cap on buffered outgoing bytes for frames written without waiting
    #: (group fan-out): a client this far behind is disconnected.
    write_buffer_limit: int = 4 * MiB

    # -- WebSocket ---------------------------------------------------------------
    #: Largest incoming message in bytes, after decompression (close 1009).
    ws_max_message_size: int = 1 * MiB
    #: Largest incoming frame in bytes (close 1009); None means the message limit.
    ws_max_frame_size: int | None = None
    #: Incoming messages queued for an app that is not reading before the
    #: server stops reading from that socket.
    ws_max_queue: int = 32
    #: Seconds the app has to accept or reject a WebSocket handshake.
    ws_handshake_timeout: float = 20.0
    #: Send a ping after this many seconds without hearing from the client; None
    #: disables keepalive pings.
    ws_ping_interval: float | None = 20.0
    #: Close with 1011 if a ping gets no answer (no data at all) this long.
    ws_ping_timeout: float = 20.0
    #: Seconds of silence after which a WebSocket drops its frame parser (rebuilt
    #: on the next byte, in microseconds); None keeps it for the connection's life.
    ws_parser_idle_release: float | None = 1.0
    #: Seconds to wait for the client to finish the closing handshake.
    ws_close_timeout: float = 5.0
    #: Negotiate permessage-deflate (RFC 7692) when the client offers it.
    ws_per_message_deflate: bool = True
    #: Keep compression contexts between messages (RFC 7692 section 7.1.1).
    #: Off by default: with it, each connection holds ~300 KiB of zlib state.
    ws_deflate_context_takeover: bool = False

    # -- shutdown ---------------------------------------------------------------
    #: Seconds in-flight requests and WebSocket apps get after SIGTERM/SIGINT
    #: before their tasks are cancelled.
    graceful_shutdown_timeout: float = 20.0

    # -- logging & headers --------------------------------------------------------
    access_log: bool = True
    log_level: LogLevel = "info"
    server_header: bool = True
    date_header: bool = True

    # -- garbage collection (processes started by djwire serve) ----------------------
    #: After startup, freeze what is loaded (Django, the app) so the cyclic GC no
    #: longer walks those ~10^5 long-lived objects on every full collection.
    gc_freeze: bool = True
    #: Cyclic GC generation thresholds; CPython's default first threshold (700
    #: allocations) makes a busy server collect hundreds of times a second.
    #: None keeps the interpreter's settings.
    gc_thresholds: tuple[int, int, int] | None = (20_000, 50, 100)

    # -- Django ----------------------------------------------------------------
    #: Serve plain sync Django views in one thread-pool hop instead of the ASGI
    #: handler's per-middleware hops (djwire.django_http).
    django_fast_path: bool = True
    #: Threads for sync Django views on the fast path.
    django_threads: int = 16

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work together."""
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.workers > 1 and not isinstance(self.app, str):
            raise ValueError("--workers needs the app as an import string")
        if self.write_low_water > self.write_high_water:
            raise ValueError("write_low_water must not exceed write_high_water")
        if self.write_buffer_limit < self.write_high_water:
            raise ValueError("write_buffer_limit must be at least write_high_water")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.uds is not None and self.fd is not None:
            raise ValueError("give --uds or --fd, not both")
        if self.django_threads < 1:
            raise ValueError("django_threads must be at least 1")
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{item.name} must not be negative (got {value})")
        TrustedProxies.parse(self.forwarded_allow_ips)
        if self.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ValueError(
                "loop 'uvloop' asked for, but uvloop is not installed "
                "(pip install 'djwire[uvloop]', or use loop 'auto')"
            )
