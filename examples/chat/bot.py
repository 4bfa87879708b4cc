"""The chat's background worker: answers "!roll", "!time" and "!help" in a room.

    python manage.py runworker chat-bot

It runs in its own process and reaches the room's sockets through the channel
layer (the IPC layer on one machine, Redis on several). Without a worker running,
commands are posted as plain messages and nobody answers them.
"""

from __future__ import annotations

import json
import random
from typing import Any

from django.utils import timezone

from djwire.consumer import AsyncConsumer
from djwire.db import database_sync_to_async

from .models import ChatMessage, Room

#: The named channel the chat consumer sends commands to.
BOT_CHANNEL = "chat-bot"
BOT_NAME = "bot"


def answer(command: str) -> str | None:
    word = command.split()[0].lower() if command.split() else ""
    if word == "!roll":
        return f"rolled a {random.randint(1, 6)}"
    if word == "!time":
        return f"it is {timezone.now():%H:%M:%S} UTC"
    if word == "!help":
        return "commands: !roll, !time, !help"
    return None


def store(room_name: str, text: str) -> ChatMessage | None:
    room = Room.objects.filter(name=room_name).first()
    if room is None:
        return None
    return ChatMessage.objects.create(room=room, author=BOT_NAME, text=text)


class ChatBotConsumer(AsyncConsumer):
    async def chat_command(self, message: dict[str, Any]) -> None:
        text = answer(str(message.get("text", "")))
        if text is None:
            return
        saved = await database_sync_to_async(store)(str(message.get("room", "")), text)
        if saved is None:
            return
        assert self.channel_layer is not None
        payload = {"type": "message", "message": saved.as_json(), "client_id": None}
        await self.channel_layer.group_send(
            saved.room.group_name, {"type": "websocket.send", "text": json.dumps(payload)}
        )
