"""Named channels as work queues over the shared store: the "queues" extension.

The semantics are those of :mod:`djwire.layers.queues` (batch takes, leases with
redelivery, retries, dead letters, delayed sends); the rows live in the store (see
:mod:`.store`), so every process of the space takes from the same queue, and a lease
its taker did not settle (the taker was killed) makes the message ready again for
any of them. A take waits through a :class:`~.watches.Watch`: woken by the senders,
or when the store says the next delayed message or lease falls due.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from djwire.exceptions import ChannelFull

from ..base import count_loss
from ..queue_types import DeadLetter, Delivery, check_delay, require_named
from . import frames
from .store import Pushed, StoreFull, now_ms
from .watches import Watch

if TYPE_CHECKING:
    from .core import IPCChannelLayer

logger = logging.getLogger("djwire.layers.ipc")


class NamedQueues:
    """The named channels of one layer instance (one process of the space)."""

    def __init__(self, layer: IPCChannelLayer) -> None:
        self.layer = layer
        self.watches: dict[str, Watch] = {}
        self._leases = itertools.count(1)

    def poke(self, channel: str) -> None:
        """``channel`` changed in the store: wake this process's takers of it."""
        watch = self.watches.get(channel)
        if watch is not None:
            watch.poke()

    def close_idle(self) -> None:
        """Stop listening on channels nobody in this process waits on."""
        for watch in list(self.watches.values()):
            if not watch.waiters:
                watch.unlisten()
                self._forget_watch(watch)

    # -- taking -------------------------------------------------------------------------

    async def take(self, channel: str, count: int, lease: float | None) -> list[Delivery]:
        """Wait for a message on named ``channel``; up to ``count`` of them, taken in
        one store transaction, leased for ``lease`` seconds if given."""
        layer = self.layer
        layer.require_valid_channel_name(channel)
        require_named(channel)
        if count < 1:
            raise ValueError("count must be at least 1")
        if lease is not None and not lease > 0:
            raise ValueError("lease must be a positive number of seconds")
        count = min(count, layer.limits.max_batch)
        if lease is None:
            # What an earlier receive() left in this process goes first.
            local: list[Delivery] = []
            while len(local) < count and (message := layer.local.take(channel)) is not None:
                local.append(Delivery(message))
            if local:
                return local
        layer._prepare()
        layer._ensure_inbox()  # wake-ups arrive there
        watch = self.watches.get(channel)
        if watch is None:
            watch = self.watches[channel] = Watch(
                channel, layer.token, layer.store, layer.limits.poll_interval
            )
        try:
            await watch.enter()
        except StoreFull:
            layer._store_full()
            raise ChannelFull(channel) from None
        try:
            while True:
                wakes = watch.wakes
                now = now_ms()
                ready, due = layer.store.peek(channel, now)
                if ready:
                    deliveries = await self._take_now(channel, count, lease, now_ms())
                    if deliveries:
                        return deliveries
                    continue  # another process was quicker: look again
                wait = layer.limits.poll_interval
                if due is not None:
                    wait = min(wait, max(0.0, (due - now) / 1000))
                await watch.sleep(wakes, wait)
        finally:
            watch.leave(self._forget_watch)

    async def _take_now(
        self, channel: str, count: int, lease: float | None, now: int
    ) -> list[Delivery]:
        layer = self.layer
        store = layer.store
        held = None
        if lease is not None:
            held = (f"{layer.token}.{next(self._leases)}.", now + int(lease * 1000))
        expiry = layer.expiry_ms
        taken = await layer._store_write(
            lambda c: store.take(c, channel, count, now, expiry, held), channel
        )
        layer.stats.expired += taken.expired
        if taken.redelivered:
            logger.warning(
                "%d message(s) on %s were not acknowledged within their lease; "
                "delivering them again",
                taken.redelivered,
                channel,
            )
        deliveries = []
        for payload, tag, attempt in taken.rows:
            try:
                message = frames.unpack_message(payload)
            except Exception:
                layer._on_bad_frame("malformed")
                continue
            deliveries.append(Delivery(message, tag, attempt))
        return deliveries

    def _forget_watch(self, watch: Watch) -> None:
        if self.watches.get(watch.channel) is watch:
            del self.watches[watch.channel]

    # -- settling leases ----------------------------------------------------------------

    async def ack(self, channel: str, tags: list[str]) -> None:
        require_named(channel)
        store = self.layer.store
        await self.layer._store_write(lambda c: store.ack(c, channel, list(tags)), channel)

    async def retry(self, channel: str, tag: str, delay: float) -> bool:
        require_named(channel)
        layer = self.layer
        delay_ms = int(check_delay(delay) * 1000)
        store, now, expiry = layer.store, now_ms(), layer.expiry_ms
        pushed = await layer._store_write(
            lambda c: store.retry(c, channel, tag, now + delay_ms, expiry, now), channel
        )
        if pushed is None:
            return False
        layer._wake(pushed.listeners)
        return True

    async def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        require_named(channel)
        layer = self.layer
        store, now, keep = layer.store, now_ms(), layer.limits.max_dead_letters
        held, dropped = await layer._store_write(
            lambda c: store.dead_letter(c, channel, tag, str(reason), now, keep), channel
        )
        for _ in range(dropped):
            count_loss(
                layer.stats,
                "dead_letters_dropped",
                logger,
                "Dead letters of %s are full (max_dead_letters=%d): dropped the oldest; %d so far",
                channel,
                keep,
            )
        return bool(held)

    # -- dead letters -------------------------------------------------------------------

    async def dead_letters(self, channel: str, limit: int) -> list[DeadLetter]:
        require_named(channel)
        self.layer._prepare()
        store = self.layer.store
        letters = []
        for id_, payload, reason, attempts, failed_at in store.read(
            lambda c: store.dead_letters(c, channel, limit)
        ):
            letters.append(
                DeadLetter(str(id_), frames.unpack_message(payload), reason, attempts, failed_at)
            )
        return letters

    async def replay_dead_letters(self, channel: str, ids: list[str] | None) -> int:
        require_named(channel)
        layer = self.layer
        store, now, expiry = layer.store, now_ms(), layer.expiry_ms
        chosen = _letter_ids(ids)

        def replay(connection: Any) -> tuple[int, Pushed]:
            payloads = store.remove_dead_letters(connection, channel, chosen)
            return len(payloads), store.replay(connection, channel, payloads, now, expiry)

        layer._prepare()
        count, pushed = await layer._store_write(replay, channel)
        layer._wake(pushed.listeners)
        return count

    async def discard_dead_letters(self, channel: str, ids: list[str] | None) -> int:
        require_named(channel)
        layer = self.layer
        layer._prepare()
        store, chosen = layer.store, _letter_ids(ids)
        removed = await layer._store_write(
            lambda c: store.remove_dead_letters(c, channel, chosen), channel
        )
        return len(removed)


def _letter_ids(ids: list[str] | None) -> list[int] | None:
    """Dead letter ids are the store's row ids; ones that are not are nobody's."""
    if ids is None:
        return None
    return [int(id_) for id_ in ids if isinstance(id_, str) and id_.isdigit()]
