"""The Redis layer between processes (one layer instance stands for one process)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from djwire.layers.redis import RedisChannelLayer
from tests.support.redis_servers import RedisServer

from .conftest import MakeLayer, eventually


async def receive(layer: RedisChannelLayer, channel: str, seconds: float = 5) -> dict:
    return await asyncio.wait_for(layer.receive(channel), seconds)


async def nothing_for(layer: RedisChannelLayer, channel: str, seconds: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), seconds)


async def test_group_send_crosses_redis_once_per_process_not_per_member(
    make_layer: MakeLayer, redis_server: RedisServer
) -> None:
    sender, receiver = make_layer(), make_layer()
    members = [await receiver.new_channel() for _ in range(1000)]
    await asyncio.gather(*(receiver.group_add("big", channel) for channel in members))
    receiver.feeds.inbox.stop()  # type: ignore[union-attr]  # hold the inbox still
    await asyncio.sleep(0.05)
    await sender.group_send("big", {"type": "news", "text": "x" * 100})
    inbox = receiver.keys.inbox(receiver.token)
    # One item for 1000 members: in the inbox, or (the feed was idle) in the batch the
    # push made for it.
    taken = receiver.keys.taken(inbox, receiver.token)
    batch = redis_server.command("LLEN", taken)
    assert redis_server.command("LLEN", inbox) + max(0, batch - 2) == 1
    got = await asyncio.gather(*(receive(receiver, channel) for channel in members))
    assert {message["text"] for message in got} == {"x" * 100}
    assert len(got) == 1000


async def test_point_to_point_between_processes_in_order(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    to_b = await b.new_channel()
    for n in range(50):
        await a.send(to_b, {"type": "n", "n": n, "blob": bytes([n]) * 10})
    got = [await receive(b, to_b) for _ in range(50)]
    assert [m["n"] for m in got] == list(range(50))
    assert got[7]["blob"] == b"\x07" * 10


async def test_another_process_can_add_and_discard_my_channel(make_layer: MakeLayer) -> None:
    owner, manager, broadcaster = make_layer(), make_layer(), make_layer()
    channel = await owner.new_channel()
    await manager.group_add("managed", channel)  # e.g. a worker subscribing a socket
    await broadcaster.group_send("managed", {"type": "one"})
    assert (await receive(owner, channel))["type"] == "one"
    assert await owner.group_channels("managed") == [channel]
    await manager.group_discard("managed", channel)
    await broadcaster.group_send("managed", {"type": "two"})
    await nothing_for(owner, channel)
    assert await owner.group_channels("managed") == []


async def test_named_channel_messages_go_to_exactly_one_process(make_layer: MakeLayer) -> None:
    sender, worker_a, worker_b = make_layer(), make_layer(), make_layer()
    got: list[tuple[str, int]] = []

    async def work(name: str, layer: RedisChannelLayer) -> None:
        while True:
            message = await layer.receive("tasks")
            got.append((name, message["n"]))

    workers = [
        asyncio.ensure_future(work("a", worker_a)),
        asyncio.ensure_future(work("b", worker_b)),
    ]
    await asyncio.sleep(0.05)
    for n in range(60):
        await sender.send("tasks", {"type": "task", "n": n})
    await eventually(lambda: len(got) >= 60, seconds=10)
    for worker in workers:
        worker.cancel()
    assert sorted(n for _, n in got) == list(range(60))
    assert {name for name, _ in got} == {"a", "b"}  # both shared the work


async def test_receivers_are_woken_by_redis_not_by_polling(make_layer: MakeLayer) -> None:
    sender = make_layer(poll_interval=30)
    receiver = make_layer(poll_interval=30)
    channel = await receiver.new_channel()
    for round_ in range(3):
        waiting = asyncio.ensure_future(receiver.receive(channel))
        named = asyncio.ensure_future(receiver.receive("woken"))
        await asyncio.sleep(0.1)  # both feeds now idle, waiting for a wake-up
        await sender.send(channel, {"type": "n", "n": round_})
        await sender.send("woken", {"type": "n", "n": round_})
        assert (await asyncio.wait_for(waiting, 2))["n"] == round_
        assert (await asyncio.wait_for(named, 2))["n"] == round_


async def test_group_with_members_in_many_processes_and_named_channels(
    make_layer: MakeLayer,
) -> None:
    processes = [make_layer() for _ in range(4)]
    members = {layer: [await layer.new_channel() for _ in range(3)] for layer in processes}
    for layer, channels in members.items():
        for channel in channels:
            await layer.group_add("everyone", channel)
    await processes[0].group_add("everyone", "audit-log")
    await processes[1].group_send("everyone", {"type": "hello"})
    for layer, channels in members.items():
        for channel in channels:
            assert (await receive(layer, channel))["type"] == "hello"
    assert (await receive(processes[2], "audit-log"))["type"] == "hello"
    assert len(await processes[3].group_channels("everyone")) == 13


async def test_group_send_to_a_full_named_member_drops_and_counts(make_layer: MakeLayer) -> None:
    sender = make_layer(channel_capacity={"slow-*": 2})
    for n in range(2):
        await sender.send("slow-member", {"type": "fill", "n": n})
    await sender.group_add("g", "slow-member")
    await sender.group_send("g", {"type": "news"})  # does not raise
    assert sender.stats.dropped_full == 1


async def test_arrivals_beyond_a_local_channels_capacity_are_dropped_counted_and_logged(
    make_layer: MakeLayer, caplog: pytest.LogCaptureFixture
) -> None:
    sender, receiver = make_layer(capacity=2), make_layer(capacity=2)
    channel = await receiver.new_channel()
    with caplog.at_level(logging.WARNING, logger="djwire.layers"):
        for n in range(3):
            await sender.send(channel, {"type": "n", "n": n})  # the inbox has room
        assert await eventually(lambda: receiver.stats.dropped_full == 1, seconds=5)
    assert [(await receive(receiver, channel))["n"] for _ in range(2)] == [0, 1]
    assert f"Dropped a message for {channel} (its queue is full)" in caplog.text
    assert "group" not in caplog.text  # a point-to-point message, not a group's


async def test_messages_from_another_process_expire(make_layer: MakeLayer) -> None:
    sender, receiver = make_layer(expiry=1), make_layer(expiry=1)
    channel = await receiver.new_channel()
    receiver.feeds.inbox.stop()  # type: ignore[union-attr]
    await asyncio.sleep(0.05)
    await sender.send(channel, {"type": "stale"})
    await asyncio.sleep(1.2)
    await sender.send(channel, {"type": "fresh"})
    assert (await receive(receiver, channel))["type"] == "fresh"
    assert receiver.stats.expired == 1


async def test_layer_works_again_after_close(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    channel = await b.new_channel()
    await a.send(channel, {"type": "before"})
    assert (await receive(b, channel))["type"] == "before"
    await a.close()
    await b.close()
    await a.send(channel, {"type": "after"})
    assert (await receive(b, channel))["type"] == "after"


async def test_receiving_on_another_processes_channel_is_refused(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    channel = await b.new_channel()
    with pytest.raises(ValueError, match="another process"):
        await a.receive(channel)


async def test_sends_from_sync_threads_reach_an_async_receiver(make_layer: MakeLayer) -> None:
    from asgiref.sync import async_to_sync

    sender, receiver = make_layer(), make_layer()
    channel = await receiver.new_channel()
    await receiver.group_add("from-sync", channel)

    def sync_code(n: int) -> None:  # e.g. Post.save() in a view
        async_to_sync(sender.group_send)("from-sync", {"type": "n", "n": n})

    for n in range(5):
        await asyncio.to_thread(sync_code, n)
    assert [(await receive(receiver, channel))["n"] for _ in range(5)] == list(range(5))


# -- straight to sockets ------------------------------------------------------------------


@dataclass
class RecordingSocket:
    """A DirectSocket test double: records frames; the encoder counts its calls."""

    frame_encoder: CountingEncoder
    frames: list[bytes] = field(default_factory=list)
    write_paused: bool = False  # a client that keeps up

    def write_frame(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return True


class CountingEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str | None, data: bytes | None) -> bytes:
        self.calls += 1
        return b"\x81" + (text or "").encode()


async def test_group_broadcast_from_another_process_is_encoded_once_per_process(
    make_layer: MakeLayer,
) -> None:
    sender, server = make_layer(), make_layer()
    encoder = CountingEncoder()
    sockets = []
    for _ in range(50):
        channel = await server.new_channel()
        socket = RecordingSocket(encoder)
        assert server.attach_socket(channel, socket)
        await server.group_add("live", channel)
        sockets.append(socket)
    await sender.group_send("live", {"type": "websocket.send", "text": "tick"})
    await eventually(lambda: all(socket.frames for socket in sockets), seconds=5)
    assert all(socket.frames == [b"\x81tick"] for socket in sockets)
    assert encoder.calls == 1
    assert server.stats.direct_deliveries == 50
    assert not sender.attach_socket(channel, RecordingSocket(encoder))  # not its channel


# -- the processes a group message goes to ------------------------------------------------


def inbox_length(server: RedisServer, layer: RedisChannelLayer) -> int:
    return int(server.command("LLEN", layer.keys.inbox(layer.token)))


async def test_discarding_another_processes_last_member_stops_pushes_to_it(
    make_layer: MakeLayer, redis_server: RedisServer
) -> None:
    manager, owner = make_layer(), make_layer()
    mine, theirs = await manager.new_channel(), await owner.new_channel()
    await manager.group_add("room", mine)
    await owner.group_add("room", theirs)
    await manager.group_discard("room", theirs)  # e.g. a worker removing a socket
    await eventually(lambda: not owner.group_ops.own.members("room"), seconds=5)
    owner.feeds.inbox.stop()  # type: ignore[union-attr]  # count what arrives from now on
    await asyncio.sleep(0.05)
    for n in range(5):
        await manager.group_send("room", {"type": "n", "n": n})
        assert (await receive(manager, mine))["n"] == n
    assert inbox_length(redis_server, owner) == 0  # not one useless push per send


async def test_discarding_one_of_two_members_of_another_process_keeps_pushing(
    make_layer: MakeLayer, redis_server: RedisServer
) -> None:
    manager, owner = make_layer(), make_layer()
    first, second = await owner.new_channel(), await owner.new_channel()
    await owner.group_add("room", first)
    await owner.group_add("room", second)
    await manager.group_discard("room", first)
    await manager.group_send("room", {"type": "still"})
    assert (await receive(owner, second))["type"] == "still"
    await nothing_for(owner, first)
    await manager.group_discard("room", second)
    await eventually(lambda: not owner.group_ops.own.members("room"), seconds=5)
    owner.feeds.inbox.stop()  # type: ignore[union-attr]
    await asyncio.sleep(0.05)
    await manager.group_send("room", {"type": "nobody"})
    assert inbox_length(redis_server, owner) == 0


async def test_a_process_stays_in_the_group_when_another_adds_its_channel_meanwhile(
    make_layer: MakeLayer,
) -> None:
    # The owner discards its last member it knows of while another process has just
    # added one of its channels (the owner has not read that JOIN yet): the owner
    # must stay a target of the group.
    owner, manager = make_layer(), make_layer()
    known = f"specific.{owner.token}!known"  # names only: the owner's feed is not running
    added = f"specific.{owner.token}!added"
    await owner.group_add("room", known)
    await manager.group_add("room", added)
    await owner.group_discard("room", known)
    await manager.group_send("room", {"type": "for-added"})
    assert (await receive(owner, added))["type"] == "for-added"


async def test_a_process_whose_members_expired_leaves_the_group(
    make_layer: MakeLayer, redis_server: RedisServer
) -> None:
    sender, owner = make_layer(group_expiry=1), make_layer(group_expiry=1)
    for _ in range(3):
        await sender.group_add("short", await owner.new_channel())
    await eventually(lambda: len(owner.group_ops.own.members("short")) == 3, seconds=5)
    owner.feeds.inbox.stop()  # type: ignore[union-attr]
    await asyncio.sleep(1.1)
    await sender.group_send("short", {"type": "late"})
    assert inbox_length(redis_server, owner) == 0
    key = sender.keys.group_processes("short")
    assert redis_server.command("ZCARD", key) == 0
