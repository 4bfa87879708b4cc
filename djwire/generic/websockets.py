"""Classic (Channels 1) class-based WebSocket consumers, for ``route_class()``."""

from djwire.classic.generic import BaseConsumer, JsonWebsocketConsumer, WebsocketConsumer

__all__ = ["BaseConsumer", "JsonWebsocketConsumer", "WebsocketConsumer"]
