"""The consumers' message loops (djwire.utils), driven with the in-memory layer's claims."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from djwire.layers import InMemoryChannelLayer
from djwire.utils import READY_STREAK, await_many_dispatch, dispatch_client_and_channel


async def turns_until(condition: Any, turns: int = 100_000) -> None:
    """Let the event loop turn until ``condition()`` holds (bounded)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


class Client:
    """An ASGI ``receive`` of plain futures, fed by the test."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.waiter: asyncio.Future[dict[str, Any]] | None = None

    def receive(self) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.queue:
            future.set_result(self.queue.pop(0))
        else:
            self.waiter = future
        return future

    def put(self, message: dict[str, Any]) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
        else:
            self.queue.append(message)


class Loop:
    """dispatch_client_and_channel on a fresh channel, recording what it dispatches."""

    def __init__(self, handler: Any = None) -> None:
        self.layer = InMemoryChannelLayer()
        self.client = Client()
        self.seen: list[str] = []
        self.handler = handler
        self.channel = ""
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Loop:
        self.channel = await self.layer.new_channel()

        self.task = asyncio.ensure_future(
            dispatch_client_and_channel(
                self.client.receive, self.layer.claim_receive, self.channel, self.dispatch
            )
        )
        return self

    async def dispatch(self, message: dict[str, Any]) -> None:
        self.seen.append(message["text"])
        if self.handler is not None:
            await self.handler(self, message)

    async def until(self, count: int) -> None:
        await turns_until(lambda: len(self.seen) >= count)


async def test_client_and_channel_messages_interleave_without_loss() -> None:
    # After a channel message the loop awaits the channel's claim itself; a client
    # message then cancels that claim to wake it, and the next claim must work.
    loop = await Loop().start()
    for round_ in range(3):
        await loop.layer.send(loop.channel, {"type": "x", "text": f"layer {round_}"})
        await loop.until(2 * round_ + 1)
        loop.client.put({"type": "x", "text": f"client {round_}"})
        await loop.until(2 * round_ + 2)
    assert loop.seen == [f"{side} {n}" for n in range(3) for side in ("layer", "client")]
    assert loop.layer.local.pending(loop.channel) == 0  # one claim waiting, nothing lost
    assert loop.task is not None
    loop.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop.task


async def test_client_messages_come_first_when_both_are_waiting() -> None:
    release = asyncio.Event()

    async def block_first(loop: Loop, message: dict[str, Any]) -> None:
        if message["text"] == "first":
            await release.wait()

    loop = await Loop(block_first).start()
    await loop.layer.send(loop.channel, {"type": "x", "text": "first"})
    await loop.until(1)
    await loop.layer.send(loop.channel, {"type": "x", "text": "from the channel"})
    loop.client.put({"type": "x", "text": "from the client"})
    release.set()
    await loop.until(3)
    assert loop.seen == ["first", "from the client", "from the channel"]
    assert loop.task is not None
    loop.task.cancel()


async def test_cancelling_the_consumer_while_it_awaits_its_claim_cancels_it() -> None:
    loop = await Loop().start()
    await loop.layer.send(loop.channel, {"type": "x", "text": "one"})
    await loop.until(1)  # now awaiting the next claim itself
    assert loop.task is not None
    loop.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop.task
    # The claim it gave up holds nothing: the next message waits for a receiver.
    await loop.layer.send(loop.channel, {"type": "x", "text": "two"})
    assert (await loop.layer.receive(loop.channel))["text"] == "two"


async def test_a_handler_feeding_its_own_channel_lets_other_tasks_run() -> None:
    total = 4 * READY_STREAK

    async def again(loop: Loop, message: dict[str, Any]) -> None:
        if len(loop.seen) < total:
            await loop.layer.send(loop.channel, {"type": "x", "text": str(len(loop.seen))})

    loop = await Loop(again).start()
    observed: list[int] = []

    async def observe() -> None:
        while len(loop.seen) < total:
            observed.append(len(loop.seen))
            await asyncio.sleep(0)

    observer = asyncio.ensure_future(observe())
    await loop.layer.send(loop.channel, {"type": "x", "text": "start"})
    await loop.until(total)
    await observer
    # Every message was already waiting when the loop looked for it, yet it let the
    # observer run at least once per READY_STREAK messages.
    assert len(set(observed)) >= total // READY_STREAK - 1
    assert loop.task is not None
    loop.task.cancel()


async def test_errors_of_handlers_and_sources_end_the_loop() -> None:
    async def fail(loop: Loop, message: dict[str, Any]) -> None:
        raise RuntimeError(message["text"])

    loop = await Loop(fail).start()
    await loop.layer.send(loop.channel, {"type": "x", "text": "boom"})
    assert loop.task is not None
    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(loop.task, 5)

    async def broken() -> dict[str, Any]:
        raise OSError("source failed")

    pending: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    with pytest.raises(OSError, match="source failed"):
        await asyncio.wait_for(
            dispatch_client_and_channel(lambda: pending, lambda _: broken(), "x", loop.dispatch), 5
        )
    assert pending.cancelled()


async def test_await_many_dispatch_takes_coroutine_sources() -> None:
    # Channels' signature: sources may be coroutine functions (each wrapped in a Task).
    queue: asyncio.Queue[int] = asyncio.Queue()
    seen: list[int] = []

    async def dispatch(item: int) -> None:
        seen.append(item)

    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(await_many_dispatch([queue.get, lambda: never], dispatch))
    for item in range(3):
        await queue.put(item)
    await turns_until(lambda: len(seen) == 3)
    assert seen == [0, 1, 2]
    task.cancel()
