"""Channels 1's import path ``channels.generic.websockets`` (plural), kept on purpose.

Channels 1 code imports its class-based consumers from here:
``from djwire.generic.websockets import WebsocketConsumer``. They are the classic
consumers of :mod:`djwire.classic.generic`, handed out lazily so that the core never
imports the classic API. Channels 4's consumers are in :mod:`djwire.generic.websocket`
(singular).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from djwire.classic.generic import BaseConsumer, JsonWebsocketConsumer, WebsocketConsumer

__all__ = ["BaseConsumer", "JsonWebsocketConsumer", "WebsocketConsumer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from djwire.classic import generic

        return getattr(generic, name)
    raise AttributeError(f"module 'djwire.generic.websockets' has no attribute {name!r}")
