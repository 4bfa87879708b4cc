"""Named channels as work queues over Redis: the "queues" extension.

The semantics are those of :mod:`djwire.layers.queues`; the Redis side is in
:mod:`.queue_scripts` (one atomic script per operation, all keys of a channel under
its hash tag). This module is the process side:

* ``take`` runs one QUEUE_TAKE per batch. Without a lease, each concurrent take
  uses a *slot* of its own (a Redis key holding its last batch until the slot's
  next take confirms it was delivered), so a take cancelled mid-call hands its
  batch to the next take instead of losing it. With a lease, the script hands
  out tags. A take that finds nothing waits for the channel's wake-up (pushes to an
  empty list publish one) or until the next lease or delayed message falls due,
  as the script's reply says, and never longer than ``poll_interval``.
* ``ack`` calls made in the same event-loop turn for one channel go to Redis as
  one script call.
* The process remembers the leases it holds until they are settled, so that
  after Redis restarts and loses them they are put back (as group memberships
  are), and acknowledgements a Redis outage kept from being written are written
  when it is back. So a Redis restart loses no message a worker holds; messages
  still queued, delayed messages and dead letters are lost with a Redis that does
  not persist its data (see docs/layers.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from djwire.exceptions import ChannelFull, LayerUnavailable

from ..base import LayerStats, Message, check_message
from ..queue_types import DeadLetter, Delivery, check_delay, require_named
from . import envelope
from .arrivals import Arrivals
from .cluster import Router
from .commands import Commands, ignore_result
from .config import Limits
from .envelope import Kind, now_ms
from .feeds import Take
from .pipe import CommandPipe
from .pushes import Pushes
from .queue_scripts import (
    ACK,
    DEAD_DISCARD,
    DEAD_LETTER,
    DEAD_LIST,
    DEAD_REPLAY,
    LEASE_RESTORE,
    QUEUE_TAKE,
    RETRY,
    SEND_LATER,
)
from .serializers import Serializer
from .sharding import Keys

logger = logging.getLogger("djwire.layers.redis")

#: A dead letter's reason is kept up to this many characters (a traceback can be long;
#: ``max_dead_letters`` of them must stay a bounded amount of memory).
MAX_REASON_CHARS = 4000
_ACK_CHUNK = 1000  # tags per ACK call (Lua's unpack() takes at most ~8000 values)
_LOG_EVERY = 5.0  # seconds between two log lines about redeliveries


class QueueHost(Protocol):
    """What the queues need from :class:`~.core.RedisChannelLayer`."""

    keys: Keys
    token: str
    limits: Limits
    stats: LayerStats
    router: Router
    expiry: float
    serializer: Serializer
    commands: Commands
    pushes: Pushes
    arrivals: Arrivals

    def get_capacity(self, channel: str) -> int: ...

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool: ...

    async def send(self, channel: str, message: Message) -> None: ...


@dataclass(slots=True)
class _Slot:
    """Where one no-lease take keeps its batch until the slot's next take."""

    key: bytes
    confirmed: bytes = b""


@dataclass(slots=True)
class _Held:
    item: bytes
    deadline: float  # time.monotonic()


@dataclass(slots=True)
class _AckBatch:
    tags: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class LeaseBook:
    """The leases this process holds and has not settled, per channel.

    Entries leave when settled or, at the latest, when their lease has run out
    (then the message is another taker's), so the book stays as small as the work
    in hand.
    """

    def __init__(self) -> None:
        self._held: dict[str, dict[str, _Held]] = {}

    def add(self, channel: str, tag: str, item: bytes, deadline: float) -> None:
        held = self._held.get(channel)
        if held is None:
            held = self._held[channel] = {}
        else:
            # Oldest first (insertion order): drop the run-out ones from the front.
            now = time.monotonic()
            for old in list(itertools.islice(held, 64)):
                if held[old].deadline > now:
                    break
                del held[old]
        held[tag] = _Held(item, deadline)

    def settle(self, channel: str, tags: Iterable[str]) -> None:
        held = self._held.get(channel)
        if held is None:
            return
        for tag in tags:
            held.pop(tag, None)
        if not held:
            del self._held[channel]

    def live(self, channel: str) -> list[tuple[str, int, bytes]]:
        """(tag, ms left, item) of the leases of ``channel`` that have not run out."""
        now = time.monotonic()
        held = self._held.get(channel, {})
        return [
            (tag, int((entry.deadline - now) * 1000), entry.item)
            for tag, entry in held.items()
            if entry.deadline > now
        ]

    def channels(self) -> list[str]:
        return list(self._held)

    def clear(self) -> None:
        self._held.clear()


class _Wake:
    """A take's subscription to its channel's wake-ups (pushes to an empty list)."""

    def __init__(self, channel: bytes) -> None:
        self.channel = channel
        self.event = asyncio.Event()
        self._subscriber: Any = None

    def attach(self, subscriber: Any) -> None:
        self._subscriber = subscriber
        subscriber.watch(self.channel, self._woken)

    def _woken(self, payload: bytes) -> None:
        self.event.set()

    async def wait(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.event.wait()
        except TimeoutError:
            pass

    def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.unwatch(self.channel, self._woken)
            self._subscriber = None


class RedisQueues:
    """The queues extension of one :class:`~.core.RedisChannelLayer`."""

    def __init__(self, host: QueueHost) -> None:
        self.host = host
        self.leases = LeaseBook()
        self._expiry_ms = int(host.expiry * 1000)
        self._list_ttl = math.ceil(host.expiry) + 1  # as the layer's named-channel pushes
        self._slot_ttl = math.ceil(host.expiry) + 60
        self._ids = itertools.count(1)
        self._slots: dict[str, list[_Slot]] = {}
        self._unsent_acks: dict[str, set[str]] = {}
        self._ack_batches: dict[tuple[int, str], _AckBatch] = {}
        self._last_log = 0.0
        self._unlogged = 0

    # -- keys -------------------------------------------------------------------------

    def _keys(self, channel: str) -> tuple[str, bytes, bytes, bytes, bytes]:
        """tag, list, leases, leased, delayed."""
        keys = self.host.keys
        return (
            keys.channel_tag(channel),
            keys.channel(channel),
            keys.leases(channel),
            keys.leased(channel),
            keys.delayed(channel),
        )

    def _check(self, channel: str) -> None:
        self.host.require_valid_channel_name(channel)
        require_named(channel)

    def _new_id(self) -> str:
        return f"{self.host.token}.{next(self._ids)}"

    # -- taking -----------------------------------------------------------------------

    async def take(self, channel: str, count: int, lease: float | None) -> list[Delivery]:
        self._check(channel)
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an int >= 1, not {count!r}")
        if lease is not None and not (isinstance(lease, int | float) and lease > 0):
            raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
        count = min(count, self.host.limits.max_batch)
        limits = self.host.limits
        wake: _Wake | None = None
        try:
            while True:
                if wake is not None:
                    wake.event.clear()  # before looking: a wake-up from now on counts
                try:
                    deliveries, due_in = await self._take_once(channel, count, lease)
                except LayerUnavailable:
                    # Logged and counted by the pipe; look again once it may be back.
                    deliveries, due_in = [], limits.reconnect_backoff[1]
                except Exception:  # an error reply: keep the worker taking, say so
                    logger.exception("Taking from channel %s failed; retrying", channel)
                    deliveries, due_in = [], limits.reconnect_backoff[1]
                if deliveries:
                    return deliveries
                if wake is None:
                    wake = await self._watch(channel)
                    continue  # look again: a push may have come before the subscription
                poll = limits.poll_interval
                await wake.wait(poll if due_in is None else min(due_in, poll))
        finally:
            if wake is not None:
                wake.close()

    async def _watch(self, channel: str) -> _Wake:
        tag = self.host.keys.channel_tag(channel)
        wake = _Wake(self.host.keys.wake(self.host.keys.channel(channel)))
        try:
            node = await self.host.commands.node(tag)
        except LayerUnavailable:
            return wake  # the cluster cannot be reached: poll until it can
        wake.attach(self.host.commands.subscriber(node))
        return wake

    def _take_args(
        self, confirmed: bytes, batch_id: bytes | str, count: int, lease_ms: int, wake: bytes
    ) -> tuple[Any, ...]:
        now = now_ms()
        return (
            confirmed,
            batch_id,
            count,
            self._slot_ttl,
            lease_ms,
            now,
            b"%013d" % (now + self._expiry_ms),
            self._list_ttl,
            wake,
            self.host.router.publish,
            self.host.limits.max_batch,
            lease_ms + self._expiry_ms + 1000,
        )

    async def _take_once(
        self, channel: str, count: int, lease: float | None
    ) -> tuple[list[Delivery], float | None]:
        """One QUEUE_TAKE: the deliveries, and seconds until something falls due."""
        tag, key, leases, leased, delayed = self._keys(channel)
        wake = self.host.keys.wake(key)
        if lease is not None:
            lease_ms = max(1, round(lease * 1000))
            base = self._new_id()
            args = self._take_args(b"", base, count, lease_ms, wake)
            # The taken key is unused with a lease; it is passed for the shared slot.
            keys = (key, self.host.keys.taken(key, self.host.token), leases, leased, delayed)
            reply = await self.host.commands.script(tag, QUEUE_TAKE, keys, args)
            return self._deliveries(channel, reply, lease), self._due_in(reply)
        slot = self._slot(channel)
        try:
            args = self._take_args(slot.confirmed, self._new_id(), count, 0, wake)
            keys = (key, slot.key, leases, leased, delayed)
            reply = await self.host.commands.script(tag, QUEUE_TAKE, keys, args)
            if len(reply) > 3:
                slot.confirmed = reply[3]
        finally:
            # Cancelled or failed before the reply: the slot keeps its old
            # confirmation, so its next take gets this batch back from Redis.
            self._slots.setdefault(channel, []).append(slot)
        return self._deliveries(channel, reply, None), self._due_in(reply)

    def _slot(self, channel: str) -> _Slot:
        free = self._slots.get(channel)
        if free:
            return free.pop()
        name = f"{self.host.token}.{next(self._ids)}"
        return _Slot(self.host.keys.taken(self.host.keys.channel(channel), name))

    def _due_in(self, reply: list[Any]) -> float | None:
        wait_ms = int(reply[0])
        return None if wait_ms < 0 else wait_ms / 1000

    def _account(self, channel: str, reply: list[Any]) -> None:
        expired, redelivered = int(reply[1]), int(reply[2])
        if expired:
            self.host.stats.expired += expired
        if redelivered:
            stats = self.host.stats.extra
            stats["redelivered"] = stats.get("redelivered", 0) + redelivered
            self._unlogged += redelivered
            now = time.monotonic()
            if now - self._last_log >= _LOG_EVERY:  # one line per burst, not per message
                logger.warning(
                    "%d message(s) on %s were not acknowledged within their lease; "
                    "delivering them again",
                    self._unlogged,
                    channel,
                )
                self._last_log = now
                self._unlogged = 0

    def _deliveries(self, channel: str, reply: list[Any], lease: float | None) -> list[Delivery]:
        self._account(channel, reply)
        if len(reply) <= 5:
            return []
        base = reply[3].decode()
        now = now_ms()
        deadline = time.monotonic() + lease if lease is not None else 0.0
        deliveries = []
        unusable: list[str] = []
        for number, raw in enumerate(itertools.islice(reply, 5, None), 1):
            tag = f"{base}.{number}" if lease is not None else None
            try:
                item = envelope.parse(raw)
            except ValueError:
                self.host.arrivals.malformed()
                if tag is not None:
                    unusable.append(tag)  # settled at once: it would only come back
                continue
            if tag is None and item.deadline_ms <= now:
                # A batch handed back after a cancelled take may have aged.
                self.host.stats.expired += 1
                continue
            message = self.host.arrivals.decode(item.payload)  # None: counted and logged
            if message is None:
                if tag is not None:
                    unusable.append(tag)
                continue
            if tag is not None:
                self.leases.add(channel, tag, raw, deadline)
            deliveries.append(Delivery(message, tag, item.attempt))
        if unusable:
            self.ack_later(channel, unusable)
        return deliveries

    # -- the named-channel feed (plain receive) ----------------------------------------

    def feed_take(self, channel: str, taken: bytes) -> tuple[Take, Callable[[], float]]:
        """The take and idle wait of the feed serving ``receive()`` on ``channel``:
        it moves due delayed messages and overdue leases to the list too, and sleeps
        no longer than until the next of them falls due."""
        tag, key, leases, leased, delayed = self._keys(channel)
        wake = self.host.keys.wake(key)
        due: list[float | None] = [None]
        poll = self.host.limits.poll_interval

        async def take(count: int, confirmed: bytes, batch_id: bytes, lazy: bool) -> Any:
            args = self._take_args(confirmed, batch_id, count, 0, wake)
            reply = await self.host.commands.script(
                tag, QUEUE_TAKE, (key, taken, leases, leased, delayed), args
            )
            self._account(channel, reply)
            due[0] = self._due_in(reply)
            return reply[3:]  # [] or TAKE's [batch id, refused, items...]

        def idle_wait() -> float:
            return poll if due[0] is None else min(due[0], poll)

        return take, idle_wait

    # -- settling leases --------------------------------------------------------------

    async def ack(self, channel: str, tags: Iterable[str]) -> None:
        self.host.require_valid_channel_name(channel)
        task = self.ack_later(channel, tags)
        if task is not None:
            await asyncio.shield(task)

    def ack_later(self, channel: str, tags: Iterable[str]) -> asyncio.Task[None] | None:
        """Queue ``tags`` for this loop turn's ACK call on ``channel``; its task."""
        tags = [tag for tag in tags if isinstance(tag, str)]
        if not tags:
            return None
        self.leases.settle(channel, tags)
        loop = asyncio.get_running_loop()
        key = (id(loop), channel)
        batch = self._ack_batches.get(key)
        if batch is None or batch.task is None or batch.task.done():
            batch = self._ack_batches[key] = _AckBatch()
            batch.task = loop.create_task(self._send_acks(key, channel, batch))
            batch.task.add_done_callback(ignore_result)
        batch.tags.extend(tags)
        return batch.task

    async def _send_acks(self, key: tuple[int, str], channel: str, batch: _AckBatch) -> None:
        # Runs a loop turn after the first ack: every ack of that turn has joined.
        if self._ack_batches.get(key) is batch:
            del self._ack_batches[key]
        tags = batch.tags
        tag, _, leases, leased, _ = self._keys(channel)
        for start in range(0, len(tags), _ACK_CHUNK):
            chunk = tuple(tags[start : start + _ACK_CHUNK])
            try:
                await self.host.commands.script(tag, ACK, (leases, leased), chunk)
            except LayerUnavailable:
                # Written once Redis is back (see on_connect); meanwhile a Redis that
                # kept its data would deliver these messages again after the lease.
                self._remember_unsent(channel, tags[start:])
                return

    def _remember_unsent(self, channel: str, tags: Sequence[str]) -> None:
        unsent = self._unsent_acks.setdefault(channel, set())
        room = self.host.limits.max_pending - sum(map(len, self._unsent_acks.values()))
        unsent.update(tags[: max(0, room)])
        if len(tags) > room:
            logger.warning(
                "%d acknowledgement(s) on %s could not be written to Redis nor kept "
                "(max_pending): those messages may be delivered again",
                len(tags) - max(0, room),
                channel,
            )

    async def retry(self, channel: str, tag: str, delay: float) -> bool:
        self.host.require_valid_channel_name(channel)
        delay_ms = round(check_delay(delay) * 1000)
        keys_tag, key, leases, leased, delayed = self._keys(channel)
        args = (
            tag,
            delay_ms,
            b"%013d" % (now_ms() + delay_ms + self._expiry_ms),
            delay_ms + self._expiry_ms + 1000,
            self.host.keys.wake(key),
            self.host.router.publish,
        )
        try:
            reply = await self.host.commands.script(
                keys_tag, RETRY, (leases, leased, delayed), args
            )
        except LayerUnavailable:
            # The lease stays (in Redis if it survives, else put back from our book),
            # so the message comes again when the lease runs out: a retry all the same.
            return False
        self.leases.settle(channel, [tag])
        return bool(reply)

    async def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        self.host.require_valid_channel_name(channel)
        keys = self.host.keys
        keys_tag, _, leases, leased, _ = self._keys(channel)
        text = str(reason)[:MAX_REASON_CHARS].encode("utf-8", "replace")
        head = b"%013d%06d" % (now_ms(), len(text)) + text
        try:
            reply = await self.host.commands.script(
                keys_tag,
                DEAD_LETTER,
                (leases, leased, keys.dead(channel), keys.dead_letters(channel)),
                (tag, head, self.host.limits.max_dead_letters),
            )
        except LayerUnavailable:
            return False  # as retry(): the message comes again after its lease
        self.leases.settle(channel, [tag])
        if len(reply) > 1:
            dropped = len(reply) - 1
            extra = self.host.stats.extra
            extra["dead_letters_dropped"] = extra.get("dead_letters_dropped", 0) + dropped
            logger.error(
                "Dead letters of %s are full (max_dead_letters=%d): dropped the oldest, %s",
                channel,
                self.host.limits.max_dead_letters,
                ", ".join(item.decode() for item in reply[1:]),
            )
        return bool(reply[0])

    # -- dead letters -----------------------------------------------------------------

    async def dead_letters(self, channel: str, limit: int) -> list[DeadLetter]:
        self.host.require_valid_channel_name(channel)
        if limit < 1:
            return []
        keys = self.host.keys
        tag = keys.channel_tag(channel)
        reply = await self.host.commands.repeatable(
            lambda: self.host.commands.script(
                tag,
                DEAD_LIST,
                (keys.dead(channel), keys.dead_letters(channel)),
                (min(limit, self.host.limits.max_dead_letters),),
            )
        )
        letters = []
        for id_, entry in zip(reply[::2], reply[1::2], strict=True):
            letter = self._parse_letter(id_.decode(), entry)
            if letter is not None:
                letters.append(letter)
        return letters

    def _parse_letter(self, id_: str, entry: bytes) -> DeadLetter | None:
        try:
            failed_ms = int(entry[:13])
            length = int(entry[13:19])
            reason = entry[19 : 19 + length].decode("utf-8", "replace")
            item = envelope.parse(entry[19 + length :])
        except ValueError:
            self.host.arrivals.malformed()
            return None
        message = self.host.arrivals.decode(item.payload)
        if message is None:
            return None
        return DeadLetter(id_, message, reason, item.attempt, failed_ms / 1000)

    async def replay_dead_letters(self, channel: str, ids: Sequence[str] | None) -> int:
        self.host.require_valid_channel_name(channel)
        keys = self.host.keys
        tag, key = keys.channel_tag(channel), keys.channel(channel)
        args = (
            b"%013d" % (now_ms() + self._expiry_ms),
            self._list_ttl,
            keys.wake(key),
            self.host.router.publish,
            *_ids(ids),
        )
        if ids is not None and len(args) == 4:
            return 0
        dead = (keys.dead(channel), keys.dead_letters(channel), key)
        reply = await self.host.commands.repeatable(
            lambda: self.host.commands.script(tag, DEAD_REPLAY, dead, args)
        )
        return int(reply)

    async def discard_dead_letters(self, channel: str, ids: Sequence[str] | None) -> int:
        self.host.require_valid_channel_name(channel)
        keys = self.host.keys
        args = _ids(ids)
        if ids is not None and not args:
            return 0
        reply = await self.host.commands.repeatable(
            lambda: self.host.commands.script(
                keys.channel_tag(channel),
                DEAD_DISCARD,
                (keys.dead(channel), keys.dead_letters(channel)),
                args,
            )
        )
        return int(reply)

    # -- sending later ----------------------------------------------------------------

    async def send_later(self, channel: str, message: Message, delay: float) -> None:
        self._check(channel)
        delay_ms = round(check_delay(delay) * 1000)
        check_message(message)
        if delay_ms == 0:
            await self.host.send(channel, message)
            return
        payload = self.host.serializer.dumps(message)
        # Expiry counts from when the message is due, as if it were sent then.
        deadline = now_ms() + delay_ms + self._expiry_ms
        item = envelope.build(deadline, Kind.MESSAGE, channel, payload)
        member = self._new_id().encode() + b"|" + item
        tag, key, _, _, delayed = self._keys(channel)
        capacity = self.host.get_capacity(channel)
        command = SEND_LATER.evalsha(
            (delayed,),
            (
                member,
                delay_ms,
                capacity,
                self._expiry_ms,
                delay_ms + self._expiry_ms + 1000,
                self.host.keys.wake(key),
                self.host.router.publish,
            ),
        )
        result = await self.host.pushes.push(tag, lambda pipe: pipe.call(command, message=True))
        if result == -1:
            raise ChannelFull(channel, capacity)
        if result:
            self.host.stats.expired += result

    # -- Redis coming back ------------------------------------------------------------

    def on_connect(self, pipe: CommandPipe, restarted: bool) -> None:
        """A pipe to a node (re)connected: write the acknowledgements an outage held
        back and, if the node ``restarted`` (and so lost its data), put back the
        leases this process holds on it."""
        router = self.host.router
        channels = set(self._unsent_acks) | (set(self.leases.channels()) if restarted else set())
        restored = 0
        for channel in channels:
            tag, _, leases, leased, _ = self._keys(channel)
            if router.ready and router.node_for(tag) != pipe.node:
                continue
            unsent = self._unsent_acks.pop(channel, set())
            if unsent:
                tags = sorted(unsent)
                for start in range(0, len(tags), _ACK_CHUNK):
                    chunk = tuple(tags[start : start + _ACK_CHUNK])
                    pipe.call(ACK.evalsha((leases, leased), chunk)).add_done_callback(
                        ignore_result
                    )
            live = self.leases.live(channel) if restarted else []
            if live:
                ttl = max(ms for _, ms, _ in live) + self._expiry_ms + 1000
                args: list[Any] = [ttl]
                for lease_tag, ms_left, item in live:
                    args += [lease_tag, ms_left, item]
                pipe.call(LEASE_RESTORE.evalsha((leases, leased), tuple(args))).add_done_callback(
                    ignore_result
                )
                restored += len(live)
        if restored:
            logger.warning(
                "Redis at %s lost its data: put back the %d lease(s) this process holds; "
                "messages that were queued, delayed or dead letters on it are lost",
                pipe.node,
                restored,
            )

    def clear(self) -> None:
        """Forget local state (the layer was flushed)."""
        self.leases.clear()
        self._unsent_acks.clear()
        self._slots.clear()


def _ids(ids: Sequence[str] | None) -> tuple[str, ...]:
    if ids is None:
        return ()
    if isinstance(ids, str):
        raise TypeError("ids must be a list of dead letter ids, not one string")
    for id_ in ids:
        if not isinstance(id_, str):
            raise TypeError(f"dead letter ids are strings, not {type(id_).__name__}")
    return tuple(ids)
