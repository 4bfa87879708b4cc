"""Test tools: communicators that drive an ASGI application without a server, and a
live-server test case that serves the project over real sockets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# As in Channels, whose testing package imports the routing: conftests written for it
# use ``channels.routing.ProtocolTypeRouter`` after only ``import channels.testing``.
import djwire.routing  # noqa: F401

from .application import ApplicationCommunicator
from .http import HttpCommunicator
from .websocket import WebsocketCommunicator

if TYPE_CHECKING:
    from .live import ChannelsLiveServerTestCase, DjwireLiveServerTestCase, LiveServer

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "DjwireLiveServerTestCase",
    "HttpCommunicator",
    "LiveServer",
    "WebsocketCommunicator",
]


def __getattr__(name: str) -> Any:
    # The live server pulls in the interface server; import it only when asked.
    if name in ("DjwireLiveServerTestCase", "ChannelsLiveServerTestCase", "LiveServer"):
        from . import live

        return getattr(live, name)
    raise AttributeError(f"module 'djwire.testing' has no attribute {name!r}")
