"""Sentinel: the layer finds the master through Sentinels and follows a failover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from djwire.layers.redis import RedisChannelLayer
from tests.support.redis_servers import SentinelSetup


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    setup = SentinelSetup().start()
    try:
        yield setup
    finally:
        setup.cleanup()


def _wait_for_new_master(setup: SentinelSetup, old_port: int, seconds: float = 20) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            port = setup.current_master_port()
        except Exception:  # a sentinel may be busy electing
            port = old_port
        if port != old_port:
            return port
        time.sleep(0.1)
    raise AssertionError("Sentinels did not fail over")


async def test_sentinel_master_is_found_and_a_failover_is_followed(
    sentinels: SentinelSetup,
) -> None:
    hosts = [sentinels.host_config()]
    options = {"prefix": "sentinel", "reconnect_backoff": (0.05, 0.3), "retry_timeout": 1.0}
    sender = RedisChannelLayer(hosts=hosts, **options)
    receiver = RedisChannelLayer(hosts=hosts, **options)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("watched", channel)
        await sender.group_send("watched", {"type": "before"})
        assert (await asyncio.wait_for(receiver.receive(channel), 5))["type"] == "before"

        old_port = sentinels.master.port
        sentinels.master.stop(hard=True)  # the master crashes
        new_port = await asyncio.to_thread(_wait_for_new_master, sentinels, old_port)
        assert sentinels.replica is not None and new_port == sentinels.replica.port

        # Point to point and groups work against the promoted replica.
        deadline = time.monotonic() + 10
        while True:
            await sender.send(channel, {"type": "after"})
            try:
                message = await asyncio.wait_for(receiver.receive(channel), 1)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no delivery after the failover"
        assert message["type"] == "after"
        await sender.group_send("watched", {"type": "group-after"})
        assert (await asyncio.wait_for(receiver.receive(channel), 5))["type"] == "group-after"
    finally:
        await sender.close()
        await receiver.close()
