"""The project's ASGI application: sockets in a room, and a worker channel."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.layers.ipc.project.settings")
django_app = get_asgi_application()

from django.urls import path  # noqa: E402

from djwire.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402

from .consumers import RoomConsumer, TaskConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter([path("ws/room/", RoomConsumer.as_asgi())]),
        "channel": ChannelNameRouter({"tasks": TaskConsumer.as_asgi()}),
    }
)
