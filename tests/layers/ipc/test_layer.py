"""IPC layer specifics within one test process (each layer instance stands for a
process: they talk over real Unix sockets and one real store)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from djwire.exceptions import ChannelFull
from djwire.layers.ipc import IPCChannelLayer

from ..test_memory import Encoder, Socket
from .conftest import MakeLayer, eventually

TIMEOUT = 5


async def receive(layer: IPCChannelLayer, channel: str, seconds: float = TIMEOUT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), seconds)


async def nothing_for(layer: IPCChannelLayer, channel: str, seconds: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), seconds)


async def test_group_websocket_send_from_another_process_goes_straight_to_sockets(
    make_layer: MakeLayer,
) -> None:
    sender, receiver = make_layer(), make_layer()
    encoder = Encoder()
    sockets = [Socket(encoder) for _ in range(20)]
    for sock in sockets:
        channel = await receiver.new_channel()
        await receiver.group_add("fans", channel)
        assert receiver.attach_socket(channel, sock)
    assert not sender.attach_socket(channel, Socket(encoder))  # not its channel
    await sender.group_send("fans", {"type": "websocket.send", "text": "goal"})
    assert await eventually(lambda: all(sock.frames == [b"frame:goal"] for sock in sockets), 5)
    assert encoder.calls == 1
    assert receiver.stats.direct_deliveries == 20


async def test_membership_changes_by_any_process_reach_the_next_group_send(
    make_layer: MakeLayer,
) -> None:
    a, b, c = make_layer(), make_layer(), make_layer()
    one, two = await a.new_channel(), await b.new_channel()
    await a.group_add("g", one)
    await c.group_send("g", {"type": "1"})  # c loads and remembers the members
    assert (await receive(a, one))["type"] == "1"
    await b.group_add("g", two)  # another process changes them
    await c.group_send("g", {"type": "2"})
    assert (await receive(a, one))["type"] == "2"
    assert (await receive(b, two))["type"] == "2"
    await a.group_discard("g", one)
    await c.group_send("g", {"type": "3"})
    assert (await receive(b, two))["type"] == "3"
    await nothing_for(a, one)
    await c.flush()
    await c.group_send("g", {"type": "4"})
    await nothing_for(b, two)


async def test_receiving_on_another_processes_channel_is_refused(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    with pytest.raises(ValueError, match="another process"):
        await b.receive(await a.new_channel())


async def test_claims_get_messages_from_other_processes(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    channel = await a.new_channel()
    claim = a.claim_receive(channel)
    await b.send(channel, {"type": "claimed"})
    assert (await asyncio.wait_for(claim, TIMEOUT))["type"] == "claimed"
    named = a.claim_receive("named-claim")
    await b.send("named-claim", {"type": "named"})
    assert (await asyncio.wait_for(named, TIMEOUT))["type"] == "named"


async def test_the_layer_works_again_after_close(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    channel = await a.new_channel()
    await a.group_add("g", channel)
    assert (await asyncio.gather(receive(a, "named"), b.send("named", {"type": "x"})))[0]
    await a.close()
    await b.close()
    await b.send(channel, {"type": "after close"})
    await b.group_send("g", {"type": "group after close"})
    assert (await receive(a, channel))["type"] == "after close"
    assert (await receive(a, channel))["type"] == "group after close"


async def test_bad_data_on_an_inbox_is_dropped_and_counted(make_layer: MakeLayer) -> None:
    a, b = make_layer(), make_layer()
    channel = await a.new_channel()
    for garbage in (b"\xc1" * 10, b"\x93\x07\xa1x\x00"):  # not msgpack; not a frame
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(a.space / "p" / a.token))
        sock.sendall(garbage)
        sock.close()
    await b.send(channel, {"type": "fine"})
    assert (await receive(a, channel))["type"] == "fine"
    assert a.stats.extra["frames_malformed"] == 2


async def test_a_full_store_refuses_sends_clearly(make_layer: MakeLayer) -> None:
    layer = make_layer(max_store_size=1 << 20, capacity=1000)
    blob = "x" * 100_000
    with pytest.raises(ChannelFull):
        for n in range(100):  # ~10 MB into a 1 MiB store: refused well before the end
            await layer.send(f"bulk{n % 5}", {"type": "big", "blob": blob})
    assert layer.stats.extra["store_full"] == 1
    with pytest.raises(ChannelFull):  # every write says so, not only sends
        for n in range(1000):
            await layer.group_add("g", f"member{n}-{'x' * 80}")
    await layer.flush()
    await layer.send("bulk0", {"type": "fits again"})


def test_sync_code_on_short_lived_loops_loses_nothing(space: Path) -> None:
    """async_to_sync gives every call a new loop: the inbox moves to each one in turn,
    and what arrived between calls waits in the kernel."""
    total = 200
    sender = IPCChannelLayer(path=space, capacity=total)
    receiver = IPCChannelLayer(path=space, capacity=total)
    channel = async_to_sync(receiver.new_channel)()

    def produce() -> None:
        async def run() -> None:
            for n in range(total):
                await sender.send(channel, {"type": "n", "n": n})
                await sender.send("named-sync", {"type": "n", "n": n})
                if n % 20 == 0:
                    await asyncio.sleep(0.001)

        async_to_sync(run)()

    async def receive_one(name: str) -> int:
        return int((await asyncio.wait_for(receiver.receive(name), TIMEOUT))["n"])

    producer = threading.Thread(target=produce)
    producer.start()
    got: list[int] = []
    named: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < total and time.monotonic() < deadline:
        got.append(async_to_sync(receive_one)(channel))
        named.append(async_to_sync(receive_one)("named-sync"))
    producer.join(10)
    assert got == list(range(total))
    assert named == list(range(total))
    assert receiver.stats.dropped_full == 0


async def test_a_forked_child_is_a_new_process_of_the_space(make_layer: MakeLayer) -> None:
    parent = make_layer()
    mine = await parent.new_channel()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only os._exit
        status = 1
        try:
            os.close(reader)

            async def child() -> bytes:
                assert parent.token != parent_token and parent.pid == os.getpid()
                theirs = await parent.new_channel()
                await parent.send(mine, {"type": "from child", "reply_to": theirs})
                answer = await asyncio.wait_for(parent.receive(theirs), TIMEOUT)
                return answer["type"].encode()

            parent_token = mine[: mine.index("!")].rpartition(".")[2]
            os.write(writer, asyncio.run(child()))
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    message = await receive(parent, mine)
    assert message["type"] == "from child"
    await parent.send(message["reply_to"], {"type": "to child"})
    assert await asyncio.to_thread(os.read, reader, 100) == b"to child"
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    os.close(reader)
    assert status == 0
    # The parent still listens: the child closed only its copies of the sockets.
    other = make_layer()
    await other.send(mine, {"type": "still here"})
    assert (await receive(parent, mine))["type"] == "still here"


async def test_a_layer_nobody_holds_is_torn_down(space: Path) -> None:
    layer = IPCChannelLayer(path=space)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    other = IPCChannelLayer(path=space)
    await other.send(channel, {"type": "x"})  # a connection to it, too
    await asyncio.sleep(0.05)
    socket_file = space / "p" / layer.token
    assert await asyncio.to_thread(socket_file.exists)
    del layer
    gc.collect()
    assert not await asyncio.to_thread(socket_file.exists)
    assert await other.group_channels("g") == []


async def test_a_store_locked_while_another_process_sets_it_up_is_waited_for(
    space: Path,
) -> None:
    import sqlite3

    (space / "p").mkdir(mode=0o700)
    holder = sqlite3.connect(
        space / "store.sqlite3", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN EXCLUSIVE")  # as a process creating the store holds it
    threading.Timer(0.3, holder.rollback).start()
    layer = IPCChannelLayer(path=space)
    await layer.group_add("g", "named")  # waits for the lock, then sets the store up
    assert await layer.group_channels("g") == ["named"]
    with sqlite3.connect(space / "store.sqlite3") as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    holder.close()
