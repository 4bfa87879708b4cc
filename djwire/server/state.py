"""What all connections of one server process share: config, app, clock, registry.

Timeouts are checked by one periodic sweep over the open connections instead of a
timer per connection: a connection records deadlines as plain floats (cheap to move
on every request or message) and costs no timer object while idle.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any, Protocol

from djwire import __version__
from djwire.server.asgi_types import ASGIApp
from djwire.server.config import Config
from djwire.server.protocols.http import HttpLimits
from djwire.server.protocols.proxy import TrustedProxies
from djwire.server.protocols.websocket import WebSocketLimits

logger = logging.getLogger("djwire.server")
access_logger = logging.getLogger("djwire.server.access")


class Session(Protocol):
    """One connection as the registry sees it."""

    def check_timeouts(self, now: float) -> None: ...

    def shutdown(self) -> None:
        """Begin a graceful close (server is stopping)."""
        ...

    def abort(self) -> None:
        """Close now: cancel the app and drop the socket."""
        ...

    def busy(self) -> bool:
        """An app task still runs for this connection."""
        ...

    def app_task(self) -> asyncio.Future[Any] | None:
        """The app task this session runs itself (not listed in ``tasks``)."""
        ...


class ServerState:
    """Per-process shared state of the interface server."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop) -> None:
        if isinstance(config.app, str):
            raise TypeError(f"the server needs the application, not its name {config.app!r}")
        self.config = config
        self.app: ASGIApp = config.app
        self.loop = loop
        self.sessions: set[Session] = set()
        #: Running app tasks awaited at shutdown: HTTP requests, and WebSocket apps
        #: that outlive their connection (a live WebSocket's task is its session's).
        self.tasks: set[asyncio.Future[Any]] = set()
        self.http_limits = HttpLimits(
            max_header_size=config.max_header_size,
            max_header_count=config.max_header_count,
            max_request_body_size=config.max_request_body_size,
        )
        self.ws_limits = WebSocketLimits(
            max_message_size=config.ws_max_message_size,
            max_frame_size=config.ws_max_frame_size,
            per_message_deflate=config.ws_per_message_deflate,
            deflate_context_takeover=config.ws_deflate_context_takeover,
        )
        self.trusted_proxies = (
            TrustedProxies.parse(config.forwarded_allow_ips) if config.proxy_headers else None
        )
        self.server_header: bytes | None = (
            f"djwire/{__version__}".encode() if config.server_header else None
        )
        self.lifespan_state: dict[str, Any] | None = None
        self.access_log = config.access_log
        self.shutting_down = False
        self.now = loop.time()
        self.date: bytes | None = None
        self._date_second = 0
        self._update_date()
        self._ticker: asyncio.TimerHandle | None = None
        self.tick_interval = _tick_interval(config)

    # -- the clock ---------------------------------------------------------------

    def _update_date(self) -> None:
        if not self.config.date_header:
            return
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self.date = email.utils.formatdate(second, usegmt=True).encode("ascii")

    def start_clock(self) -> None:
        self._ticker = self.loop.call_later(self.tick_interval, self._tick)

    def stop_clock(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick(self) -> None:
        self.now = now = self.loop.time()
        self._update_date()
        for session in list(self.sessions):
            try:
                session.check_timeouts(now)
            except Exception:  # pragma: no cover - a bug must not stop the clock
                logger.exception("Error while checking connection timeouts")
        self._ticker = self.loop.call_later(self.tick_interval, self._tick)

    # -- the registry ------------------------------------------------------------

    def at_capacity(self) -> bool:
        return len(self.sessions) >= self.config.max_connections

    def busy_sessions(self) -> int:
        return sum(1 for session in self.sessions if session.busy())


def _tick_interval(config: Config) -> float:
    """Sweep often enough that every timeout fires within ~25% of its value."""
    timeouts = [
        config.keep_alive_timeout,
        config.request_head_timeout,
        config.body_read_timeout,
        config.send_timeout,
        config.ws_handshake_timeout,
        config.ws_ping_timeout,
        config.ws_close_timeout,
    ]
    if config.ws_ping_interval is not None:
        timeouts.append(config.ws_ping_interval)
    tick = min(t for t in timeouts if t > 0) / 4
    if config.ws_parser_idle_release is not None:
        # Releasing parsers needs no precision: at most one tick late.
        tick = min(tick, config.ws_parser_idle_release)
    return max(0.02, min(1.0, tick))
