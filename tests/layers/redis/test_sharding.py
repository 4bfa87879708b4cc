"""Sharding: consistent hashing that sender and receiver agree on."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from djwire.layers.redis.sharding import Keys, jump_hash, owner_token
from tests.support.redis_servers import RedisServer, shard_servers

from .conftest import _made_layers


def test_jump_hash_is_stable_balanced_and_moves_little_when_growing() -> None:
    keys = [f"channel-{n}".encode() for n in range(3000)]
    three = [jump_hash(key, 3) for key in keys]
    assert three == [jump_hash(key, 3) for key in keys]
    counts = Counter(three)
    assert all(800 < counts[bucket] < 1200 for bucket in range(3))
    four = [jump_hash(key, 4) for key in keys]
    moved = sum(a != b for a, b in zip(three, four, strict=True))
    assert moved < 3000 * 0.35  # ideal: 1/4; crc32 % n would move ~3/4
    assert all(b == 3 for a, b in zip(three, four, strict=True) if a != b)


@pytest.mark.parametrize(
    ("name", "token"),
    [("specific.abc123!xyz", "abc123"), ("worker.abc!", "abc"), ("abc!x", "abc"), ("plain", None)],
)
def test_owner_token_is_the_process_part_of_a_name(name: str, token: str | None) -> None:
    assert owner_token(name) == token


@pytest.mark.parametrize(
    "name", ["specific.abc123!xyz", "a.b.c!d!e", "worker.abc!", "abc!x", "!x", "plain", "a.b"]
)
def test_the_group_scripts_read_the_owner_token_as_python_does(
    redis_server: RedisServer, name: str
) -> None:
    from djwire.layers.redis.scripts import _GROUP_FUNCTIONS

    source = _GROUP_FUNCTIONS + "return owner(ARGV[1])"
    reply = redis_server.command("EVAL", source, 4, "k1", "k2", "k3", "k4", name)
    assert (reply.decode() if reply is not None else None) == owner_token(name)


def test_every_key_of_a_thing_shares_one_cluster_hash_tag() -> None:
    from redis.crc import key_slot

    keys = Keys("asgi")
    inbox = keys.inbox("tok")
    related = [
        inbox,
        keys.rejections("tok"),
        keys.taken(inbox, "me"),
        keys.idle(inbox),
        keys.wake(inbox),
    ]
    assert len({key_slot(key) for key in related}) == 1
    group = [
        keys.group_members("g"),
        keys.group_processes("g"),
        keys.group_named("g"),
        keys.group_counts("g"),
    ]
    assert len({key_slot(key) for key in group}) == 1


@pytest.fixture
async def make_sharded_layer(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    servers = shard_servers(pytestconfig)
    async for make, _ in _made_layers([server.url for server in servers]):
        yield make, servers


async def test_sender_and_receiver_agree_on_the_shard(make_sharded_layer) -> None:  # type: ignore[no-untyped-def]
    make, servers = make_sharded_layer
    senders = [make() for _ in range(3)]
    receivers = [make() for _ in range(6)]
    channels = [await layer.new_channel() for layer in receivers]
    for sender in senders:
        for layer, channel in zip(receivers, channels, strict=True):
            await sender.send(channel, {"type": "hi"})
            assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "hi"
    # Each process inbox lives on exactly the shard its tag hashes to.
    for layer in receivers:
        layer.feeds.inbox.stop()  # type: ignore[union-attr]  # let items stay in Redis
    await asyncio.sleep(0.05)
    for layer in receivers:
        await senders[0].send(f"specific.{layer.token}!idle", {"type": "parked"})
    for layer in receivers:
        inbox = layer.keys.inbox(layer.token)
        # In the inbox, or (the feed was idle) in the batch the push made for it.
        held = (inbox, layer.keys.taken(inbox, layer.token))
        expected = servers[jump_hash(layer.keys.inbox_tag(layer.token).encode(), 3)]
        assert [server for server in servers if server.command("EXISTS", *held)] == [expected]


async def test_named_channels_and_groups_spread_over_shards(make_sharded_layer) -> None:  # type: ignore[no-untyped-def]
    make, servers = make_sharded_layer
    layer = make()
    for n in range(30):
        await layer.send(f"named-{n}", {"type": "x"})
        await layer.group_add(f"group-{n}", f"named-{n}")
    used = [server for server in servers if _keys_with_prefix(server, layer.prefix)]
    assert len(used) == 3
    for n in range(30):
        await layer.group_send(f"group-{n}", {"type": "y"})
        assert (await asyncio.wait_for(layer.receive(f"named-{n}"), 5))["type"] == "x"
        assert (await asyncio.wait_for(layer.receive(f"named-{n}"), 5))["type"] == "y"


def _keys_with_prefix(server: RedisServer, prefix: str) -> list[bytes]:
    cursor, found = 0, []
    while True:
        cursor, keys = server.command("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", 1000)
        found += keys
        if int(cursor) == 0:
            return found


async def test_cluster_keys_route_by_slot_and_wakes_use_sharded_pubsub(
    pytestconfig: pytest.Config,
) -> None:
    from tests.support.redis_servers import cluster

    urls = cluster(pytestconfig).urls
    async for make, _ in _made_layers(urls[:1]):  # one seed is enough to find the rest
        sender = make(cluster=True, poll_interval=30)
        receiver = make(cluster=True, poll_interval=30)
        channels = [await receiver.new_channel() for _ in range(3)]
        for round_ in range(3):
            named = asyncio.ensure_future(receiver.receive(f"cluster-named-{round_}"))
            waiting = asyncio.ensure_future(receiver.receive(channels[round_]))
            await asyncio.sleep(0.1)
            await sender.send(channels[round_], {"type": "n", "n": round_})
            await sender.send(f"cluster-named-{round_}", {"type": "n", "n": round_})
            # poll_interval is 30 s: only an SPUBLISH wake-up delivers this fast
            assert (await asyncio.wait_for(waiting, 3))["n"] == round_
            assert (await asyncio.wait_for(named, 3))["n"] == round_
        assert len(receiver.router.masters()) == 3
