"""The in-memory channel layer: one process, no service, O(1) per operation.

Good for development, tests, and single-process deployments. Messages never
leave the process, so other processes (workers, ``manage.py shell``) cannot
reach it: use the IPC or Redis layer for those.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from .base import BaseChannelLayer, Message, check_message
from .delivery import deliver_to_local, send_local
from .direct import DirectSocket
from .groups import Groups
from .local import DEFAULT_BACKPRESSURE_TIMEOUT, LocalChannels
from .pacing import new_backlog, relieve
from .queue_types import DeadLetter, Delivery
from .queues import DEFAULT_MAX_DEAD_LETTERS, LocalQueues
from .views import ChannelsView, GroupsView


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer held in this process's memory."""

    extensions: ClassVar[list[str]] = ["groups", "flush", "queues"]
    shared_between_processes: ClassVar[bool] = False  # each process has its own

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | re.Pattern[str], int] | None = None,
        **kwargs: Any,
    ) -> None:
        # djwire's own option, in kwargs: the signature stays the one of Channels.
        max_dead_letters: int = kwargs.pop("max_dead_letters", DEFAULT_MAX_DEAD_LETTERS)
        backpressure_timeout: float = kwargs.pop(
            "backpressure_timeout", DEFAULT_BACKPRESSURE_TIMEOUT
        )
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.group_expiry = group_expiry
        self.local = LocalChannels(
            expiry, self.get_capacity, self.stats, backpressure_timeout=backpressure_timeout
        )
        self.memberships = Groups(group_expiry)
        #: Delays, leases and dead letters of named channels (the "queues" extension).
        self.named_queues = LocalQueues(self.local, self.stats, max_dead_letters)
        #: Read-only, Channels-shaped views for tests: ``channel -> queue`` and
        #: ``group -> {channel: join time}`` (see :mod:`djwire.layers.views`).
        self.channels = ChannelsView(self.local)
        self.groups = GroupsView(self.memberships)

    # -- channels -------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        await send_local(self.local, self.stats, channel, message)

    async def receive(self, channel: str) -> Message:
        self.require_valid_channel_name(channel)
        return await self.local.get(channel)

    def claim_receive(self, channel: str) -> asyncio.Future[Message]:
        """Like ``receive()`` but a plain future, for consumers (see LocalChannels.claim)."""
        return self.local.claim(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        separator = "" if prefix.endswith(".") else "."
        return f"{prefix}{separator}inmemory!{self.random_token()}"

    async def flush(self) -> None:
        self.local.clear()
        self.memberships.clear()
        self.named_queues.clear()

    async def close(self) -> None:
        """Nothing to release; kept for the contract."""

    # -- groups ---------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.memberships.add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.memberships.discard(group, channel)

    async def group_channels(self, group: str) -> list[str]:
        self.require_valid_group_name(group)
        return self.memberships.members(group)

    async def group_send(self, group: str, message: Message) -> None:
        self.require_valid_group_name(group)
        check_message(message)
        backlog = new_backlog(self.local)
        deliver_to_local(self.local, self.stats, self.memberships.members(group), message, backlog)
        if backlog:
            await relieve(self.local, backlog)

    # -- named channels as work queues --------------------------------------------------

    async def take(
        self, channel: str, count: int = 1, *, lease: float | None = None
    ) -> list[Delivery]:
        self.require_valid_channel_name(channel)
        return await self.named_queues.take(channel, count, lease)

    async def ack(self, channel: str, tags: list[str]) -> None:
        self.named_queues.ack(channel, tags)

    async def retry(self, channel: str, tag: str, delay: float = 0) -> bool:
        return self.named_queues.retry(channel, tag, delay)

    async def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        return self.named_queues.dead_letter(channel, tag, reason)

    async def dead_letters(self, channel: str, limit: int = 100) -> list[DeadLetter]:
        self.require_valid_channel_name(channel)
        return self.named_queues.dead_letters(channel, limit)

    async def replay_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        self.require_valid_channel_name(channel)
        return self.named_queues.replay_dead_letters(channel, ids)

    async def discard_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        self.require_valid_channel_name(channel)
        return self.named_queues.discard_dead_letters(channel, ids)

    async def send_later(self, channel: str, message: Message, delay: float) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        self.named_queues.send_later(channel, message, delay)

    # -- direct sockets ----------------------------------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        self.local.attach(channel, socket)
        return True

    def detach_socket(self, channel: str) -> None:
        self.local.detach(channel)
