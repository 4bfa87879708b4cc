"""Feeds: background tasks that move items from a Redis list into this process.

Consumers never read Redis themselves. ``receive()`` waits on a process-local
queue (:class:`~djwire.layers.local.LocalChannels`), which a cancelled receive
leaves intact; a feed fills those queues. A feed takes with the TAKE script,
which keeps each batch in Redis until the feed's *next* take confirms it was
delivered, so even a feed cancelled mid-call (its loop shutting down) loses
nothing: the next feed for that list gets the same batch again. (A BLPOP whose
caller is cancelled after Redis popped the item loses it; that is how
channels_redis loses messages on cancellation.)

One feed runs for the process inbox once anything in the process receives; one
runs per named channel while somebody in the process waits on it, taking only
as many items as there are waiters so other processes get their share.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from djwire.exceptions import LayerUnavailable

from .subscriber import Subscriber

logger = logging.getLogger("djwire.layers.redis")

#: take(count, confirmed batch id, new batch id) -> {} or [batch id, refused, items...]
Take = Callable[[int, bytes, bytes], Awaitable[Any]]
Deliver = Callable[[bytes, list[bytes]], None]

_batch_numbers = itertools.count(1)


class Feed:
    def __init__(
        self,
        name: str,
        token: str,
        confirmed: dict[bytes, bytes],
        list_key: bytes,
        wake_channel: bytes,
        find_subscriber: Callable[[], Awaitable[Subscriber | None]],
        take: Take,
        deliver: Deliver,
        batch_size: Callable[[], int],
        wanted: Callable[[], bool],
        poll_interval: float,
        retry_delay: float,
        idle_wait: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self.token = token
        self.confirmed = confirmed  # list key -> id of the last batch delivered (layer-wide)
        self.list_key = list_key
        self.wake_channel = wake_channel
        self.find_subscriber = find_subscriber
        self.take = take
        self.deliver = deliver
        self.batch_size = batch_size
        self.wanted = wanted
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        # How long to wait for a wake-up after a take found nothing (at most
        # poll_interval; less when something is due sooner, e.g. a delayed message).
        self.idle_wait = idle_wait or (lambda: poll_interval)
        self.superseded = False
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.task = self.loop.create_task(self.run(), name=f"djwire-redis-feed {name}")

    def alive(self) -> bool:
        """Still able to make progress (its loop runs, it was not replaced)."""
        return (
            not self.superseded
            and not self.task.done()
            and not self.loop.is_closed()
            and self.loop.is_running()
        )

    def poke(self) -> None:
        """Look at the list now (from any thread)."""
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
        self.superseded = True
        self.poke()

    async def run(self) -> None:
        subscriber: Subscriber | None = None
        try:
            while not self.superseded and self.wanted():
                if subscriber is None:
                    # None while the node cannot be named (cluster unreachable):
                    # the feed polls meanwhile and asks again next round.
                    subscriber = await self.find_subscriber()
                    if subscriber is not None:
                        subscriber.watch(self.wake_channel, self.wake.set)
                self.wake.clear()
                count = self.batch_size()
                batch_id = b"#%s.%d" % (self.token.encode(), next(_batch_numbers))
                try:
                    reply = await self.take(
                        count, self.confirmed.get(self.list_key, b""), batch_id
                    )
                except LayerUnavailable:
                    await self._wait_for_wake(self.retry_delay)
                    continue
                except Exception:  # e.g. an error reply: keep the process receiving
                    logger.exception("Taking from %s failed; retrying", self.name)
                    await self._wait_for_wake(self.retry_delay)
                    continue
                if self.superseded:
                    # Another feed took over; it will get this batch back from Redis.
                    return
                if reply:
                    self.confirmed[self.list_key] = reply[0]
                    items = reply[2:]
                    try:
                        self.deliver(reply[1], items)
                    except Exception:  # a bug must not stop the process receiving
                        logger.exception(
                            "Delivering %d items from %s failed", len(items), self.name
                        )
                    if len(items) >= count:
                        # There may be more right now. Let the woken receivers run
                        # first, so the next count of waiters is current.
                        await asyncio.sleep(0)
                        continue
                await self._wait_for_wake(self.idle_wait())
        finally:
            if subscriber is not None:
                subscriber.unwatch(self.wake_channel, self.wake.set)

    async def _wait_for_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()
