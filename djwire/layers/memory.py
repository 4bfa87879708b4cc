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

from .base import BaseChannelLayer, Message
from .direct import DirectSocket, socket_payload, write_to_sockets
from .groups import Groups
from .local import LocalChannels, fast_copy


def check_message(message: object) -> None:
    if not isinstance(message, dict):
        raise TypeError(f"A channel layer message must be a dict, not {type(message).__name__}")
    if "__asgi_channel__" in message:
        raise ValueError("A message must not contain the reserved key '__asgi_channel__'")


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
        self.channels = LocalChannels(expiry, self.get_capacity, self.stats)
        self.groups = Groups(group_expiry)

    # -- channels -------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        payload = socket_payload(message)
        if payload is not None:
            socket = self.channels.socket_for(channel)
            if socket is not None and socket.write_frame(socket.frame_encoder(*payload)):
                self.stats.direct_deliveries += 1
                return
        # Copy so the sender may reuse its dict; the receiver gets a private one.
        self.channels.put(channel, fast_copy(message))

    async def receive(self, channel: str) -> Message:
        self.require_valid_channel_name(channel)
        return await self.channels.get(channel)

    def claim_receive(self, channel: str) -> asyncio.Future[Message]:
        """Like ``receive()`` but a plain future, for consumers (see LocalChannels.claim)."""
        return self.channels.claim(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        separator = "" if prefix.endswith(".") else "."
        return f"{prefix}{separator}inmemory!{self.random_token()}"

    async def flush(self) -> None:
        self.channels.clear()
        self.groups.clear()

    async def close(self) -> None:
        """Nothing to release; kept for the contract."""

    # -- groups ---------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.discard(group, channel)

    async def group_channels(self, group: str) -> list[str]:
        self.require_valid_group_name(group)
        return self.groups.members(group)

    async def group_send(self, group: str, message: Message) -> None:
        self.require_valid_group_name(group)
        check_message(message)
        deliver_to_local(self, self.groups.members(group), message)

    # -- direct sockets ----------------------------------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        self.channels.attach(channel, socket)
        return True

    def detach_socket(self, channel: str) -> None:
        self.channels.detach(channel)


def deliver_to_local(layer: BaseChannelLayer, members: list[str], message: Message) -> None:
    """Fan ``message`` out to process-local ``members`` of a group.

    Sockets attached to idle channels get one shared frame; every other member gets
    its own shallow copy of one deep copy (a consumer that rebinds keys cannot
    affect another). Full channels drop the message and it is counted.
    """
    channels: LocalChannels = layer.channels  # type: ignore[attr-defined]
    payload = socket_payload(message)
    if payload is not None:
        queued: list[str] = []
        targets = []
        for channel in members:
            socket = channels.socket_for(channel)
            if socket is None:
                queued.append(channel)
            else:
                targets.append((channel, socket))
        if targets:
            layer.stats.direct_deliveries += write_to_sockets(targets, payload, queued.append)
        members = queued
        if not members:
            return
    shared = fast_copy(message)
    for channel in members:
        if not channels.offer(channel, dict(shared)):
            channels.drop(channel)
