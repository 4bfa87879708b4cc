"""A room of sockets and a background task, for the implicit-layer tests."""

from __future__ import annotations

import json
import os
from typing import Any

from djwire.consumer import AsyncConsumer
from djwire.generic.websocket import AsyncJsonWebsocketConsumer


def to_room(**payload: Any) -> dict[str, Any]:
    return {"type": "websocket.send", "text": json.dumps(payload)}


class RoomConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        layer = self.channel_layer
        if layer is not None:
            await layer.group_add("room", self.channel_name)
        await self.accept()
        await self.send_json({"welcome": os.getpid(), "layer": type(layer).__name__})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        assert self.channel_layer is not None
        if "say" in content:
            await self.channel_layer.group_send("room", to_room(said=content["say"]))
        elif "task" in content:
            await self.channel_layer.send("tasks", {"type": "task.run", "text": content["task"]})


class TaskConsumer(AsyncConsumer):
    """Runs in ``manage.py runworker tasks``."""

    async def task_run(self, message: dict[str, Any]) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send(
            "room", to_room(done=message["text"], worker=os.getpid())
        )
