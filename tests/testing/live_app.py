"""The project application the live-server tests serve (ASGI_APPLICATION points here)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.contrib.auth.models import User
from django.core.asgi import get_asgi_application
from django.urls import path, re_path

from djwire.auth import AuthMiddlewareStack
from djwire.db import database_sync_to_async
from djwire.generic.http import AsyncHttpConsumer
from djwire.generic.websocket import AsyncJsonWebsocketConsumer
from djwire.layers import InMemoryChannelLayer
from djwire.routing import ProtocolTypeRouter, URLRouter
from djwire.security.websocket import AllowedHostsOriginValidator


@database_sync_to_async
def count_users() -> int:
    return User.objects.count()


class Chat(AsyncJsonWebsocketConsumer):
    groups = ["live-chat"]

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": self.scope["user"].username, "users": await count_users()})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content.get("crash"):
            raise RuntimeError("consumer crashed on purpose")
        await self.channel_layer.group_send(  # type: ignore[union-attr]
            "live-chat", {"type": "chat.message", "text": content["text"]}
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"text": event["text"]})


class Events(AsyncHttpConsumer):
    """Server-Sent Events: three events, then the end of the stream."""

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        for n in range(3):
            await self.send_body(f"data: {n}\n\n".encode(), more_body=True)
        await self.send_body(b"")


class LongPoll(AsyncHttpConsumer):
    """Waits for a "news" group message, then answers with it."""

    async def handle(self, body: bytes) -> None:
        await self.channel_layer.group_add("news", self.channel_name)  # type: ignore[union-attr]
        await self.send_headers(headers=[(b"content-type", b"application/json")])
        await self.send_body(b"", more_body=True)

    async def news_item(self, event: dict[str, Any]) -> None:
        await self.send_body(event["body"].encode())

    async def disconnect(self) -> None:
        await self.channel_layer.group_discard("news", self.channel_name)  # type: ignore[union-attr]


class Upload(AsyncHttpConsumer):
    max_body_size = 1000

    async def handle(self, body: bytes) -> None:
        await self.send_response(200, str(len(body)).encode())


application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("events/", Events.as_asgi()),
                path("poll/", LongPoll.as_asgi()),
                path("upload/", Upload.as_asgi()),
                re_path(r"^", get_asgi_application()),
            ]
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", Chat.as_asgi())]))
        ),
    }
)


class SlowGroupAddLayer(InMemoryChannelLayer):
    """The in-memory layer with group_add taking as long as a loaded Redis might.

    Fault injection for the classic chat test: it widens the window between a
    consumer's accept and its group join that a busy machine opens by chance.
    """

    async def group_add(self, group: str, channel: str) -> None:
        await asyncio.sleep(0.05)
        await super().group_add(group, channel)
