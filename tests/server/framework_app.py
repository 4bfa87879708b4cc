"""djwire's framework (routers, consumers, layer) as one ASGI app, for any server.

Imported by djwire's own server in-process and by uvicorn/daphne in a subprocess
(``tests.server.framework_app:application``).
"""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path  # noqa: E402

from djwire.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer  # noqa: E402
from djwire.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


class Room(AsyncJsonWebsocketConsumer):
    """Everyone in the room gets what anyone says (a group send)."""

    groups = ["room"]

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content.get("direct"):
            # Already a websocket.send: the layer may write it straight to sockets.
            text = await self.encode_json({"said": content["text"]})
            await self.channel_layer.group_send("room", {"type": "websocket.send", "text": text})
        else:
            await self.channel_layer.group_send(
                "room", {"type": "room.message", "text": content["text"]}
            )

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"said": event["text"]})


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter(
            [path("ws/echo/", Echo.as_asgi()), path("ws/room/", Room.as_asgi())]
        ),
    }
)
