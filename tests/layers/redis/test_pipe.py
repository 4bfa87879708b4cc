"""The command pipe: commands that ride on the next write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from djwire.layers.base import LayerStats
from djwire.layers.redis.accounting import OutageMonitor
from djwire.layers.redis.config import Limits
from djwire.layers.redis.connection import Address
from djwire.layers.redis.nodes import StaticNode
from djwire.layers.redis.pipe import CommandPipe
from tests.support.redis_servers import RedisServer


@pytest.fixture
async def pipe(redis_server: RedisServer) -> AsyncIterator[CommandPipe]:
    """A pipe to the test server, not connected yet."""
    node = StaticNode(Address("127.0.0.1", redis_server.port))
    made = CommandPipe(node, Limits(), OutageMonitor(LayerStats()))
    try:
        yield made
    finally:
        await made.aclose()


async def test_a_riding_command_goes_out_with_the_next_write(pipe: CommandPipe) -> None:
    await pipe.call((b"PING",))  # connected
    riding = pipe.ride((b"ECHO", b"rider"), delay=3600)
    await asyncio.sleep(0.05)
    assert not riding.done()  # nothing else was written: it waits
    assert await asyncio.wait_for(pipe.call((b"ECHO", b"driver")), 5) == b"driver"
    # Replies come in order, and the rider went out first, with the same write.
    assert riding.done() and riding.result() == b"rider"


async def test_a_riding_command_goes_out_alone_after_its_delay(pipe: CommandPipe) -> None:
    await pipe.call((b"PING",))
    riding = pipe.ride((b"ECHO", b"alone"), delay=0.01)
    assert await asyncio.wait_for(riding, 5) == b"alone"


async def test_an_expedited_riding_command_goes_out_at_once(pipe: CommandPipe) -> None:
    await pipe.call((b"PING",))
    riding = pipe.ride((b"ECHO", b"hurry"), delay=3600)
    pipe.expedite()
    assert await asyncio.wait_for(riding, 5) == b"hurry"


async def test_a_riding_command_waits_for_the_connection(pipe: CommandPipe) -> None:
    # The fixture has not connected the pipe yet.
    riding = pipe.ride((b"ECHO", b"first"), delay=0.01)
    assert await asyncio.wait_for(riding, 5) == b"first"
