"""The process's own membership record: what it lists for restoring after a restart."""

from __future__ import annotations

import time

from djwire.layers.redis.membership import MembershipMirror


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memberships_lists_live_members_with_their_deadlines() -> None:
    clock = Clock()
    mirror = MembershipMirror(group_expiry=10, clock=clock)
    mirror.add("a", "old")
    clock.now += 5
    mirror.add("a", "new")
    mirror.add("b", "only")
    assert dict(mirror.memberships()) == {
        "a": {"old": 1010.0, "new": 1015.0},
        "b": {"only": 1015.0},
    }
    clock.now += 6  # "old" is past its deadline; the others are not
    assert dict(mirror.memberships()) == {"a": {"new": 1015.0}, "b": {"only": 1015.0}}
    clock.now += 10
    assert list(mirror.memberships()) == []
    assert len(mirror) == 0  # expired groups are gone, not just hidden


def test_memberships_are_copies() -> None:
    mirror = MembershipMirror(group_expiry=10)
    mirror.add("a", "one")
    for _, members in mirror.memberships():
        members.clear()
    assert mirror.members("a") == ["one"]


def test_snapshot_gives_wall_clock_deadlines_in_ms() -> None:
    mirror = MembershipMirror(group_expiry=60)
    mirror.add("g", "c")
    ((group, [(deadline_ms, channel)]),) = list(mirror.snapshot())
    assert (group, channel) == ("g", "c")
    assert abs(deadline_ms - (time.time() + 60) * 1000) < 1000
