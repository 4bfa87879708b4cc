"""Group membership with expiry, in this process.

Members of a group are kept in a dict ordered by deadline: ``group_expiry`` is one
constant, and re-adding a member moves it to the end, so expired members are
always at the front and are dropped lazily when the group is read. Groups that
nobody reads are found through a heap with one entry per group. Every operation
is O(1) (amortised) in the number of groups and members.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator


class Groups:
    """``group -> {channel: deadline}`` with lazy, heap-driven expiry."""

    def __init__(self, group_expiry: float, clock: Callable[[], float] = time.monotonic) -> None:
        if group_expiry <= 0:
            raise ValueError("group_expiry must be positive")
        self.group_expiry = group_expiry
        self.clock = clock
        self._groups: dict[str, dict[str, float]] = {}
        self._heap: list[tuple[float, str]] = []
        self._scheduled: set[str] = set()  # groups with an entry in the heap: at most one

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, group: str, channel: str) -> None:
        now = self.clock()
        self.sweep(now)
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = {}
            if group not in self._scheduled:
                self._scheduled.add(group)
                heapq.heappush(self._heap, (now + self.group_expiry, group))
        members.pop(channel, None)  # re-insert at the end: the dict stays deadline-ordered
        members[channel] = now + self.group_expiry

    def discard(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._groups[group]

    def members(self, group: str) -> list[str]:
        """Live members, oldest first."""
        members = self._groups.get(group)
        if members is None:
            return []
        self._drop_expired(group, members, self.clock())
        return list(members)

    def memberships(self) -> Iterator[tuple[str, dict[str, float]]]:
        """Every group with live members: ``(group, {channel: deadline})``, deadlines
        on ``clock``'s scale, oldest first. Each dict is a copy."""
        now = self.clock()
        for group in list(self._groups):
            members = self._groups.get(group)
            if members is None:
                continue
            self._drop_expired(group, members, now)
            if members:
                yield group, dict(members)

    def live_groups(self) -> Iterator[str]:
        """Groups with live members. Reads only: expired members are left for sweeps."""
        now = self.clock()
        for group, members in list(self._groups.items()):
            # Deadline-ordered: the newest member is the last to expire.
            if members and next(reversed(members.values())) > now:
                yield group

    def joined(self, group: str) -> dict[str, float] | None:
        """``{channel: deadline}`` of the live members, oldest first; None if none."""
        members = self._groups.get(group)
        if not members:
            return None
        now = self.clock()
        live = {channel: deadline for channel, deadline in members.items() if deadline > now}
        return live or None

    def clear(self) -> None:
        self._groups.clear()
        self._heap.clear()
        self._scheduled.clear()

    def sweep(self, now: float | None = None) -> None:
        """Expire members of groups whose oldest deadline has passed."""
        heap = self._heap
        if not heap:
            return
        if now is None:
            now = self.clock()
        while heap and heap[0][0] <= now:
            _, group = heapq.heappop(heap)
            self._scheduled.discard(group)
            members = self._groups.get(group)
            if members is None:
                continue
            self._drop_expired(group, members, now)
            if members:
                self._scheduled.add(group)
                heapq.heappush(heap, (next(iter(members.values())), group))

    def _drop_expired(self, group: str, members: dict[str, float], now: float) -> None:
        while members:
            channel, deadline = next(iter(members.items()))
            if deadline > now:
                break
            del members[channel]
        if not members and self._groups.get(group) is members:
            del self._groups[group]
