"""Read-only views of a process's channels and groups, shaped like Channels' dicts.

Channels' ``InMemoryChannelLayer`` keeps ``channels`` (name -> queue) and ``groups``
(group -> {channel: join time}) as plain dicts, and projects' tests read them: "no
message is waiting", "the socket left its group", ``layer.channels == {}``. djwire's
layer keeps other structures (O(1) per operation, lazy expiry); these views present
them with the same shape and meaning, computed when read:

* a channel is listed while it holds unexpired messages or a receiver is waiting on
  it (a connected consumer always is), as a Channels queue exists while either holds;
* a group is listed while it has members whose membership has not expired; each
  member maps to the wall-clock time (``time.time()``) it was last added.

They never change the layer and refuse to be changed. Reading one walks the
channels or members it lists, so they are for tests and introspection, not for a
hot path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from .groups import Groups
from .local import LocalChannels


class QueueView:
    """One channel's queue, with the read-only part of ``asyncio.Queue``'s API."""

    __slots__ = ("_channel", "_queues")

    def __init__(self, queues: LocalChannels, channel: str) -> None:
        self._queues = queues
        self._channel = channel

    @property
    def maxsize(self) -> int:
        return self._queues.get_capacity(self._channel)

    def qsize(self) -> int:
        """Unexpired messages waiting to be received."""
        return self._queues.pending(self._channel) or 0

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return self.qsize() >= self.maxsize

    def __repr__(self) -> str:
        return f"<QueueView {self._channel!r} qsize={self.qsize()} maxsize={self.maxsize}>"


class ChannelsView(Mapping[str, QueueView]):
    """``layer.channels``: channel name -> :class:`QueueView`, for live channels."""

    __slots__ = ("_queues",)

    def __init__(self, queues: LocalChannels) -> None:
        self._queues = queues

    def __getitem__(self, channel: str) -> QueueView:
        if self._queues.pending(channel) is None:
            raise KeyError(channel)
        return QueueView(self._queues, channel)

    def __iter__(self) -> Iterator[str]:
        return self._queues.live()

    def __len__(self) -> int:
        return sum(1 for _ in self._queues.live())

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{name!r}: {self[name]!r}' for name in self)}}}"


class MembersView(Mapping[str, float]):
    """``layer.groups[group]``: member channel -> when it was last added (``time.time()``)."""

    __slots__ = ("_group", "_groups", "_shift")

    def __init__(self, groups: Groups, group: str, shift: float) -> None:
        self._groups = groups
        self._group = group
        self._shift = shift

    def _joined(self) -> dict[str, float]:
        joined = self._groups.joined(self._group) or {}
        return {channel: deadline + self._shift for channel, deadline in joined.items()}

    def __getitem__(self, channel: str) -> float:
        return self._joined()[channel]

    def __eq__(self, other: object) -> bool:
        # One read of the members, not one per key as Mapping's would.
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._joined() == dict(other.items())

    def __contains__(self, channel: object) -> bool:
        return channel in (self._groups.joined(self._group) or ())

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups.joined(self._group) or ())

    def __len__(self) -> int:
        return len(self._groups.joined(self._group) or ())

    def __repr__(self) -> str:
        return repr(self._joined())


class GroupsView(Mapping[str, MembersView]):
    """``layer.groups``: group -> :class:`MembersView`, for groups with live members."""

    __slots__ = ("_groups", "_shift")

    def __init__(self, groups: Groups) -> None:
        self._groups = groups
        # Deadlines are on the groups' monotonic clock; Channels shows wall-clock join
        # times. Taken once, so a member's join time reads the same every time.
        self._shift = time.time() - groups.clock() - groups.group_expiry

    def __getitem__(self, group: str) -> MembersView:
        if self._groups.joined(group) is None:
            raise KeyError(group)
        return MembersView(self._groups, group, self._shift)

    def __iter__(self) -> Iterator[str]:
        return self._groups.live_groups()

    def __len__(self) -> int:
        return sum(1 for _ in self._groups.live_groups())

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{group!r}: {self[group]!r}' for group in self)}}}"
