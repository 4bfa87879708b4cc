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
from .local import LocalChannels
from .views import ChannelsView, GroupsView


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer held in this process's memory."""

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    shared_between_processes: ClassVar[bool] = False  # each process has its own

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | re.Pattern[str], int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.group_expiry = group_expiry
        self.queues = LocalChannels(expiry, self.get_capacity, self.stats)
        self.memberships = Groups(group_expiry)
        #: Read-only, Channels-shaped views for tests: ``channel -> queue`` and
        #: ``group -> {channel: join time}`` (see :mod:`djwire.layers.views`).
        self.channels = ChannelsView(self.queues)
        self.groups = GroupsView(self.memberships)

    # -- channels -------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        send_local(self.queues, self.stats, channel, message)

    async def receive(self, channel: str) -> Message:
        self.require_valid_channel_name(channel)
        return await self.queues.get(channel)

    def claim_receive(self, channel: str) -> asyncio.Future[Message]:
        """Like ``receive()`` but a plain future, for consumers (see LocalChannels.claim)."""
        return self.queues.claim(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        separator = "" if prefix.endswith(".") else "."
        return f"{prefix}{separator}inmemory!{self.random_token()}"

    async def flush(self) -> None:
        self.queues.clear()
        self.memberships.clear()

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
        deliver_to_local(self.queues, self.stats, self.memberships.members(group), message)

    # -- direct sockets ----------------------------------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        self.queues.attach(channel, socket)
        return True

    def detach_socket(self, channel: str) -> None:
        self.queues.detach(channel)
