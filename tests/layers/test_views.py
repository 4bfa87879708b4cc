"""layer.channels and layer.groups: Channels-shaped, read-only, as projects' tests read them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from djwire.generic.websocket import AsyncJsonWebsocketConsumer
from djwire.layers import InMemoryChannelLayer, get_channel_layer
from djwire.testing import WebsocketCommunicator


class Chat(AsyncJsonWebsocketConsumer):
    groups = ["lobby"]

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.channel_layer.group_send("lobby", {"type": "chat.message", **content})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"text": event["text"]})


@pytest.fixture
def layer(settings: Any) -> InMemoryChannelLayer:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    return layer


async def test_an_untouched_layer_compares_equal_to_empty_dicts(
    layer: InMemoryChannelLayer,
) -> None:
    assert layer.channels == {}
    assert {} == layer.channels  # noqa: SIM300 - the dict on the left must work too
    assert layer.groups == {}
    assert not layer.channels and not layer.groups
    assert len(layer.channels) == 0 and list(layer.groups) == []


async def test_a_connected_consumers_channel_and_group_are_listed_until_it_leaves(
    layer: InMemoryChannelLayer,
) -> None:
    communicator = WebsocketCommunicator(Chat.as_asgi(), "/chat/")
    connected, _ = await communicator.connect()
    assert connected
    # The idiom of projects' tests: the only channel is the consumer's.
    channel_name = list(layer.channels.keys())[0]  # noqa: RUF015 - as projects write it
    assert len(layer.channels) == 1 and channel_name in layer.channels
    assert layer.channels[channel_name].empty()  # waiting, nothing queued
    assert "lobby" in layer.groups
    assert list(layer.groups["lobby"]) == [channel_name]
    assert channel_name in layer.groups["lobby"]
    joined = layer.groups["lobby"][channel_name]
    assert time.time() - 5 < joined <= time.time()  # a join time, as in Channels

    await communicator.send_json_to({"text": "hi"})
    assert await communicator.receive_json_from() == {"text": "hi"}

    await communicator.disconnect()
    assert "lobby" not in layer.groups
    assert layer.groups == {}
    assert layer.channels == {}


async def test_queued_messages_show_until_received(layer: InMemoryChannelLayer) -> None:
    await layer.send("worker.jobs", {"type": "job", "n": 1})
    await layer.send("worker.jobs", {"type": "job", "n": 2})
    assert dict(layer.channels).keys() == {"worker.jobs"}
    queue = layer.channels["worker.jobs"]
    assert queue.qsize() == 2 and not queue.empty() and queue.maxsize == layer.capacity
    await layer.receive("worker.jobs")
    assert queue.qsize() == 1  # a view: it follows the layer
    await layer.receive("worker.jobs")
    assert "worker.jobs" not in layer.channels
    with pytest.raises(KeyError):
        layer.channels["worker.jobs"]


async def test_a_waiting_receiver_lists_its_channel_and_cancelling_it_does_not(
    layer: InMemoryChannelLayer,
) -> None:
    waiting = asyncio.ensure_future(layer.receive("replies"))
    await asyncio.sleep(0)
    assert list(layer.channels) == ["replies"]
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert layer.channels == {}


async def test_expired_messages_and_memberships_are_not_listed() -> None:
    layer = InMemoryChannelLayer(expiry=10, group_expiry=20)
    now = [0.0]
    layer.local.clock = layer.memberships.clock = lambda: now[0]
    await layer.send("stale", {"type": "x"})
    await layer.group_add("room", "member")
    assert len(layer.channels) == 1 and len(layer.groups) == 1
    now[0] = 11.0
    assert layer.channels == {}  # nothing was swept yet: the view reads deadlines
    assert len(layer.groups["room"]) == 1
    now[0] = 21.0
    assert layer.groups == {}
    assert layer.stats.expired == 0  # reading dropped nothing


async def test_flush_empties_the_views(layer: InMemoryChannelLayer) -> None:
    await layer.send("a", {"type": "x"})
    await layer.group_add("g", "a")
    await layer.flush()
    assert layer.channels == {} and layer.groups == {}


async def test_the_views_cannot_change_the_layer(layer: InMemoryChannelLayer) -> None:
    await layer.group_add("g", "a")
    with pytest.raises(TypeError):
        layer.channels["a"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        layer.groups["g"]["b"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        layer.groups["g"].pop("a")  # type: ignore[attr-defined]
    assert list(layer.groups["g"]) == ["a"]


async def test_members_compare_like_a_dict(layer: InMemoryChannelLayer) -> None:
    await layer.group_add("g", "a")
    members = layer.groups["g"]
    assert members == {"a": members["a"]}
    assert members != {"b": members["a"]}
    assert layer.groups.get("missing", {}) == {}
    await layer.group_discard("g", "a")
    assert members == {}
