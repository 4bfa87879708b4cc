"""Chat sockets in the Channels 4 style: one AsyncJsonWebsocketConsumer per socket.

Protocol (JSON text frames):

- server -> client on join: ``{"type": "welcome", "room", "name", "max_length",
  "messages": [...last DEMO_CHAT_HISTORY messages...]}``
- client -> server: ``{"type": "message", "text": "...", "client_id": "..."}``
- server -> every member: ``{"type": "message", "message": {...}, "client_id": ...}``
- server -> client on bad input: ``{"type": "error", "error": "...", "client_id"}`` (the socket
  stays open: one bad message is not a reason to drop the user)

A message starting with "!" is also sent to the ``chat-bot`` worker (chat/bot.py).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from djwire.db import database_sync_to_async
from djwire.generic.websocket import AsyncJsonWebsocketConsumer

from .bot import BOT_CHANNEL
from .models import ChatMessage, Room
from .names import guest_name, new_guest_name

#: Longest client_id echoed back (the page uses it to match its pending messages).
MAX_CLIENT_ID = 64


def max_length() -> int:
    return int(getattr(settings, "DEMO_CHAT_MAX_LENGTH", 500))


def history_size() -> int:
    return int(getattr(settings, "DEMO_CHAT_HISTORY", 50))


def identify(scope: dict[str, Any]) -> tuple[str, bool]:
    """(name, authenticated) from the Django session of the handshake request."""
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return user.get_username(), True
    session = scope.get("session")
    if session is None:  # no session middleware in front of this consumer
        return new_guest_name(), False
    return guest_name(session), False


def join_room(name: str) -> tuple[Room, list[dict[str, Any]]]:
    room, _ = Room.objects.get_or_create(name=name)
    latest = room.messages.order_by("-sent", "-id")[: history_size()]
    return room, [message.as_json() for message in reversed(latest)]


def store(room: Room, author: str, authenticated: bool, text: str) -> ChatMessage:
    return ChatMessage.objects.create(
        room=room, author=author, authenticated=authenticated, text=text
    )


class ChatConsumer(AsyncJsonWebsocketConsumer):
    room: Room
    author: str
    authenticated: bool

    async def connect(self) -> None:
        room_name = self.scope["url_route"]["kwargs"]["room"]
        self.author, self.authenticated = await database_sync_to_async(identify)(self.scope)
        self.room, history = await database_sync_to_async(join_room)(room_name)
        await self.channel_layer.group_add(self.room.group_name, self.channel_name)
        await self.accept()
        await self.send_json(
            {
                "type": "welcome",
                "room": self.room.name,
                "name": self.author,
                "authenticated": self.authenticated,
                "max_length": max_length(),
                "messages": history,
            }
        )

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "room"):
            await self.channel_layer.group_discard(self.room.group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.error("Send JSON in text frames.")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.error("That was not valid JSON.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "message":
            await self.error('Unknown request: expected {"type": "message", "text": ...}.')
            return
        client_id = content.get("client_id")
        if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID:
            client_id = None
        text = content.get("text")
        if not isinstance(text, str) or not text.strip():
            await self.error("Type a message first.", client_id)
            return
        text = text.strip()
        limit = max_length()
        if len(text) > limit:
            await self.error(
                f"Messages are limited to {limit} characters ({len(text)} sent).", client_id
            )
            return
        saved = await database_sync_to_async(store)(
            self.room, self.author, self.authenticated, text
        )
        payload = {"type": "message", "message": saved.as_json(), "client_id": client_id}
        # A "websocket.send" group message is the frame itself: djwire encodes it once
        # and writes it to every member socket without waking each consumer.
        await self.channel_layer.group_send(
            self.room.group_name, {"type": "websocket.send", "text": json.dumps(payload)}
        )
        if text.startswith("!"):
            # A command for the bot, a worker in another process (chat/bot.py).
            await self.channel_layer.send(
                BOT_CHANNEL, {"type": "chat.command", "room": self.room.name, "text": text}
            )

    async def error(self, text: str, client_id: str | None = None) -> None:
        await self.send_json({"type": "error", "error": text, "client_id": client_id})
