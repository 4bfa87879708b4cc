"""Errors the interface server raises into applications (defined in djwire.exceptions)."""

from __future__ import annotations

from djwire.exceptions import ClientDisconnected

__all__ = ["ClientDisconnected"]
