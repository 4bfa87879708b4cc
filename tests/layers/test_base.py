"""The contract's own parts: what every layer inherits from BaseChannelLayer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from djwire.consumer import AsyncConsumer
from djwire.exceptions import StopConsumer
from djwire.layers import BaseChannelLayer, LayerStats, channel_layers
from djwire.layers.base import LOG_EVERY, count_loss
from djwire.testing import ApplicationCommunicator


class QueueLayer(BaseChannelLayer):
    """A third-party layer: send, receive and new_channel only, no claim_receive."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.received = 0

    def _queue(self, channel: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(channel, asyncio.Queue())

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self._queue(channel).put_nowait(message)

    async def receive(self, channel: str) -> dict[str, Any]:
        message = await self._queue(channel).get()
        self.received += 1
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}queue!{self.random_token()}"


class Echo(AsyncConsumer):
    async def chat_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "echo", "text": message["text"], "channel": self.channel_name})

    async def chat_stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


async def test_claim_receive_defaults_to_receive() -> None:
    layer = QueueLayer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "x"})
    assert await layer.claim_receive(channel) == {"type": "x"}
    assert layer.received == 1


async def test_a_layer_without_its_own_claim_receive_still_feeds_consumers() -> None:
    layer = QueueLayer()
    old = channel_layers.set("default", layer)
    try:
        communicator = ApplicationCommunicator(Echo.as_asgi(), {"type": "testing"})
        await communicator.send_input({"type": "chat.message", "text": "hello"})
        channel = (await communicator.receive_output())["channel"]
        await layer.send(channel, {"type": "chat.message", "text": "via the layer"})
        assert (await communicator.receive_output())["text"] == "via the layer"
        assert layer.received == 1
        await communicator.send_input({"type": "chat.stop"})
        await communicator.wait()
    finally:
        channel_layers.set("default", old)


def test_losses_are_counted_every_time_and_logged_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = LayerStats()
    log = logging.getLogger("djwire.layers.test")
    with caplog.at_level(logging.WARNING, logger="djwire.layers.test"):
        for _ in range(2 * LOG_EVERY):
            count_loss(stats, "dropped_full", log, "Dropped one for %s; %d so far", "ch")
        for _ in range(3):
            count_loss(stats, "malformed", log, "Skipped one; %d so far")
    assert stats.dropped_full == 2 * LOG_EVERY
    assert stats.extra == {"malformed": 3}
    assert [record.getMessage() for record in caplog.records] == [
        "Dropped one for ch; 1 so far",
        f"Dropped one for ch; {LOG_EVERY} so far",
        f"Dropped one for ch; {2 * LOG_EVERY} so far",
        "Skipped one; 1 so far",
    ]
