"""Processes that die (SIGKILL at chosen and at random moments, or exit without
closing): the others neither wait nor see corrupt data, and what the dead process
held is reclaimed."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sqlite3

import pytest

from djwire.layers.ipc.links import probe

from .conftest import MakeLayer, PeerError, PeerProcess, eventually
from .peer import intact

pytestmark = pytest.mark.asyncio

TIMEOUT = 10


async def receive(layer, channel: str, seconds: float = TIMEOUT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), seconds)


def store_rows(space, sql: str, *args) -> list:
    with sqlite3.connect(space / "store.sqlite3") as connection:
        return connection.execute(sql, args).fetchall()


async def test_a_writer_killed_mid_message_corrupts_nothing(make_layer: MakeLayer, peers) -> None:
    layer = make_layer()
    steady, dying = await peers(2)
    channel = await layer.new_channel()
    await steady.call("send_checked", channel=channel, count=10, name="steady")
    with pytest.raises(PeerError, match="ended"):  # it dies without answering
        await dying.call("die_mid_frame", channel=channel)
    await dying.wait()
    await steady.call("send_checked", channel=channel, count=20, name="steady")
    got = [await receive(layer, channel) for _ in range(30)]
    assert all(intact(message) for message in got)
    assert [m["n"] for m in got] == list(range(10)) + list(range(20))
    assert {m["from"] for m in got} == {"steady"}
    assert await eventually(lambda: layer.stats.extra.get("frames_truncated") == 1, 5)


async def test_a_process_killed_holding_the_store_lock_holds_up_no_one(
    make_layer: MakeLayer, peers, space
) -> None:
    layer = make_layer(lock_timeout=30)  # a wait for the dead holder would show as a hang
    (dying,) = await peers(1)
    dying.request("die_holding_lock")
    assert (await asyncio.wait_for(dying.lines.get(), TIMEOUT))["result"] == "locked"
    assert await dying.wait() == -9
    channel = await layer.new_channel()
    async with asyncio.timeout(TIMEOUT):
        await layer.group_add("after", channel)
        await layer.send("half-done", {"type": "whole"})
        await layer.group_send("after", {"type": "x"})
    assert await receive(layer, channel) == {"type": "x"}
    # The dead process's uncommitted row never appears; only the whole message.
    assert await receive(layer, "half-done") == {"type": "whole"}
    assert store_rows(space, "SELECT count(*) FROM messages") == [(0,)]


async def test_a_process_killed_while_receiving_is_reclaimed(
    make_layer: MakeLayer, peers, space
) -> None:
    layer = make_layer()
    victim, other = await peers(2)
    theirs = [await victim.call("new_channel") for _ in range(3)]
    for channel in theirs:
        await victim.call("group_add", group="room", channel=channel)
    survivor = await other.call("new_channel")
    await other.call("group_add", group="room", channel=survivor)
    mine = await layer.new_channel()
    await layer.group_add("room", mine)
    # In the middle of receiving: on its own channel and on a named channel.
    victim.request("receive", channel=theirs[0], timeout=60)
    victim.request("receive", channel="jobs", timeout=60)
    await eventually(
        lambda: (
            store_rows(space, "SELECT count(*) FROM listeners WHERE token = ?", victim.token)
            == [(1,)]
        ),
        TIMEOUT,
    )
    await layer.send(theirs[0], {"type": "in flight"})
    victim.kill()
    await victim.wait()
    async with asyncio.timeout(TIMEOUT):  # nothing waits for the dead process
        await layer.send(theirs[1], {"type": "to the dead"})
        await layer.group_send("room", {"type": "news"})
        await layer.send("jobs", {"type": "job"})
    assert await receive(layer, mine) == {"type": "news"}
    assert await other.call("receive", channel=survivor) == {"type": "news"}
    assert layer.stats.extra["receiver_gone"] >= 1
    # What it held is gone: memberships, listening, its socket.
    assert store_rows(space, "SELECT count(*) FROM members WHERE token = ?", victim.token) == [
        (0,)
    ]
    assert store_rows(space, "SELECT count(*) FROM listeners") == [(0,)]
    assert not (space / "p" / victim.token).exists()
    assert sorted(await layer.group_channels("room")) == sorted([mine, survivor])
    # The named channel's message waits for a live receiver.
    assert await other.call("receive", channel="jobs") == {"type": "job"}


async def test_a_process_that_exits_without_closing_leaves_nothing_behind(
    make_layer: MakeLayer, peers, space
) -> None:
    layer = make_layer()
    polite, abrupt = await peers(2)
    for peer in (polite, abrupt):
        channel = await peer.call("new_channel")
        await peer.call("group_add", group="g", channel=channel)
        peer.channel = channel  # type: ignore[attr-defined]
    polite.request("exit")
    assert await polite.wait() == 0
    # A normal exit tears the layer down: socket and memberships go at once.
    assert not (space / "p" / polite.token).exists()
    assert store_rows(space, "SELECT token FROM members") == [(abrupt.token,)]
    abrupt.request("vanish")
    assert await abrupt.wait() == 0
    assert (space / "p" / abrupt.token).exists()  # nobody has noticed yet
    for n in range(20):  # its backlog: dropped and counted, never kept
        await layer.send(abrupt.channel, {"type": "n", "n": n})  # type: ignore[attr-defined]
    assert layer.stats.extra["receiver_gone"] == 20
    assert abrupt.token not in layer._links
    assert not (space / "p" / abrupt.token).exists()
    assert store_rows(space, "SELECT count(*) FROM members") == [(0,)]


async def test_a_new_process_reclaims_processes_that_ended_before_it(
    make_layer: MakeLayer, peers, space
) -> None:
    (gone,) = await peers(1)
    channel = await gone.call("new_channel")
    await gone.call("group_add", group="old", channel=channel)
    gone.kill()
    await gone.wait()
    layer = make_layer()
    await layer.new_channel()  # starting its inbox looks for ended processes
    assert store_rows(space, "SELECT count(*) FROM members") == [(0,)]
    assert sorted(os.listdir(space / "p")) == [layer.token]


async def test_random_kills_under_load_never_corrupt_or_reorder(
    make_layer: MakeLayer, space
) -> None:
    layer = make_layer(capacity=100_000)
    channel = await layer.new_channel()
    steady = await PeerProcess.start(space)
    steady_sending = steady.request(
        "send_checked", channel=channel, count=3000, size=2000, name="steady", full_ok=True
    )
    received: list[dict] = []
    rounds = 4
    try:
        for round_ in range(rounds):
            dying = await PeerProcess.start(space)
            # Sizes up to 200 kB: many frames are cut mid-write by the kill.
            dying.request("send_forever", channel=channel, size=200_000, name=f"r{round_}")
            named = dying.request("send_forever", channel="jobs", size=20_000, name=f"j{round_}")
            await asyncio.sleep(random.uniform(0.1, 0.4))
            dying.kill()
            await dying.wait()
            named.cancel()
            await dying.finish()
            while True:
                try:
                    received.append(await receive(layer, channel, 0.5))
                except TimeoutError:
                    break
        assert await steady_sending == 3000
        while sum(1 for m in received if m["from"] == "steady") < 3000:
            received.append(await receive(layer, channel))
        jobs = []
        while True:
            try:
                jobs.append(await receive(layer, "jobs", 0.5))
            except TimeoutError:
                break
    finally:
        await steady.finish()
    assert all(intact(message) for message in received + jobs)
    by_sender: dict[str, list[int]] = {}
    for message in received + jobs:
        by_sender.setdefault(message["from"], []).append(message["n"])
    assert by_sender.pop("steady") == list(range(3000))
    for sender, numbers in by_sender.items():
        # What a killed process sent arrives in order and without gaps: a prefix.
        assert numbers == list(range(len(numbers))), sender


async def test_leased_messages_of_a_killed_taker_go_to_another_process(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer()
    (taker,) = await peers(1)
    for n in range(5):
        await layer.send("reliable", {"type": "job", "n": n})
    held = await taker.call("take", channel="reliable", count=5, lease=0.5)
    assert [(m["n"], attempt) for m, _, attempt in held] == [(n, 1) for n in range(5)]
    taker.kill()
    await taker.wait()
    again = await asyncio.wait_for(layer.take("reliable", 10, lease=5), TIMEOUT)
    assert [(d.message["n"], d.attempt) for d in again] == [(n, 2) for n in range(5)]
    await layer.ack("reliable", [d.tag for d in again])  # type: ignore[misc]
    assert await layer.dead_letters("reliable") == []


async def test_a_starting_process_is_never_taken_for_an_ended_one(
    make_layer: MakeLayer, space, monkeypatch
) -> None:
    # Processes that start together probe each other's sockets: a socket file under
    # its real name must already accept connections, or its owner would be reclaimed.
    seen: list[list[str]] = []
    listen = socket.socket.listen

    def listening(sock: socket.socket, *args: int) -> None:
        seen.append(sorted(os.listdir(space / "p")))
        listen(sock, *args)

    monkeypatch.setattr(socket.socket, "listen", listening)
    layer = make_layer()
    await layer.new_channel()
    assert seen == [[f".{layer.token}"]]  # not yet under its real name while not listening
    assert sorted(os.listdir(space / "p")) == [layer.token]
    assert probe(space / "p" / layer.token)


async def test_a_process_that_exits_right_after_sending_delivers_what_it_sent(
    make_layer: MakeLayer, peers
) -> None:
    layer = make_layer(capacity=10_000)
    channel = await layer.new_channel()
    (sender,) = await peers(1)
    await layer.close()  # this process stops reading: what it is sent piles up
    # Far more than the kernel buffers: most of it still waits in the sender when it
    # exits (normally, without closing the layer); the exit sends it first.
    sent = await sender.call("send_checked", channel=channel, count=300, size=20_000, name="s")
    assert sent == 300
    sender.request("exit")
    got = [await receive(layer, channel) for _ in range(300)]  # reading again
    assert await sender.wait() == 0
    assert [m["n"] for m in got] == list(range(300)) and all(intact(m) for m in got)
    assert "frames_truncated" not in layer.stats.extra
