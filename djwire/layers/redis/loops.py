"""Connections per event loop, closed with their loop.

An asyncio connection belongs to the loop that opened it. The layer is used from
the server's loop and from the short-lived loops ``async_to_sync`` makes for sync
code, so each loop gets its own pipes and subscribers. To close them cleanly when
a loop ends, each loop gets a tiny async generator whose ``finally`` closes them:
``asyncio.run``, ``asyncio.Runner`` and asgiref all call
``loop.shutdown_asyncgens()`` before closing a loop, which runs that ``finally``
on the loop itself. Loops closed some other way are found closed on the next new
loop, and their sockets are aborted then.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable

from .nodes import Node
from .pipe import CommandPipe
from .subscriber import Subscriber


class LoopResources:
    """The pipes and subscribers of one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        make_pipe: Callable[[Node], CommandPipe],
        make_subscriber: Callable[[Node], Subscriber],
    ) -> None:
        self.loop = loop
        self._make_pipe = make_pipe
        self._make_subscriber = make_subscriber
        self.pipes: dict[str, CommandPipe] = {}
        self.subscribers: dict[str, Subscriber] = {}
        self.closer: AsyncGenerator[None, None] | None = None
        self.closed = False

    def pipe(self, node: Node) -> CommandPipe:
        pipe = self.pipes.get(node.key)
        if pipe is None:
            pipe = self.pipes[node.key] = self._make_pipe(node)
        return pipe

    def subscriber(self, node: Node) -> Subscriber:
        subscriber = self.subscribers.get(node.key)
        if subscriber is None:
            subscriber = self.subscribers[node.key] = self._make_subscriber(node)
        return subscriber

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        pipes, subscribers = list(self.pipes.values()), list(self.subscribers.values())
        self.pipes.clear()
        self.subscribers.clear()
        for subscriber in subscribers:
            await subscriber.aclose()
        for pipe in pipes:
            await pipe.aclose()

    def close_now(self) -> None:
        """For a loop that is closed already: abort the sockets, no awaiting."""
        self.closed = True
        for subscriber in self.subscribers.values():
            subscriber.close_now()
        for pipe in self.pipes.values():
            pipe.close_now()
        self.pipes.clear()
        self.subscribers.clear()


async def _close_with_loop(resources: LoopResources) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await resources.aclose()


class PerLoop:
    """``current()`` -> the running loop's :class:`LoopResources`."""

    def __init__(
        self,
        make_pipe: Callable[[Node], CommandPipe],
        make_subscriber: Callable[[Node], Subscriber],
    ) -> None:
        self._make_pipe = make_pipe
        self._make_subscriber = make_subscriber
        # Keyed by id(): a WeakKeyDictionary would never let go, since the values
        # reference their loop. Entries are dropped once their loop is closed.
        self._by_loop: dict[int, LoopResources] = {}
        self._lock = threading.Lock()

    def current(self) -> LoopResources:
        loop = asyncio.get_running_loop()
        resources = self._by_loop.get(id(loop))
        if resources is not None and resources.loop is loop and not resources.closed:
            return resources
        with self._lock:
            for key, other in list(self._by_loop.items()):
                if other.loop.is_closed():
                    other.close_now()
                    del self._by_loop[key]
            resources = LoopResources(loop, self._make_pipe, self._make_subscriber)
            self._by_loop[id(loop)] = resources
        closer = _close_with_loop(resources)
        # Run the generator to its first yield right now (it does not await before
        # it), which registers it with this loop's shutdown_asyncgens().
        step = closer.__anext__()
        with contextlib.suppress(StopIteration):
            step.send(None)
        resources.closer = closer
        return resources

    def all(self) -> list[LoopResources]:
        return list(self._by_loop.values())

    async def aclose_current(self) -> None:
        """Close this loop's resources now, and forget other loops': those of a loop
        that is closed or not running are aborted at once, those of a loop running in
        another thread are closed on that loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._by_loop.pop(id(loop), None)
            others = list(self._by_loop.values())
        if mine is not None and mine.loop is loop:
            await mine.aclose()
            if mine.closer is not None:
                await mine.closer.aclose()
        for other in others:
            if other.loop.is_closed():
                other.close_now()
                self._discard(other)
            elif other.loop.is_running():
                # Not ours to touch from this thread: ask that loop to close them.
                other.loop.call_soon_threadsafe(_spawn_close, other)
                self._discard(other)
            else:
                other.close_now()
                self._discard(other)

    def _discard(self, resources: LoopResources) -> None:
        with self._lock:
            if self._by_loop.get(id(resources.loop)) is resources:
                del self._by_loop[id(resources.loop)]


def _spawn_close(resources: LoopResources) -> None:
    resources.loop.create_task(resources.aclose())
