"""A Channels 4 style chat: every message goes through a consumer handler."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from djwire.consumer import SyncConsumer
from djwire.generic.websocket import AsyncJsonWebsocketConsumer


class Chat(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.who = self.scope["query_string"].decode() or "anonymous"
        self.seen = 0
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content.get("block"):
            # Fault injection: hold this worker's event loop, so events pile up for it.
            time.sleep(float(content["block"]))  # noqa: ASYNC251
        await self.channel_layer.group_send(
            self.room, {"type": "chat.message", "text": content["text"], "from": self.who}
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        self.seen += 1
        await self.send_json({"text": event["text"], "from": event["from"], "seen": self.seen})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)


class Tasks(SyncConsumer):
    """Background tasks for the reliable-channel tests: each leaves marker files."""

    def task_run(self, message: dict[str, Any]) -> None:
        directory = Path(message["dir"])
        (directory / f"{message['id']}.attempt{os.getpid()}").write_text("started")
        if message.get("fail"):
            raise RuntimeError("this task always fails")
        hung = directory / "hung"
        if message.get("hang_first") and not hung.exists():
            hung.write_text(str(os.getpid()))
            time.sleep(3600)  # until this worker is killed
        (directory / f"{message['id']}.done").write_text(str(os.getpid()))
