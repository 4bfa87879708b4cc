"""What a feed took from Redis, decoded and handed to this process's channels.

An inbox item is a message for one of this process's channels, a group message
for its members of that group, or a membership change another process made to one
of its channels. A named channel's item is a message for that channel. Expired
items are counted in ``stats.expired``; items no serializer or key can read are
skipped, counted in ``stats.extra["malformed"]`` and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ..base import LayerStats, Message, count_loss
from ..delivery import deliver_to_local, offer_local
from ..local import LocalChannels
from . import envelope
from .accounting import LossLedger
from .envelope import Kind, now_ms
from .membership import MembershipMirror
from .serializers import Serializer

logger = logging.getLogger("djwire.layers.redis")


class Arrivals:
    def __init__(
        self,
        local: LocalChannels,
        stats: LayerStats,
        serializer: Serializer,
        ledger: LossLedger,
        members: MembershipMirror,
    ) -> None:
        self.local = local
        self.stats = stats
        self.serializer = serializer
        self.ledger = ledger
        self.members = members  # this process's channels' groups

    def from_inbox(self, refused: bytes, items: list[bytes]) -> None:
        if refused:
            self.ledger.refused(refused)
        for item in self._live(items):
            kind = item.kind
            if kind is Kind.MESSAGE:
                message = self.decode(item.payload)
                if message is not None:
                    offer_local(self.local, self.stats, item.target, message)
            elif kind is Kind.GROUP:
                members = self.members.members(item.target)
                if members:
                    message = self.decode(item.payload)
                    if message is not None:
                        deliver_to_local(self.local, self.stats, members, message)
            elif kind is Kind.JOIN:
                self.members.add(item.target, item.payload)
            elif kind is Kind.LEAVE:
                self.members.discard(item.target, item.payload)

    def from_named(self, channel: str, items: list[bytes]) -> None:
        for item in self._live(items):
            message = self.decode(item.payload)
            if message is not None:
                offer_local(self.local, self.stats, channel, message)

    def _live(self, items: list[bytes]) -> Iterator[envelope.Item]:
        """The items that parse and have not expired; the others are counted. Inbox
        items tell the ledger their writer's numbers, expired or not."""
        now = now_ms()
        for raw in items:
            try:
                item = envelope.parse(raw)
            except ValueError:
                self.malformed()
                continue
            if item.writer:
                self.ledger.observe(item.writer, item.seq, item.accounted)
            if item.deadline_ms <= now:
                self.stats.expired += 1
                continue
            yield item

    def decode(self, payload: Any) -> Message | None:
        try:
            return self.serializer.loads(payload)
        except Exception as exc:  # wrong key, foreign data: skip it, say so
            self.malformed(exc)
            return None

    def malformed(self, exc: BaseException | None = None) -> None:
        count_loss(
            self.stats,
            "malformed",
            logger,
            "Skipped an undecodable channel layer message (%s; different serializer_format "
            "or symmetric_encryption_keys between processes?); %d so far",
            repr(exc) if exc is not None else "bad envelope",
        )
