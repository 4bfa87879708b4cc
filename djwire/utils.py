"""Small async helpers shared by consumers and the worker."""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import CancelledError, Future
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

#: A consumer that finds message after message already waiting yields to the event
#: loop after this many, so a handler that keeps feeding its own channel cannot
#: starve every other connection.
READY_STREAK = 64


def await_many_dispatch(
    consumer_callables: Sequence[Callable[[], Awaitable[Any]]],
    dispatch: Callable[[Any], Awaitable[Any]],
) -> Awaitable[None]:
    """Await every source at once and dispatch results in the order they complete.

    With a single source this is a plain loop with no extra tasks. With several,
    each source has one pending future (a Task for a coroutine; nothing extra when
    the source returns a future itself), re-armed *before* its result is
    dispatched so the next message can arrive while a handler runs; completion
    callbacks feed one wake-up future instead of an ``asyncio.wait`` per message.
    (A plain function returning the loop's coroutine: one frame less per
    connection than an ``async def`` wrapper.)
    """
    if len(consumer_callables) == 1:
        return _dispatch_one(consumer_callables[0], dispatch)
    return _ManySources(consumer_callables).run(dispatch)


def as_future(awaitable: Awaitable[Any]) -> Future[Any]:
    """``asyncio.ensure_future`` without its Python-level checks for a Future."""
    if isinstance(awaitable, Future):
        return awaitable
    return asyncio.ensure_future(awaitable)


async def _dispatch_one(
    source: Callable[[], Awaitable[Any]], dispatch: Callable[[Any], Awaitable[Any]]
) -> None:
    while True:
        await dispatch(await source())


class _ManySources:
    # One small object per idle connection instead of closures and cells: this
    # state lives as long as the connection, so its size is memory per socket.
    __slots__ = ("pending", "ready", "sources", "wakeup")

    def __init__(self, sources: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        self.sources = sources
        self.ready: list[asyncio.Future[Any]] = []
        self.wakeup: asyncio.Future[None] | None = None
        self.pending = [self.start(index) for index in range(len(sources))]

    def start(self, index: int) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(self.sources[index]())
        future.add_done_callback(self.on_done)
        return future

    def on_done(self, future: asyncio.Future[Any]) -> None:
        self.ready.append(future)
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def next_result(self) -> Any:
        # A method, not inline in run(): run()'s frame lives as long as the
        # connection, and must not keep the last message and its future alive.
        future = self.ready.pop(0)
        index = self.pending.index(future)
        result = future.result()
        self.pending[index] = self.start(index)
        return result

    async def run(self, dispatch: Callable[[Any], Awaitable[Any]]) -> None:
        pending = self.pending
        try:
            while True:
                while not self.ready:
                    self.wakeup = asyncio.get_running_loop().create_future()
                    await self.wakeup
                    self.wakeup = None
                await dispatch(self.next_result())
        finally:
            for future in pending:
                future.remove_done_callback(self.on_done)
                future.cancel()
            for future in pending:
                # The consumer is ending: what its sources raise now has no one to go to.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await future


class FrameHolder(Protocol):
    """What dispatch_client_and_channel needs of a socket that can batch writes."""

    def hold_frames(self) -> None: ...


def dispatch_client_and_channel(
    receive: Callable[[], Awaitable[Any]],
    claim: Callable[[str], Awaitable[Any]],
    channel: str,
    dispatch: Callable[[Any], Awaitable[Any]],
    socket: FrameHolder | None = None,
) -> Awaitable[None]:
    """A consumer's loop: messages from its client (ASGI ``receive``) and from its
    channel (``claim(channel)``, a layer's ``claim_receive``), dispatched one at a
    time, client messages first when both are waiting.

    ``await_many_dispatch([receive, lambda: claim(channel)], dispatch)`` with fewer steps per
    message, because a consumer's messages mostly come from one side at a time:

    * a message already waiting is dispatched at once, without a wake-up;
    * while messages come from the channel (a group's member), and until the
      client has sent anything but its first message (an idle socket), the loop awaits
      the channel's claim future itself, so the layer resolving it is the only
      wake-up: no done-callback, no second future. A client message arriving
      meanwhile cancels that claim to wake the loop (a pending claim holds no
      message, so cancelling it loses none: see ``BaseChannelLayer.claim_receive``);
    * otherwise (messages from the client, or a claim that is a Task) both
      sources wake one waiter future through done-callbacks.

    Each source is asked for its next message only after the previous one was
    dispatched, so while a handler runs, new messages wait in the server's and the
    layer's bounded queues rather than in a future only this loop can see.

    ``socket.hold_frames()`` (djwire's server offers it) is called before each
    message that follows another without a wait in between: what the handlers send
    for a run of waiting messages then leaves in one write.
    """
    return _ClientAndChannel(receive, claim, channel).run(dispatch, socket)


class _ClientAndChannel:
    # One small object per connection: its size is memory per idle socket.
    __slots__ = ("channel", "claim", "claim_awaited", "interrupted", "receive", "waiting")

    def __init__(
        self,
        receive: Callable[[], Awaitable[Any]],
        claim: Callable[[str], Awaitable[Any]],
        channel: str,
    ) -> None:
        self.receive = receive
        self.claim = claim
        self.channel = channel
        #: The future the loop is suspended on, if any.
        self.waiting: Future[Any] | None = None
        #: True while ``waiting`` is the channel's claim itself.
        self.claim_awaited = False
        #: Set when wake() cancelled that claim.
        self.interrupted = False

    def wake(self, _source: Future[Any]) -> None:
        """Done-callback of the sources the loop is not awaiting itself."""
        waiting = self.waiting
        if waiting is None or waiting.done():
            return
        if self.claim_awaited:
            self.interrupted = True
            waiting.cancel()
        else:
            waiting.set_result(None)

    async def run(
        self, dispatch: Callable[[Any], Awaitable[Any]], socket: FrameHolder | None
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        received: Future[Any] | None = None
        claimed: Future[Any] | None = None
        claim_direct = False  # await `claimed` itself (it has no done-callback)
        from_channel = False  # the last message came from the channel...
        talked = False  # ... or the client sent more than its first message
        streak = 0
        try:
            while True:
                if received is None:
                    received = as_future(self.receive())
                    received.add_done_callback(self.wake)
                if received.done():
                    message = received.result()
                    received = None
                    from_channel = not talked  # an idle socket: expect the channel
                    talked = True
                else:
                    if claimed is None:
                        claimed = as_future(self.claim(self.channel))
                        # Only a plain Future can be cancelled by us without losing
                        # a message; a Task's coroutine may be half-way through one.
                        claim_direct = from_channel and type(claimed) is Future
                        if not claim_direct:
                            claimed.add_done_callback(self.wake)
                    if not claimed.done():
                        streak = 0
                        if not claim_direct:
                            self.waiting = loop.create_future()
                            try:
                                await self.waiting
                            finally:
                                self.waiting = None
                            continue
                        self.waiting = claimed
                        self.claim_awaited = True
                        cancels = task.cancelling()
                        try:
                            await claimed
                        except CancelledError:
                            if not self.interrupted or task.cancelling() != cancels:
                                raise  # the consumer itself is being cancelled
                            self.interrupted = False
                            claimed = None
                            continue
                        finally:
                            self.waiting = None
                            self.claim_awaited = False
                    message = claimed.result()
                    claimed = None
                    from_channel = True
                if streak:  # another message without a wait in between
                    if streak >= READY_STREAK:
                        streak = 0
                        await asyncio.sleep(0)
                    elif socket is not None:
                        socket.hold_frames()
                streak += 1
                await dispatch(message)
                # This frame lives as long as the connection: an idle one must not
                # keep its last message alive.
                message = None
        finally:
            # The consumer is ending: what its sources raise now has no one to go to.
            for future in (received, claimed):
                if future is not None:
                    future.remove_done_callback(self.wake)
                    future.cancel()
                    with contextlib.suppress(CancelledError, Exception):
                        await future
