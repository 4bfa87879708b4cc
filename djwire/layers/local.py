"""Process-local channel queues: the part every layer shares.

Each channel is a bounded FIFO of ``(deadline, message)`` plus the receivers waiting
on it. Every operation is O(1) in the number of channels:

* expired messages are dropped lazily from the head of a queue when it is touched;
* queues nobody touches are found through a heap with at most one entry per
  channel (pushed when a queue first gets an item), so an idle channel's stale
  messages and its bookkeeping go away without scanning all channels.

Messages never leave a queue until a receiver takes them synchronously, so a
receive that is cancelled at any point loses nothing. Waking a receiver that
lives on another event loop (sync code calling ``async_to_sync`` from a thread)
goes through ``call_soon_threadsafe``.

Senders in this process are paced (backpressure): a ``send`` or ``group_send`` that
leaves a channel which has a receiver at or above its *high-water mark* (half its
capacity) waits, at most ``backpressure_timeout`` seconds, until that receiver has
taken it down to the *low-water mark* (a quarter). A sender that never yields (a
loop of sends in one handler) therefore cannot overrun members that keep up. A
receiver that does not get down in time is *stalled*: nobody waits for it again
until it catches up, and its full queue drops (counted) as before. A channel is
waited for only once a receiver has caught up with it (waited on it empty, or taken
it down to the low-water mark), never after its consumer ended (``detach``), and
never by the very task that receives from it. See :mod:`djwire.layers.pacing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from djwire.exceptions import ChannelFull, InvalidChannelLayerError

from .base import LayerStats, Message
from .direct import DirectSocket

#: ``_Queue.socket_loop`` when no socket is attached (None is a valid loop: no loop).
_DETACHED = object()

#: How far a channel's receiver keeps up (``_Queue.pace``): nobody has received from
#: it yet; a receiver does (senders wait for it); it fell behind (nobody waits).
UNREAD, READ, STALLED = 0, 1, 2


class _Queue:
    __slots__ = (
        "busy",
        "drainers",
        "items",
        "pace",
        "reader",
        "scheduled",
        "socket",
        "socket_loop",
        "waiters",
    )

    def __init__(self) -> None:
        # Created on first message: most channels of idle sockets never hold one.
        self.items: deque[tuple[float, Message]] | None = None
        # (future, claims): a claiming future is handed the message itself; any
        # other is only woken and its receiver takes the message from ``items``.
        self.waiters: list[tuple[asyncio.Future[Any], bool]] | None = None
        self.socket: DirectSocket | None = None
        # The socket's event loop: frames are written to it from that loop only.
        # _DETACHED while no socket is attached, so one test covers both.
        self.socket_loop: object = _DETACHED
        self.scheduled = False  # has an entry in the expiry heap
        self.pace = UNREAD
        # The task that last waited on this queue: a sender never waits for itself.
        self.reader: asyncio.Task[Any] | None = None
        # Senders waiting for this queue to go down to its low-water mark.
        self.drainers: list[asyncio.Future[None]] | None = None
        # A claim got a message and its consumer has not claimed again yet: it may
        # still be handling that message, so frames must not overtake it.
        self.busy = False

    def idle(self) -> bool:
        return not self.items and not self.waiters and self.socket is None


#: What a paced send left behind, to wait for: ``(channel, queue, None)`` for a queue
#: at its high-water mark, ``(channel, None, drain)`` for an attached socket's drain.
Backlog = list[tuple[str, "_Queue | None", "asyncio.Future[None] | None"]]


def _wake(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _prune(queue: _Queue) -> None:
    """Forget waiters that are done (cancelled claims of consumers that ended)."""
    waiters = queue.waiters
    if waiters and any(waiter.done() for waiter, _ in waiters):
        queue.waiters = [entry for entry in waiters if not entry[0].done()] or None


def _is_waited_on(queue: _Queue) -> bool:
    return queue.socket is not None or any(not waiter.done() for waiter, _ in queue.waiters or ())


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def high_water(capacity: int) -> int:
    """Queued messages at which a paced sender starts waiting for the receiver."""
    return max(1, capacity // 2)


def low_water(capacity: int) -> int:
    """...and the level the receiver must take the queue down to."""
    return high_water(capacity) // 2


def _release(drainers: list[asyncio.Future[None]]) -> None:
    """Let waiting senders go on (from any thread: a sender may be on another loop)."""
    running = running_loop()
    for future in drainers:
        loop = future.get_loop()
        if loop is running:
            _wake(future)
        else:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(_wake, future)


#: Backpressure on by default: a paced send waits at most this long for a receiver.
DEFAULT_BACKPRESSURE_TIMEOUT = 1.0


def check_backpressure_timeout(value: object) -> float:
    """``value`` as seconds, or a clear error: a wait must end, and 0 turns pacing off."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")
    ):
        raise InvalidChannelLayerError(
            "backpressure_timeout must be a finite number of seconds >= 0 (0: senders "
            f"never wait), not {value!r}"
        )
    return float(value)


class LocalChannels:
    """Bounded, expiring queues keyed by channel name, in this process."""

    def __init__(
        self,
        expiry: float,
        get_capacity: Callable[[str], int],
        stats: LayerStats,
        clock: Callable[[], float] = time.monotonic,
        backpressure_timeout: float = DEFAULT_BACKPRESSURE_TIMEOUT,
    ) -> None:
        self.expiry = expiry
        self.get_capacity = get_capacity
        self.stats = stats
        self.clock = clock
        #: Longest a paced send waits for receivers to catch up (0: no pacing).
        self.backpressure_timeout = check_backpressure_timeout(backpressure_timeout)
        #: Drain futures of sockets a paced send timed out on (see djwire.layers.pacing).
        self.stalled_drains: weakref.WeakSet[asyncio.Future[None]] = weakref.WeakSet()
        self._queues: dict[str, _Queue] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._queues)

    # -- reading, for tests and introspection (never on the hot path) -----------------

    def live(self) -> Iterator[str]:
        """Channels holding unexpired messages, or with a receiver waiting (or a socket
        attached). Reads only: expired messages are left for ``sweep()``."""
        now = self.clock()
        for channel, queue in list(self._queues.items()):
            if self._pending(queue, now) or _is_waited_on(queue):
                yield channel

    def pending(self, channel: str) -> int | None:
        """How many unexpired messages ``channel`` holds; None if it is not live."""
        queue = self._queues.get(channel)
        if queue is None:
            return None
        count = self._pending(queue, self.clock())
        if count or _is_waited_on(queue):
            return count
        return None

    @staticmethod
    def _pending(queue: _Queue, now: float) -> int:
        # Not a bisect: a message given back by a cancelled receiver sits at the head
        # with a fresh deadline, so deadlines are not quite ordered.
        return sum(1 for deadline, _ in queue.items or () if deadline > now)

    # -- sending ------------------------------------------------------------------

    def put(self, channel: str, message: Message) -> None:
        """Queue ``message``; raise :class:`ChannelFull` at capacity."""
        if not self.offer(channel, message):
            raise ChannelFull(channel, self.get_capacity(channel))

    def offer(self, channel: str, message: Message, backlog: Backlog | None = None) -> bool:
        """Queue ``message`` unless the channel is full; True if queued.

        With ``backlog``, a paced sender's: a channel left at its high-water mark
        with a receiver that keeps up is added to it (see :mod:`djwire.layers.pacing`).
        """
        now = self.clock()
        self.sweep(now)
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = _Queue()
        if queue.waiters and not queue.items and self._hand_over(queue, message):
            return True
        items = queue.items
        if items is None:
            items = queue.items = deque()
        elif items and len(items) >= self.get_capacity(channel):
            self._drop_expired(queue, now)
            if len(items) >= self.get_capacity(channel):
                return False
        items.append((now + self.expiry, message))
        if not queue.scheduled:
            self._schedule(channel, queue, now + self.expiry)
        if queue.waiters:
            self._wake_one(channel, queue)
        if (
            backlog is not None
            and queue.pace == READ
            and len(items) >= high_water(self.get_capacity(channel))
        ):
            backlog.append((channel, queue, None))
        return True

    def _hand_over(self, queue: _Queue, message: Message) -> bool:
        """Give ``message`` straight to the first receiver waiting on this loop, if any.

        Claims keep it. A ``get()`` that is cancelled before it runs puts it back
        at the head of the queue (see there), so handing over loses nothing. A
        ``get()`` waiter stays listed until it has run, and while one that was
        resolved is listed, nothing is handed past it: if both were cancelled, the
        later message could otherwise be put back ahead of the earlier one.
        """
        assert queue.waiters is not None
        waiters = queue.waiters
        for index, (waiter, claims) in enumerate(waiters):
            if waiter.done():
                if claims:
                    continue  # a cancelled claim; its consumer removes it
                return False
            if waiter.get_loop() is not running_loop():
                return False
            waiter.set_result(message)
            if claims:
                del waiters[index]
                queue.busy = True
            return True
        return False

    # -- receiving ------------------------------------------------------------------

    def take(self, channel: str) -> Message | None:
        """The next unexpired message, or None; never waits."""
        queue = self._queues.get(channel)
        if queue is None or not queue.items:
            return None
        items = queue.items
        self._drop_expired(queue, self.clock())
        if not items:
            return None
        message = items.popleft()[1]
        if queue.pace != READ or queue.drainers:
            self._taken(channel, queue, len(items))
        if not items:
            queue.items = None  # an idle channel keeps no buffer
        return message

    def stall(self, channel: str) -> None:
        """Senders stop waiting for ``channel``'s receiver until it catches up."""
        queue = self._queues.get(channel)
        if queue is not None:
            queue.pace = STALLED

    def _taken(self, channel: str, queue: _Queue, left: int) -> None:
        """A receiver took a message: down to the low-water mark, it keeps up (senders
        wait for it from now on) and the senders waiting for it go on."""
        if left <= low_water(self.get_capacity(channel)):
            queue.pace = READ
            drainers = queue.drainers
            if drainers:
                queue.drainers = None
                _release(drainers)

    def claim(self, channel: str) -> asyncio.Future[Message]:
        """A future that resolves to the next message, without a task per wait.

        Used by consumers, whose pending receive otherwise costs a Task and its
        coroutine frame per idle connection. Once resolved, the message belongs to
        the caller: only use this where a caller that stops has no one to hand an
        unread message to anyway (a consumer that is ending). ``get()`` is the
        cancel-safe receive.
        """
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = _Queue()
        queue.reader = asyncio.current_task()
        message = self.take(channel)  # catching up: take() says when it has
        queue.busy = message is not None  # asking again: done with the last one
        if message is not None:
            future.set_result(message)
            return future
        queue.pace = READ  # the queue is empty and a receiver is waiting: it keeps up
        _prune(queue)  # may leave None: a cancelled claim was the only waiter
        if queue.waiters is None:
            queue.waiters = []
        # No done-callback to tidy up: claims are removed when they are fulfilled,
        # and cancelled ones when the consumer detaches at its end (or by sweep()).
        # That saves a callback and its bookkeeping per message and per idle socket.
        queue.waiters.append((future, True))
        return future

    def _fulfil_claim(self, channel: str, future: asyncio.Future[Message]) -> None:
        # Runs on the claim's own loop, after a send from another thread.
        queue = self._queues.get(channel)
        if future.done():
            if queue is not None and queue.items and queue.waiters:
                self._wake_one(channel, queue)
            return
        message = self.take(channel)
        if message is not None:
            future.set_result(message)
            if queue is not None:
                queue.busy = True
        elif queue is not None:
            # Someone else took it: wait again.
            if queue.waiters is None:
                queue.waiters = []
            queue.waiters.append((future, True))

    async def get(self, channel: str) -> Message:
        """Wait for and return the next message for ``channel``."""
        while True:
            message = self.take(channel)
            if message is not None:
                return message
            queue = self._queues.get(channel)
            if queue is None:
                queue = self._queues[channel] = _Queue()
            # Resolves to None (a message was queued: take it) or to a message
            # handed over by a sender on this loop while the queue was empty.
            waiter: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
            entry = (waiter, False)
            queue.pace = READ
            queue.reader = asyncio.current_task()
            if queue.waiters is None:
                queue.waiters = []
            queue.waiters.append(entry)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                # We may have been woken, or handed a message, and cancelled before
                # running: put the message back first in line and pass the wake-up
                # on, so nothing is lost or left unnoticed.
                if waiter.done() and not waiter.cancelled():
                    self._give_back(channel, queue, waiter.result())
                self._stop_waiting(channel, queue, entry, forget=True)
                raise
            # Woken: this receiver will likely be back. Its queue stays (until expiry,
            # when idle) so senders keep knowing it has a receiver that keeps up.
            self._stop_waiting(channel, queue, entry, forget=False)
            if handed is not None:
                return handed

    def _stop_waiting(
        self, channel: str, queue: _Queue, entry: tuple[asyncio.Future[Any], bool], forget: bool
    ) -> None:
        if queue.waiters and entry in queue.waiters:
            queue.waiters.remove(entry)
            if not queue.waiters:
                queue.waiters = None
        if forget:
            self._forget_if_idle(channel, queue)
        elif not queue.scheduled and self._queues.get(channel) is queue:
            self._schedule(channel, queue, self.clock() + self.expiry)

    def _give_back(self, channel: str, queue: _Queue, message: Message | None) -> None:
        """Undo a hand-over to a receiver that was cancelled before it ran."""
        if message is not None:
            if queue.items is None:
                queue.items = deque()
            deadline = self.clock() + self.expiry
            queue.items.appendleft((deadline, message))
            if not queue.scheduled:
                self._schedule(channel, queue, deadline)
        if queue.items and queue.waiters:
            self._wake_one(channel, queue)

    def _wake_one(self, channel: str, queue: _Queue) -> None:
        assert queue.waiters is not None
        running = running_loop()
        for waiter, claims in queue.waiters:
            if waiter.done():
                continue
            loop = waiter.get_loop()
            if claims:
                if loop is running:
                    message = self.take(channel)
                    if message is not None:
                        waiter.set_result(message)
                        queue.waiters.remove((waiter, claims))
                        queue.busy = True
                else:
                    queue.waiters.remove((waiter, claims))
                    loop.call_soon_threadsafe(self._fulfil_claim, channel, waiter)
            elif loop is running:
                waiter.set_result(None)
            else:
                loop.call_soon_threadsafe(_wake, waiter)
            return

    # -- direct sockets ---------------------------------------------------------

    def attach(self, channel: str, socket: DirectSocket) -> None:
        """Attach ``socket`` (from its own event loop, the one that writes to it)."""
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = _Queue()
        queue.socket = socket
        queue.socket_loop = running_loop()
        queue.pace = READ  # a client reads it

    def detach(self, channel: str) -> None:
        queue = self._queues.get(channel)
        if queue is not None:
            queue.socket = None
            queue.socket_loop = _DETACHED
            # Its consumer has ended: nobody to wait for (unless a receiver comes back).
            queue.pace = UNREAD
            queue.reader = None
            self._forget_if_idle(channel, queue)

    def socket_for(
        self, channel: str, loop: asyncio.AbstractEventLoop | None
    ) -> DirectSocket | None:
        """The socket attached to ``channel`` if a sender on ``loop`` may write to it:
        its queue is empty and its consumer is not handling a message from it (so
        order is kept), and the socket is on ``loop`` (asyncio transports are not
        thread-safe: another thread's sender queues instead)."""
        queue = self._queues.get(channel)
        if queue is None or queue.items or queue.busy or queue.socket_loop is not loop:
            return None
        return queue.socket

    # -- housekeeping -------------------------------------------------------------

    def clear(self) -> None:
        for queue in self._queues.values():
            for waiter, _ in queue.waiters or ():
                waiter.get_loop().call_soon_threadsafe(waiter.cancel)
            if queue.drainers:
                _release(queue.drainers)
        self._queues.clear()
        self._heap.clear()

    def sweep(self, now: float | None = None) -> None:
        """Expire messages of queues whose oldest deadline has passed."""
        heap = self._heap
        if not heap:
            return
        if now is None:
            now = self.clock()
        while heap and heap[0][0] <= now:
            _, _, channel = heapq.heappop(heap)
            queue = self._queues.get(channel)
            if queue is None:
                continue
            queue.scheduled = False
            _prune(queue)
            self._drop_expired(queue, now)
            if queue.items:
                self._schedule(channel, queue, queue.items[0][0])
            elif queue.idle():
                del self._queues[channel]

    def _forget_if_idle(self, channel: str, queue: _Queue) -> None:
        # A scheduled queue is forgotten by sweep(); others must go now or leak.
        _prune(queue)
        if not queue.scheduled and queue.idle() and self._queues.get(channel) is queue:
            del self._queues[channel]

    def _schedule(self, channel: str, queue: _Queue, deadline: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, channel))
        queue.scheduled = True

    def _drop_expired(self, queue: _Queue, now: float) -> None:
        items = queue.items
        if not items:
            return
        dropped = 0
        while items and items[0][0] <= now:
            items.popleft()
            dropped += 1
        if dropped:
            self.stats.expired += dropped
