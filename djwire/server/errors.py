"""Errors the interface server raises into applications."""

from __future__ import annotations

from djwire.exceptions import DjwireError


class ClientDisconnected(DjwireError, OSError):
    """``send()`` was called after the client went away (ASGI spec 2.4: an OSError)."""
