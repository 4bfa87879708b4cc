"""The IPC layer between real processes: peers are separate Python processes on the
test's shared space; the test process takes part with a layer of its own."""

from __future__ import annotations

import asyncio
import signal

import pytest

from djwire.exceptions import ChannelFull, MessageTooLarge

from .conftest import MakeLayer, PeerError, eventually
from .peer import checked, intact

pytestmark = pytest.mark.asyncio

TIMEOUT = 10


async def receive(layer, channel: str, seconds: float = TIMEOUT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), seconds)


async def nothing_for(layer, channel: str, seconds: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), seconds)


async def test_point_to_point_both_ways_in_order(make_layer: MakeLayer, peers) -> None:
    layer = make_layer()
    (peer,) = await peers(1)
    mine, theirs = await layer.new_channel(), await peer.call("new_channel")
    for n in range(50):
        await layer.send(theirs, {"type": "n", "n": n})
    await peer.call("send_checked", channel=mine, count=50, name="peer")
    got = await peer.call("receive_many", channel=theirs, count=50)
    assert [message["n"] for message in got] == list(range(50))
    back = [await receive(layer, mine) for _ in range(50)]
    assert [message["n"] for message in back] == list(range(50))
    assert all(intact(message) for message in back)


async def test_several_processes_send_and_receive_at_once(make_layer: MakeLayer, peers) -> None:
    # Capacity for whole bursts: a burst that arrives faster than its receiver takes
    # it is dropped beyond capacity (as in the Redis layer), which is not tested here.
    layer = make_layer(capacity=1000)
    group = await peers(4, capacity=1000)
    channels = await asyncio.gather(*(peer.call("new_channel") for peer in group))
    count = 200
    # Every peer receives from the three others while sending to them, at once.
    receiving = [
        peer.request("receive_many", channel=channel, count=3 * count, timeout=30)
        for peer, channel in zip(group, channels, strict=True)
    ]
    sending = [
        peer.request("send_checked", channel=channel, count=count, name=f"p{i}", size=300)
        for i, peer in enumerate(group)
        for j, channel in enumerate(channels)
        if i != j
    ]
    # ... and all of them (and this process) share one named channel.
    work = [
        peer.request("send_checked", channel="work", count=50, name=f"w{i}")
        for i, peer in enumerate(group)
    ]
    # Each taker stops after a quiet second; all 200 are taken long before.
    takers = [peer.request("receive_many", channel="work", count=200, timeout=2) for peer in group]
    mine = []
    async with asyncio.timeout(30):
        while len(mine) < 200 and not all(t.done() for t in takers):
            try:
                mine.append(await asyncio.wait_for(layer.receive("work"), 1.5))
            except TimeoutError:
                break
    assert await asyncio.gather(*sending) == [count] * len(sending)
    assert await asyncio.gather(*work) == [50] * 4
    for i, got in enumerate(await asyncio.gather(*receiving)):
        assert len(got) == 3 * count
        assert all(intact(message) for message in got)
        for sender in {f"p{j}" for j in range(4)} - {f"p{i}"}:
            assert [m["n"] for m in got if m["from"] == sender] == list(range(count))
    taken = [m for got in await asyncio.gather(*takers) for m in got] + mine
    # Each message on the named channel went to exactly one process.
    assert sorted((m["from"], m["n"]) for m in taken) == sorted(
        (f"w{i}", n) for i in range(4) for n in range(50)
    )


async def test_group_send_reaches_members_in_every_process_once(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer()
    group = await peers(3)
    members = {}
    for peer in group:
        members[peer] = [await peer.call("new_channel") for _ in range(5)]
        for channel in members[peer]:
            await peer.call("group_add", group="room", channel=channel)
    mine = [await layer.new_channel() for _ in range(5)]
    for channel in mine:
        await layer.group_add("room", channel)
    await layer.group_add("room", "room-worker")  # a named channel member too
    await group[0].call("group_send", group="room", message={"type": "chat", "text": "hi"})
    received = await asyncio.gather(
        *(
            peer.request("receive_many", channel=channel, count=2, timeout=0.3)
            for peer in group
            for channel in members[peer]
        )
    )
    assert received == [[{"type": "chat", "text": "hi"}]] * 15
    for channel in mine:
        assert await receive(layer, channel) == {"type": "chat", "text": "hi"}
        await nothing_for(layer, channel, 0.05)
    assert await receive(layer, "room-worker") == {"type": "chat", "text": "hi"}
    assert sorted(await layer.group_channels("room")) == sorted(
        [c for channels in members.values() for c in channels] + mine + ["room-worker"]
    )


async def test_a_process_adds_another_processes_channel_and_a_third_sends(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer()
    owner, manager = await peers(2)
    channel = await owner.call("new_channel")
    await manager.call("group_add", group="managed", channel=channel)
    await layer.group_send("managed", {"type": "one"})
    assert await owner.call("receive", channel=channel) == {"type": "one"}
    await manager.call("group_discard", group="managed", channel=channel)
    await layer.group_send("managed", {"type": "two"})
    assert await owner.call("receive_many", channel=channel, count=1, timeout=0.3) == []
    await manager.call("group_add", group="managed", channel=channel)
    await layer.group_send("managed", {"type": "three"})
    assert await owner.call("receive", channel=channel) == {"type": "three"}


async def test_group_message_crosses_once_per_process_not_per_member(
    make_layer: MakeLayer,
) -> None:
    sender, receiver = make_layer(), make_layer()
    members = [await receiver.new_channel() for _ in range(1000)]
    for channel in members:
        await receiver.group_add("big", channel)
    frames = []
    handle = receiver._on_frame
    receiver._on_frame = lambda frame: (frames.append(frame[0]), handle(frame))  # type: ignore[method-assign]
    receiver._inbox.on_frame = receiver._on_frame  # type: ignore[union-attr]
    await sender.group_send("big", {"type": "news", "text": "x" * 100})
    got = await asyncio.gather(*(receive(receiver, channel) for channel in members))
    assert {message["text"] for message in got} == {"x" * 100}
    assert frames == [1]  # one GROUP frame for 1000 members


async def test_a_process_that_stops_reading_makes_sends_full_not_memory(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer(max_message_size=64 * 1024, peer_buffer_size=256 * 1024)
    (peer,) = await peers(1)
    channel = await peer.call("new_channel")
    await peer.call("group_add", group="stalled", channel=channel)
    peer.signal(signal.SIGSTOP)
    try:
        sent = 0
        with pytest.raises(ChannelFull):
            for sent in range(10_000):  # bounded: the kernel and 256 KiB fill far sooner
                await layer.send(channel, checked("me", sent, 16 * 1024))
                await asyncio.sleep(0)  # let the buffer go out as far as it can
        await layer.group_send("stalled", checked("me", -1, 16 * 1024))  # as large: no room
        assert layer.stats.dropped_full == 1
        assert len(layer._links[peer.token].buffered) <= 256 * 1024
    finally:
        peer.signal(signal.SIGCONT)
    got = await peer.call("receive_many", channel=channel, count=sent, timeout=20)
    assert [message["n"] for message in got] == list(range(sent))
    assert all(intact(message) for message in got)
    await layer.send(channel, {"type": "after"})
    assert await peer.call("receive", channel=channel) == {"type": "after"}


async def test_messages_that_wait_past_expiry_in_a_stopped_process_are_dropped(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer(expiry=1)
    (peer,) = await peers(1)
    channel = await peer.call("new_channel")
    peer.signal(signal.SIGSTOP)
    try:
        for n in range(5):
            await layer.send(channel, {"type": "old", "n": n})
        await asyncio.sleep(1.5)
    finally:
        peer.signal(signal.SIGCONT)
    assert await peer.call("receive_many", channel=channel, count=1, timeout=0.5) == []
    assert (await peer.call("stats"))["expired"] == 5


async def test_messages_up_to_max_message_size_cross_and_larger_ones_raise(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer(max_message_size=3 << 20, peer_buffer_size=8 << 20)
    (peer,) = await peers(1, max_message_size=3 << 20)
    channel = await peer.call("new_channel")
    big = checked("me", 0, 3_000_000)
    await layer.send(channel, big)
    await layer.send("bulk", big)
    assert await peer.call("receive", channel=channel) == big
    assert await peer.call("receive", channel="bulk") == big
    too_big = checked("me", 1, 3_200_000)
    for target in (channel, "bulk"):
        with pytest.raises(MessageTooLarge):
            await layer.send(target, too_big)
    mine = await layer.new_channel()
    await layer.group_add("g", mine)
    await layer.group_add("g", channel)
    with pytest.raises(MessageTooLarge):
        await layer.group_send("g", too_big)
    await nothing_for(layer, mine)  # all or nothing: not even the local member got it
    with pytest.raises(PeerError, match="MessageTooLarge"):
        await peer.call("send", channel=mine, message=too_big)


async def test_receivers_are_woken_without_polling(make_layer: MakeLayer, peers) -> None:
    layer = make_layer(poll_interval=30)  # only a wake-up can deliver in time
    (peer,) = await peers(1, poll_interval=30)
    waiting = peer.request("receive", channel="jobs", timeout=5)
    mine = asyncio.ensure_future(receive(layer, "jobs-here", 5))
    await asyncio.sleep(0.3)
    await layer.send("jobs", {"type": "job"})
    await peer.call("send", channel="jobs-here", message={"type": "job"})
    assert await waiting == {"type": "job"}
    assert await mine == {"type": "job"}
    assert await eventually(lambda: True, 0)
