"""Named channels as work queues: batch takes, leases, delayed sends, dead letters.

Workers (``manage.py runworker``) consume named channels with these operations,
which every backend that workers can use implements (the ``"queues"`` extension):

* ``take(channel, count, lease=None)`` waits for one message and returns up to
  ``count``. Without a lease the messages leave the layer when taken: *at most
  once* (a worker that dies loses what it took). With ``lease=seconds`` each
  message stays with the layer until ``ack()``: a message not acknowledged in time
  (its worker died) is delivered again with ``attempt + 1`` - *at least once*.
* ``retry(channel, tag, delay)`` gives a leased message back for another attempt
  after ``delay`` seconds; ``dead_letter(channel, tag, reason)`` moves it to the
  channel's dead letters, which ``dead_letters()`` lists and
  ``replay_dead_letters()`` sends again (``discard_dead_letters()`` drops them).
* ``send_later(channel, message, delay)`` queues a message that becomes visible
  ``delay`` seconds later (the original ``asgi.delay`` channel's job).

:class:`LocalQueues` implements them for one process over
:class:`~djwire.layers.local.LocalChannels`; the in-memory layer uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import LayerStats, Message
from .delivery import fast_copy
from .local import LocalChannels
from .queue_types import DeadLetter, Delivery, check_delay, require_named

logger = logging.getLogger("djwire.layers")

#: Dead letters kept per channel unless a layer is told otherwise; the oldest go first.
DEFAULT_MAX_DEAD_LETTERS = 10_000


@dataclass(slots=True)
class _Lease:
    deadline: float
    attempt: int
    message: Message


@dataclass(slots=True)
class _Queue:
    """What :class:`LocalQueues` keeps for one named channel."""

    # (due, seq, attempt, message): sent with a delay, or given back for a retry.
    delayed: list[tuple[float, int, int, Message]] = field(default_factory=list)
    leases: dict[str, _Lease] = field(default_factory=dict)
    lease_heap: list[tuple[float, str]] = field(default_factory=list)
    # Due again now, ahead of new messages: (attempt, message).
    ready: deque[tuple[int, Message]] = field(default_factory=deque)
    dead: deque[DeadLetter] = field(default_factory=deque)
    wakers: list[asyncio.Future[None]] = field(default_factory=list)

    def idle(self) -> bool:
        return not (self.delayed or self.leases or self.ready or self.dead or self.wakers)


class LocalQueues:
    """Leases, delays and dead letters for the named channels of ``channels``."""

    def __init__(
        self,
        channels: LocalChannels,
        stats: LayerStats,
        max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_dead_letters < 1:
            raise ValueError("max_dead_letters must be at least 1")
        self.channels = channels
        self.stats = stats
        self.max_dead_letters = max_dead_letters
        self.clock = clock
        self._queues: dict[str, _Queue] = {}
        self._seq = itertools.count(1)

    def _queue(self, channel: str) -> _Queue:
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = _Queue()
        return queue

    # -- sending ----------------------------------------------------------------------

    def send_later(self, channel: str, message: Message, delay: float) -> None:
        require_named(channel)
        delay = check_delay(delay)
        if delay == 0:
            self.channels.put(channel, fast_copy(message))
            return
        queue = self._queue(channel)
        heapq.heappush(
            queue.delayed, (self.clock() + delay, next(self._seq), 1, fast_copy(message))
        )
        self._wake(queue)

    # -- taking -----------------------------------------------------------------------

    async def take(self, channel: str, count: int, lease: float | None) -> list[Delivery]:
        require_named(channel)
        if count < 1:
            raise ValueError("count must be at least 1")
        if lease is not None and lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        loop = asyncio.get_running_loop()
        while True:
            taken = self._take_now(channel, count, lease)
            if taken:
                return taken
            queue = self._queue(channel)
            due = self._next_due(queue)
            waker: asyncio.Future[None] = loop.create_future()
            queue.wakers.append(waker)
            getter = asyncio.ensure_future(self.channels.get(channel))
            try:
                timeout = None if due is None else max(0.0, due - self.clock())
                await asyncio.wait(
                    (getter, waker), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                with contextlib.suppress(ValueError):
                    queue.wakers.remove(waker)
                if not getter.done():
                    getter.cancel()  # LocalChannels.get() gives back what it held
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
            if getter.done() and not getter.cancelled() and getter.exception() is None:
                # Put it back first in line; _take_now hands it out with the rest.
                queue.ready.appendleft((1, getter.result()))

    def _take_now(self, channel: str, count: int, lease: float | None) -> list[Delivery]:
        queue = self._queues.get(channel)
        now = self.clock()
        if queue is not None:
            self._promote(channel, queue, now)
        picked: list[tuple[int, Message]] = []
        while queue is not None and queue.ready and len(picked) < count:
            picked.append(queue.ready.popleft())
        while len(picked) < count:
            message = self.channels.take(channel)
            if message is None:
                break
            picked.append((1, message))
        if not picked:
            if queue is not None and queue.idle():
                del self._queues[channel]
            return []
        if lease is None:
            return [Delivery(message, None, attempt) for attempt, message in picked]
        queue = self._queue(channel)
        deliveries = []
        for attempt, message in picked:
            tag = f"{next(self._seq)}"
            queue.leases[tag] = _Lease(now + lease, attempt, message)
            heapq.heappush(queue.lease_heap, (now + lease, tag))
            deliveries.append(Delivery(message, tag, attempt))
        return deliveries

    def _promote(self, channel: str, queue: _Queue, now: float) -> None:
        """Move due delayed messages and expired leases to ``ready``."""
        while queue.lease_heap and queue.lease_heap[0][0] <= now:
            _, tag = heapq.heappop(queue.lease_heap)
            held = queue.leases.get(tag)
            if held is not None and held.deadline <= now:
                del queue.leases[tag]
                logger.warning(
                    "A message on %s was not acknowledged within its lease (attempt %d); "
                    "delivering it again",
                    channel,
                    held.attempt,
                )
                queue.ready.append((held.attempt + 1, held.message))
        while queue.delayed and queue.delayed[0][0] <= now:
            _, _, attempt, message = heapq.heappop(queue.delayed)
            queue.ready.append((attempt, message))

    def _next_due(self, queue: _Queue) -> float | None:
        dues = []
        if queue.delayed:
            dues.append(queue.delayed[0][0])
        if queue.lease_heap:
            dues.append(queue.lease_heap[0][0])
        return min(dues) if dues else None

    def _wake(self, queue: _Queue) -> None:
        running = _running_loop()
        for waker in queue.wakers:
            if waker.done():
                continue
            if waker.get_loop() is running:
                waker.set_result(None)
            else:
                waker.get_loop().call_soon_threadsafe(_resolve, waker)

    # -- settling leases --------------------------------------------------------------

    def ack(self, channel: str, tags: Iterable[str]) -> None:
        queue = self._queues.get(channel)
        if queue is None:
            return
        for tag in tags:
            queue.leases.pop(tag, None)
        self._forget_if_idle(channel, queue)

    def retry(self, channel: str, tag: str, delay: float) -> bool:
        """Give a leased message back for another attempt; False if the lease is gone."""
        delay = check_delay(delay)
        queue = self._queues.get(channel)
        held = queue.leases.pop(tag, None) if queue is not None else None
        if queue is None or held is None:
            return False
        entry = (self.clock() + delay, next(self._seq), held.attempt + 1, held.message)
        heapq.heappush(queue.delayed, entry)
        self._wake(queue)
        return True

    def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        """Move a leased message to the dead letters; False if the lease is gone."""
        queue = self._queues.get(channel)
        held = queue.leases.pop(tag, None) if queue is not None else None
        if queue is None or held is None:
            return False
        if len(queue.dead) >= self.max_dead_letters:
            oldest = queue.dead.popleft()
            self.stats.extra["dead_letters_dropped"] = (
                self.stats.extra.get("dead_letters_dropped", 0) + 1
            )
            logger.error(
                "Dead letters of %s are full (%d): dropped the oldest, %s",
                channel,
                self.max_dead_letters,
                oldest.id,
            )
        queue.dead.append(
            DeadLetter(f"{next(self._seq)}", held.message, reason, held.attempt, time.time())
        )
        return True

    # -- dead letters -----------------------------------------------------------------

    def dead_letters(self, channel: str, limit: int) -> list[DeadLetter]:
        queue = self._queues.get(channel)
        if queue is None:
            return []
        return list(itertools.islice(queue.dead, limit))

    def replay_dead_letters(self, channel: str, ids: Sequence[str] | None) -> int:
        """Send dead letters (all, or those with ``ids``) again as new messages."""
        chosen = self._remove_dead(channel, ids)
        queue = self._queue(channel) if chosen else None
        for letter in chosen:
            assert queue is not None
            queue.ready.append((1, letter.message))
        if queue is not None:
            self._wake(queue)
        return len(chosen)

    def discard_dead_letters(self, channel: str, ids: Sequence[str] | None) -> int:
        chosen = self._remove_dead(channel, ids)
        queue = self._queues.get(channel)
        if queue is not None:
            self._forget_if_idle(channel, queue)
        return len(chosen)

    def _remove_dead(self, channel: str, ids: Sequence[str] | None) -> list[DeadLetter]:
        queue = self._queues.get(channel)
        if queue is None:
            return []
        if ids is None:
            chosen = list(queue.dead)
            queue.dead.clear()
            return chosen
        wanted = set(ids)
        chosen = [letter for letter in queue.dead if letter.id in wanted]
        queue.dead = deque(letter for letter in queue.dead if letter.id not in wanted)
        return chosen

    def _forget_if_idle(self, channel: str, queue: _Queue) -> None:
        if queue.idle() and self._queues.get(channel) is queue:
            del self._queues[channel]

    def clear(self) -> None:
        for queue in self._queues.values():
            for waker in queue.wakers:
                if not waker.done():
                    waker.get_loop().call_soon_threadsafe(_resolve, waker)
        self._queues.clear()


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
