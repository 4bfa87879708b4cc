"""Reject WebSocket handshakes from pages of other sites (Origin checks).

Browsers send the page's origin in the ``Origin`` header of every WebSocket
handshake (RFC 6455 section 4.1, item 8) and, unlike with XHR, do not enforce the
same-origin policy themselves: the server must. A rejected handshake is closed
before ``websocket.accept``, which servers answer with HTTP 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import ParseResult, urlparse

from django.conf import settings
from django.utils.http import is_same_domain

from djwire.generic.websocket import AsyncWebsocketConsumer
from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope

__all__ = ["AllowedHostsOriginValidator", "OriginValidator", "WebsocketDenier"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def origin_from_scope(scope: Scope) -> ParseResult | None:
    """The parsed ``Origin`` header; None when it is missing, repeated or malformed."""
    found = [value for name, value in scope.get("headers", ()) if name.lower() == b"origin"]
    if len(found) != 1:
        # RFC 6454 section 7.3: at most one Origin field. Two is not a browser.
        return None
    try:
        parsed: ParseResult = urlparse(found[0].decode("latin1"))
        parsed.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return None
    return parsed


class OriginValidator:
    """Pass WebSockets whose Origin matches ``allowed_origins`` to ``application``;
    reject the others.

    A pattern is ``"*"`` (anything, even no Origin), a host (``"example.com"``,
    any scheme and port; ``".example.com"`` also matches subdomains), or a full origin
    (``"https://example.com:8443"``; the port defaults to the scheme's).
    """

    def __init__(self, application: ASGIApp, allowed_origins: Iterable[str]) -> None:
        self.application = application
        self.allowed_origins = list(allowed_origins)

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("You cannot use OriginValidator on a non-WebSocket connection")
        if self.valid_origin(origin_from_scope(scope)):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """True when the origin may connect. No Origin only passes with ``"*"``."""
        if parsed_origin is None and "*" not in self.allowed_origins:
            return False
        return self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: ParseResult | None) -> bool:
        """True when any allowed pattern matches the origin."""
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in self.allowed_origins
        )

    def match_allowed_origin(self, parsed_origin: ParseResult | None, pattern: str) -> bool:
        """Does one pattern match? Hosts compare as Django's ALLOWED_HOSTS do."""
        if parsed_origin is None or parsed_origin.hostname is None:
            return False
        parsed_pattern = urlparse(pattern.lower())
        if not parsed_pattern.scheme:
            host = urlparse("//" + pattern).hostname or pattern
            return bool(is_same_domain(parsed_origin.hostname, host))
        try:
            pattern_port = self.get_origin_port(parsed_pattern)
        except ValueError:
            return False
        return bool(
            parsed_pattern.scheme == parsed_origin.scheme
            and self.get_origin_port(parsed_origin) == pattern_port
            and is_same_domain(parsed_origin.hostname, parsed_pattern.hostname or "")
        )

    def get_origin_port(self, origin: ParseResult) -> int | None:
        """The explicit port, else the scheme's default, else None."""
        if origin.port is not None:
            return origin.port
        return _DEFAULT_PORTS.get(origin.scheme)


class _AllowedHostsValidator(OriginValidator):
    """An OriginValidator that reads ``settings.ALLOWED_HOSTS`` on every handshake,
    so the settings in force (and test overrides) always apply."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:  # type: ignore[override]
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            # Django's own default for DEBUG with empty ALLOWED_HOSTS.
            hosts = [".localhost", "127.0.0.1", "[::1]"]
        return hosts


def AllowedHostsOriginValidator(application: ASGIApp) -> OriginValidator:  # Channels' name
    """An :class:`OriginValidator` allowing the hosts in ``settings.ALLOWED_HOSTS``."""
    return _AllowedHostsValidator(application)


class WebsocketDenier(AsyncWebsocketConsumer):
    """A consumer that rejects every WebSocket (the server answers HTTP 403)."""

    async def connect(self) -> None:
        await self.close()
