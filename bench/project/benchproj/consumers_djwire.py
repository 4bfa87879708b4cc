"""The benchmark consumers, written against djwire (Channels-compatible API, `djwire.` imports)."""

import asyncio
import os
import time

from djwire.consumer import AsyncConsumer, SyncConsumer
from djwire.generic.websocket import AsyncWebsocketConsumer

from . import tally

GROUP = "bench"
PAYLOAD_SIZE = 100
#: Experiment (bench/run.py --variant yield=BENCH_TRIGGER_YIELD=1): the trigger yields to
#: the event loop after each group_send, as a group_send that yields per call would, so
#: every member wakes once per message (no runs of waiting messages in the burst).
TRIGGER_YIELDS = os.environ.get("BENCH_TRIGGER_YIELD") == "1"


def stamped(trigger: str) -> str:
    """``"<seq> <client_ns>"`` + the server's monotonic ns right before group_send."""
    return f"{trigger} {time.monotonic_ns()} ".ljust(PAYLOAD_SIZE, "x")


class EchoConsumer(AsyncWebsocketConsumer):
    """W1 and W5: send every message straight back."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class MemberConsumer(AsyncWebsocketConsumer):
    """W2: a member of the broadcast group; forwards each group message to its client."""

    groups = [GROUP]

    async def chat_message(self, event):
        await self.send(text_data=event["text"])


class TriggerConsumer(AsyncWebsocketConsumer):
    """W2: the control client; each message it sends becomes one group_send."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            GROUP, {"type": "chat.message", "text": stamped(text_data)}
        )
        if TRIGGER_YIELDS:
            await asyncio.sleep(0)


class DirectTriggerConsumer(AsyncWebsocketConsumer):
    """W2, djwire's direct path: a ``websocket.send`` group message is not dispatched to
    the members' consumers; djwire encodes the frame once and writes it to every socket
    (djwire/layers/direct.py)."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            GROUP, {"type": "websocket.send", "text": stamped(text_data)}
        )


class LoopTriggerConsumer(AsyncWebsocketConsumer):
    """W3 (issue 10): one message ``"<count> <size>"`` from the control client becomes
    ``count`` group sends of ``size`` bytes each, back to back from this one handler,
    then ``"sent"`` back."""

    kind = "chat.message"  # through the members' handlers

    async def receive(self, text_data=None, bytes_data=None):
        count, size = (int(part) for part in text_data.split())
        text = "x" * size
        for _ in range(count):
            await self.channel_layer.group_send(GROUP, {"type": self.kind, "text": text})
        await self.send(text_data="sent")


class DirectLoopTriggerConsumer(LoopTriggerConsumer):
    """W3 on djwire's direct path: ``websocket.send`` group messages."""

    kind = "websocket.send"


class AsyncTaskConsumer(AsyncConsumer):
    """bench/workers.py: a background task on a named channel whose handler does nothing
    but count (``ChannelNameRouter`` -> consumer -> handler, as a ported app runs it)."""

    async def bench_task(self, message):
        tally.record(message["i"])


class SyncTaskConsumer(SyncConsumer):
    """bench/workers.py: the same task with a sync handler (run on a thread)."""

    def bench_task(self, message):
        tally.record(message["i"])
