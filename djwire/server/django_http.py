"""Plain sync Django views in one thread-pool hop (filled in below)."""

from __future__ import annotations

from djwire.server.asgi_types import ASGIApp


def accelerate(app: ASGIApp, *, threads: int = 16) -> ASGIApp:
    return app
