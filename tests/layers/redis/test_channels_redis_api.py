"""The names of channels_redis's RedisChannelLayer that projects call, used as they do."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from djwire.layers.redis import RedisChannelLayer
from tests.support.redis_servers import RedisServer

from .conftest import MakeLayer, eventually

_names = itertools.count()


def connections_named(server: RedisServer, name: str) -> int:
    listing = server.command("CLIENT", "LIST")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    return sum(1 for line in text.splitlines() if f" name={name} " in f" {line} ")


@pytest.fixture
def client_name() -> str:
    return f"compat{next(_names)}"


def named_layer(server: RedisServer, name: str) -> RedisChannelLayer:
    """A layer whose connections the server lists under ``name``."""
    return RedisChannelLayer(hosts=[server.url], prefix=name, client_name=name)


@pytest.fixture
async def channel_layer(
    redis_server: RedisServer, client_name: str
) -> AsyncIterator[RedisChannelLayer]:
    """The teardown of countless projects' conftests."""
    layer = named_layer(redis_server, client_name)
    yield layer
    await layer.flush()
    await layer.close_pools()
    assert await eventually(lambda: connections_named(redis_server, client_name) == 0, 5)


async def test_close_pools_in_a_fixture_teardown_closes_the_connections(
    channel_layer: RedisChannelLayer, redis_server: RedisServer, client_name: str
) -> None:
    channel = await channel_layer.new_channel()
    await channel_layer.group_add("room", channel)
    await channel_layer.group_send("room", {"type": "hello"})
    assert (await asyncio.wait_for(channel_layer.receive(channel), 5))["type"] == "hello"
    assert connections_named(redis_server, client_name) > 0  # the fixture checks they go


async def test_the_layer_works_again_after_close_pools(channel_layer: RedisChannelLayer) -> None:
    await channel_layer.send("jobs", {"type": "first"})
    await channel_layer.close_pools()
    await channel_layer.send("jobs", {"type": "second"})
    got = [(await asyncio.wait_for(channel_layer.receive("jobs"), 5))["type"] for _ in range(2)]
    assert got == ["first", "second"]


def test_close_pools_across_async_to_sync_loops(
    redis_server: RedisServer, client_name: str
) -> None:
    # channels_redis's own pattern: each async_to_sync call is a new event loop, so
    # sends and receives close their pools inside the same call.
    layer = named_layer(redis_server, client_name)

    async def send_and_close(channel: str, message: dict[str, Any]) -> None:
        await layer.send(channel, message)
        await layer.close_pools()

    async def listen(channel: str) -> dict[str, Any]:
        message = await asyncio.wait_for(layer.receive(channel), 5)
        await layer.close_pools()
        return message

    first = async_to_sync(layer.new_channel)()
    second = async_to_sync(layer.new_channel)()
    async_to_sync(send_and_close)(first, {"type": "one"})
    async_to_sync(send_and_close)(second, {"type": "two"})
    assert async_to_sync(listen)(second)["type"] == "two"
    assert async_to_sync(listen)(first)["type"] == "one"
    async_to_sync(layer.flush)()
    async_to_sync(layer.close_pools)()
    assert async_to_sync(eventually)(lambda: connections_named(redis_server, client_name) == 0, 5)


async def test_wait_received_returns(channel_layer: RedisChannelLayer) -> None:
    await channel_layer.send("jobs", {"type": "x"})
    await channel_layer.receive("jobs")
    await asyncio.wait_for(channel_layer.wait_received(), 1)


@pytest.mark.parametrize("config", [{}, {"serializer_format": "json"}])
def test_serialize_and_deserialize_round_trip(config: dict[str, Any]) -> None:
    layer = RedisChannelLayer(**config)
    message = {"type": "chat.message", "text": "hé", "n": [1, 2]}
    data = layer.serialize(message)
    assert isinstance(data, bytes)
    assert layer.deserialize(data) == message


def test_serialize_encrypts_with_the_configured_keys() -> None:
    pytest.importorskip("cryptography")
    layer = RedisChannelLayer(symmetric_encryption_keys=["secret"])
    data = layer.serialize({"type": "x", "text": "plain words"})
    assert b"plain words" not in data
    assert layer.deserialize(data) == {"type": "x", "text": "plain words"}
    with pytest.raises(Exception):  # noqa: B017 - any key mismatch error will do
        RedisChannelLayer(symmetric_encryption_keys=["other"]).deserialize(data)


async def test_client_prefix_starts_this_processes_channel_names(make_layer: MakeLayer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    assert channel.startswith(f"specific.{layer.client_prefix}!")
    assert make_layer().client_prefix != layer.client_prefix


def test_ring_size_counts_the_hosts() -> None:
    assert RedisChannelLayer().ring_size == 1
    hosts = ["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1", ("127.0.0.1", 6380)]
    assert RedisChannelLayer(hosts=hosts).ring_size == 3
