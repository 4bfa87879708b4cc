"""Consumers wait on the Redis layer with a plain future (claim_receive), not a Task."""

from __future__ import annotations

import asyncio

from .conftest import MakeLayer


async def test_a_claim_gets_messages_sent_from_another_process(make_layer: MakeLayer) -> None:
    here, there = make_layer(), make_layer()  # two layer instances: two "processes"
    channel = await here.new_channel()
    claim = here.claim_receive(channel)
    assert isinstance(claim, asyncio.Future) and not isinstance(claim, asyncio.Task)
    await there.send(channel, {"type": "remote", "n": 1})
    assert await asyncio.wait_for(claim, 5) == {"type": "remote", "n": 1}


async def test_a_claim_gets_group_messages_in_order(make_layer: MakeLayer) -> None:
    here, there = make_layer(), make_layer()
    channel = await here.new_channel()
    await here.group_add("claimed", channel)
    for n in range(3):
        await there.group_send("claimed", {"type": "g", "n": n})
    got = [(await asyncio.wait_for(here.claim_receive(channel), 5))["n"] for _ in range(3)]
    assert got == [0, 1, 2]


async def test_claiming_another_processes_channel_falls_back_to_receive(
    make_layer: MakeLayer,
) -> None:
    here, there = make_layer(), make_layer()
    theirs = await there.new_channel()
    claim = here.claim_receive(theirs)
    try:
        await asyncio.wait_for(claim, 5)
    except ValueError as exc:  # receive() refuses another process's channel
        assert "belongs to another process" in str(exc)
    else:
        raise AssertionError("claiming another process's channel should fail like receive()")
