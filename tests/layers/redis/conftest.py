"""Fixtures for the Redis layer's own tests: real servers, layers that clean up."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from djwire.layers.redis import RedisChannelLayer
from tests.support.redis_servers import RedisServer, private_server, single_server

_prefixes = itertools.count()

MakeLayer = Callable[..., RedisChannelLayer]


async def eventually(condition: Callable[[], bool], seconds: float, step: float = 0.01) -> bool:
    """Wait (bounded) until ``condition()`` holds; returns its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(step)
    return condition()


@pytest.fixture(scope="session")
def redis_server(pytestconfig: pytest.Config) -> RedisServer:
    return single_server(pytestconfig)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A server for this test alone (it may be restarted or killed)."""
    with private_server() as server:
        yield server


async def _made_layers(default_hosts: list[Any]) -> AsyncIterator[tuple[MakeLayer, list[Any]]]:
    made: list[RedisChannelLayer] = []
    prefix = f"t{next(_prefixes)}"

    def make(**config: Any) -> RedisChannelLayer:
        config.setdefault("hosts", default_hosts)
        config.setdefault("prefix", prefix)
        layer = RedisChannelLayer(**config)
        made.append(layer)
        return layer

    yield make, made
    for layer in made:
        with contextlib.suppress(Exception):  # the server may be gone on purpose
            await layer.flush()
        await layer.close()


@pytest.fixture
async def make_layer(redis_server: RedisServer) -> AsyncIterator[MakeLayer]:
    """Layers on the shared server, sharing one fresh prefix (so they talk)."""
    async for make, _ in _made_layers([redis_server.url]):
        yield make


@pytest.fixture
async def make_private_layer(private_redis: RedisServer) -> AsyncIterator[MakeLayer]:
    async for make, _ in _made_layers([private_redis.url]):
        yield make


@pytest.fixture
def make_layer_sync(redis_server: RedisServer) -> Iterator[MakeLayer]:
    """For sync tests that drive layers through async_to_sync (a new loop per call)."""
    made: list[RedisChannelLayer] = []
    prefix = f"t{next(_prefixes)}"

    def make(**config: Any) -> RedisChannelLayer:
        config.setdefault("hosts", [redis_server.url])
        config.setdefault("prefix", prefix)
        layer = RedisChannelLayer(**config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        async_to_sync(layer.flush)()
        async_to_sync(layer.close)()
