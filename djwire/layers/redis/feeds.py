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
as many items as there are waiters so other processes get their share
(:class:`Feeds` keeps them). What a feed takes is handed to :mod:`.arrivals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from djwire.exceptions import LayerUnavailable

from ..base import Message
from ..local import LocalChannels
from . import scripts
from .arrivals import Arrivals
from .commands import Commands
from .sharding import Keys
from .subscriber import Subscriber

logger = logging.getLogger("djwire.layers.redis")

#: take(count, confirmed batch id, new batch id, lazy) -> {} or [batch id, refused,
#: items...]; a lazy take may wait for the process's next write to Redis (see
#: Limits.confirm_delay).
Take = Callable[[int, bytes, bytes, bool], Awaitable[Any]]
Deliver = Callable[[bytes, list[bytes]], None]
#: (named channel, its taken-batch key) -> the take and idle wait of its feed
NamedTake = Callable[[str, bytes], tuple[Take, Callable[[], float]]]

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
        marks_idle: bool = False,
        expedite: Callable[[], None] | None = None,
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
        # Whether a take that finds nothing leaves the idle mark (see
        # scripts.PUSH_INBOX): then the feed takes again after every batch, so that
        # it confirms the batch and marks itself idle before the next push comes.
        self.marks_idle = marks_idle
        self.expedite = expedite  # send a lazy take now
        self._lazy = False  # a lazy take is under way
        self._confirm_lazily = False  # a batch came with a wake-up: confirm it lazily
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
        lazy = False
        try:
            while not self.superseded and self.wanted():
                if subscriber is None:
                    # None while the node cannot be named (cluster unreachable):
                    # the feed polls meanwhile and asks again next round.
                    subscriber = await self.find_subscriber()
                    if subscriber is not None:
                        subscriber.watch(self.wake_channel, self._woken)
                self.wake.clear()
                count = self.batch_size()
                batch_id = b"#%s.%d" % (self.token.encode(), next(_batch_numbers))
                lazy = lazy or self._confirm_lazily
                self._lazy, self._confirm_lazily = lazy, False
                try:
                    reply = await self.take(
                        count, self.confirmed.get(self.list_key, b""), batch_id, lazy
                    )
                except LayerUnavailable:
                    await self._wait_for_wake(self.retry_delay)
                    continue
                except Exception:  # e.g. an error reply: keep the process receiving
                    logger.exception("Taking from %s failed; retrying", self.name)
                    await self._wait_for_wake(self.retry_delay)
                    continue
                finally:
                    self._lazy = lazy = False
                if self.superseded:
                    # Another feed took over; it will get this batch back from Redis.
                    return
                if reply:
                    items = reply[2:]
                    self._deliver_batch(reply[0], reply[1], items)
                    if len(items) >= count:
                        # There may be more right now. Let the woken receivers run
                        # first, so the next count of waiters is current.
                        await asyncio.sleep(0)
                        continue
                    if self.marks_idle and len(items) == 1:
                        # One message at a time: confirm it and mark the feed idle with
                        # the next write (e.g. the reply of the receiver just woken),
                        # so the next message comes with its wake-up. Bigger batches
                        # mean messages queue up: wait for the wake-up, as the next
                        # take then gets a batch again.
                        lazy = True
                        continue
                await self._wait_for_wake(self.idle_wait())
        finally:
            if subscriber is not None:
                subscriber.unwatch(self.wake_channel, self._woken)

    def _woken(self, payload: bytes) -> None:
        """A wake-up; one that carries a batch (an idle inbox's, see
        scripts.PUSH_INBOX) is delivered at once, and the next take confirms it."""
        if payload:
            batch_id, _, item = payload.partition(b"\n")
            self._deliver_batch(batch_id, b"", [item])
            self._confirm_lazily = True
        elif self._lazy and self.expedite is not None:
            self.expedite()  # something is waiting in the list: take it now
        self.wake.set()

    def _deliver_batch(self, batch_id: bytes, refused: bytes, items: list[bytes]) -> None:
        """Deliver a batch unless it was already: a batch can come both with its
        wake-up and in the reply of a take that ran before its confirmation. Batch
        ids grow, and batches are delivered in the order Redis made them."""
        if _number(batch_id) <= _number(self.confirmed.get(self.list_key, b"")):
            return
        self.confirmed[self.list_key] = batch_id
        try:
            self.deliver(refused, items)
        except Exception:  # a bug must not stop the process receiving
            logger.exception("Delivering %d items from %s failed", len(items), self.name)

    async def _wait_for_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()


def _number(batch_id: bytes) -> int:
    """The counter of a batch id (``#token.N``); -1 for none."""
    try:
        return int(batch_id.rpartition(b".")[2])
    except ValueError:
        return -1


class Feeds:
    """The feeds of one layer instance: its inbox's, and one per named channel that
    somebody in this process is waiting on."""

    def __init__(
        self,
        commands: Commands,
        keys: Keys,
        token: str,
        local: LocalChannels,
        arrivals: Arrivals,
        take_ttl: int,
        named_take: NamedTake | None = None,
    ) -> None:
        self.commands = commands
        self.keys = keys
        self.token = token
        self.local = local
        self.arrivals = arrivals
        self.take_ttl = take_ttl  # how long a taken batch is kept for its confirmation
        self.named_take = named_take
        self.limits = commands.limits
        self.inbox: Feed | None = None
        self.named: dict[str, Feed] = {}
        self.waiting: dict[str, int] = {}  # named channel -> receivers waiting here
        # list key -> id of the last batch delivered, confirmed by the next take
        self.confirmed: dict[bytes, bytes] = {}

    def ensure_inbox(self) -> None:
        """Have the inbox feed running on a live loop."""
        feed = self.inbox
        if feed is not None and feed.alive():
            return
        if feed is not None:
            feed.stop()
        self.inbox = self._start(
            name=f"inbox {self.token}",
            tag=self.keys.inbox_tag(self.token),
            list_key=self.keys.inbox(self.token),
            rejections=self.keys.rejections(self.token),
            deliver=self.arrivals.from_inbox,
            batch_size=lambda: self.limits.max_batch,
            wanted=lambda: True,
            idle_key=self.keys.idle(self.keys.inbox(self.token)),
        )

    async def receive_named(self, channel: str) -> Message:
        """Wait for a message of a named channel, feeding it while anyone waits."""
        self.waiting[channel] = self.waiting.get(channel, 0) + 1
        try:
            feed = self.named.get(channel)
            if feed is None or not feed.alive():
                if feed is not None:
                    feed.stop()
                self.named[channel] = self._start_named(channel)
            else:
                feed.poke()
            return await self.local.get(channel)
        finally:
            left = self.waiting.get(channel, 1) - 1
            if left:
                self.waiting[channel] = left
            else:
                self.waiting.pop(channel, None)

    def stop_all(self) -> list[Feed]:
        """Stop every feed; returns them (each ends after its current take)."""
        feeds = [feed for feed in (self.inbox, *self.named.values()) if feed is not None]
        self.inbox = None
        self.named.clear()
        for feed in feeds:
            feed.stop()
        return feeds

    def _start_named(self, channel: str) -> Feed:
        def wanted() -> bool:
            return self.waiting.get(channel, 0) > 0

        def batch_size() -> int:
            # Only as many as wait here, so competing processes get their share.
            return max(1, min(self.waiting.get(channel, 0), self.limits.max_batch))

        def deliver(refused: bytes, items: list[bytes]) -> None:
            self.arrivals.from_named(channel, items)

        key = self.keys.channel(channel)
        take, idle_wait = (
            self.named_take(channel, self.keys.taken(key, self.token))
            if self.named_take is not None
            else (None, None)
        )
        return self._start(
            name=f"channel {channel}",
            tag=self.keys.channel_tag(channel),
            list_key=key,
            rejections=key + b":r",  # never written: named channels have no writers' seqs
            deliver=deliver,
            batch_size=batch_size,
            wanted=wanted,
            take=take,
            idle_wait=idle_wait,
        )

    def _start(
        self,
        name: str,
        tag: str,
        list_key: bytes,
        rejections: bytes,
        deliver: Deliver,
        batch_size: Callable[[], int],
        wanted: Callable[[], bool],
        take: Take | None = None,
        idle_wait: Callable[[], float] | None = None,
        idle_key: bytes | None = None,
    ) -> Feed:
        taken = self.keys.taken(list_key, self.token)
        ttl = self.take_ttl
        commands = self.commands
        keys: tuple[bytes, ...] = (list_key, taken, rejections)
        if idle_key is not None:
            keys += (idle_key,)

        delay = self.limits.confirm_delay

        async def take_batch(count: int, confirmed: bytes, batch_id: bytes, lazy: bool) -> Any:
            args = (confirmed, batch_id, count, ttl)
            if lazy:
                return await commands.script_riding(tag, scripts.TAKE, keys, args, delay)
            return await commands.script(tag, scripts.TAKE, keys, args)

        async def find_subscriber() -> Subscriber | None:
            try:
                node = await commands.node(tag)
            except LayerUnavailable:
                return None
            return commands.subscriber(node)

        return Feed(
            name=name,
            token=self.token,
            confirmed=self.confirmed,
            list_key=list_key,
            wake_channel=self.keys.wake(list_key),
            find_subscriber=find_subscriber,
            take=take or take_batch,
            deliver=deliver,
            batch_size=batch_size,
            wanted=wanted,
            poll_interval=self.limits.poll_interval,
            retry_delay=self.limits.reconnect_backoff[1],
            idle_wait=idle_wait,
            marks_idle=idle_key is not None,
            expedite=lambda: commands.expedite(tag),
        )
