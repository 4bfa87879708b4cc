"""Named-channel feeds: move messages from the shared store into this process.

``receive()`` on a named channel (no ``!``) waits on a process-local queue, which a
cancelled receive leaves intact; a feed fills it. One feed per named channel runs
while somebody in the process waits on it, taking only as many messages as there
are waiters (so competing processes get their share) in one transaction.

While it runs, the feed is registered in the store as a *listener* of its channel,
and senders wake it with a WAKE frame after queueing (or directly, from this
process). The registration is committed before the feed first looks at the
channel, so a message queued at any moment is either seen by that look or followed
by a wake-up. A feed with no waiters lingers for ``poll_interval`` before it
unregisters, so a worker that receives one message after another does not register
and unregister for each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from djwire.exceptions import LayerUnavailable

from .store import Store, now_ms

logger = logging.getLogger("djwire.layers.ipc")

Deliver = Callable[[list[bytes], int], None]


class NamedFeed:
    def __init__(
        self,
        channel: str,
        token: str,
        store: Store,
        deliver: Deliver,
        waiting: Callable[[], int],
        max_batch: int,
        poll_interval: float,
    ) -> None:
        self.channel = channel
        self.token = token
        self.store = store
        self.deliver = deliver
        self.waiting = waiting
        self.max_batch = max_batch
        self.poll_interval = poll_interval
        self.stopped = False
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.task = self.loop.create_task(self.run(), name=f"djwire-ipc-feed {channel}")

    def alive(self) -> bool:
        return (
            not self.stopped
            and not self.task.done()
            and not self.loop.is_closed()
            and self.loop.is_running()
        )

    def poke(self) -> None:
        """Look at the store now (from any thread)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.wake.set()
        elif not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.wake.set)

    def stop(self) -> None:
        self.stopped = True
        self.poke()

    async def run(self) -> None:
        listening = False
        idle_since: float | None = None
        try:
            while not self.stopped:
                wanted = self.waiting()
                if not wanted:
                    now = time.monotonic()
                    if idle_since is None:
                        idle_since = now
                    elif now - idle_since >= self.poll_interval:
                        return
                    await self._wait(self.poll_interval)
                    continue
                idle_since = None
                self.wake.clear()
                try:
                    if not listening:
                        await self.store.write(
                            lambda c: self.store.listen(c, self.channel, self.token)
                        )
                        listening = True
                    taken = await self._take(min(wanted, self.max_batch))
                except LayerUnavailable as exc:
                    logger.warning("Receiving from %s: %s", self.channel, exc)
                    await self._wait(self.poll_interval)
                    continue
                if taken >= wanted:
                    await asyncio.sleep(0)  # let the receivers run; there may be more
                    continue
                await self._wait(self.poll_interval)
        finally:
            if listening:
                self._unlisten()

    async def _take(self, count: int) -> int:
        now = now_ms()
        # A read first: when several processes are woken for one message, only
        # one of them needs the write lock.
        if not self.store.has_messages(self.channel, now):
            return 0
        payloads, expired = await self.store.write(
            lambda c: self.store.take(c, self.channel, count, now)
        )
        self.deliver(payloads, expired)
        return len(payloads)

    def _unlisten(self) -> None:
        try:
            self.store.write_now(lambda c: self.store.unlisten(c, self.channel, self.token))
        except Exception as exc:  # the registration goes with this process anyway
            logger.debug("Could not unregister from %s: %r", self.channel, exc)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()
