"""A stock Django Channels 4 app using djwire's Redis layer; run under bench/.venv.

Run by test_channels_dropin.py as ``python channels_dropin_app.py REDIS_URL``. Only
Channels' own classes are used (consumers, routing, WebsocketCommunicator); the
layer BACKEND is the one thing changed. Prints "OK" and exits 0 when all is well.
"""

from __future__ import annotations

import asyncio
import sys
import threading

import django
from django.conf import settings

REDIS_URL = sys.argv[1]

settings.configure(
    SECRET_KEY="channels-dropin",
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "dropin", "capacity": 50},
        }
    },
)
django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.consumer import AsyncConsumer  # noqa: E402
from channels.generic.websocket import (  # noqa: E402
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.testing import ApplicationCommunicator, WebsocketCommunicator  # noqa: E402
from django.urls import path  # noqa: E402


class AsyncChat(AsyncJsonWebsocketConsumer):
    groups = ["lobby"]

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send("lobby", {"type": "chat.message", "text": content})

    async def chat_message(self, event):
        await self.send_json(event["text"])


class SyncChat(JsonWebsocketConsumer):
    def connect(self):
        async_to_sync(self.channel_layer.group_add)("lobby", self.channel_name)
        self.accept()

    def disconnect(self, code):
        async_to_sync(self.channel_layer.group_discard)("lobby", self.channel_name)

    def chat_message(self, event):
        self.send_json(event["text"])


class Worker(AsyncConsumer):
    async def job_run(self, message):
        await self.channel_layer.send(message["reply_to"], {"type": "job.done", "n": message["n"]})


application = URLRouter([path("async/", AsyncChat.as_asgi()), path("sync/", SyncChat.as_asgi())])


async def main() -> None:
    layer = get_channel_layer()
    assert type(layer).__module__.startswith("djwire.layers.redis"), type(layer)
    clients = [
        WebsocketCommunicator(application, "/async/"),
        WebsocketCommunicator(application, "/sync/"),
        WebsocketCommunicator(application, "/async/"),
    ]
    for client in clients:
        connected, _ = await client.connect()
        assert connected
    await clients[0].send_json_to({"hello": "from async"})
    for client in clients:
        assert await client.receive_json_from(timeout=5) == {"hello": "from async"}

    # Sync Django code (a view, a signal) broadcasting through async_to_sync.
    def from_sync_code() -> None:
        async_to_sync(layer.group_send)("lobby", {"type": "chat.message", "text": {"n": 1}})

    thread = threading.Thread(target=from_sync_code)
    thread.start()
    await asyncio.to_thread(thread.join)
    for client in clients:
        assert await client.receive_json_from(timeout=5) == {"n": 1}

    # A named-channel worker (what runworker runs), answering on a reply channel.
    worker = ApplicationCommunicator(Worker.as_asgi(), {"type": "channel", "channel": "jobs"})
    reply_to = await layer.new_channel()

    async def serve_jobs() -> None:
        while True:
            await worker.send_input(await layer.receive("jobs"))

    serving = asyncio.ensure_future(serve_jobs())
    for n in range(3):
        await layer.send("jobs", {"type": "job.run", "n": n, "reply_to": reply_to})
    replies = [await asyncio.wait_for(layer.receive(reply_to), 5) for _ in range(3)]
    assert [reply["n"] for reply in replies] == [0, 1, 2]
    serving.cancel()

    for client in clients:
        await client.disconnect()
    assert await layer.group_channels("lobby") == []
    await layer.flush()
    await layer.close()
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
