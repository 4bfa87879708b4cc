"""This process's own record of group memberships.

Redis knows which *processes* belong to a group; each process knows which of its
own channels do (a group message crosses Redis once per process and is fanned
out here). That record also lets a process put its memberships back after Redis
lost them in a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..groups import Groups


class MembershipMirror(Groups):
    """:class:`Groups` that can also list every live membership with its deadline."""

    def snapshot(self) -> Iterator[tuple[str, list[tuple[int, str]]]]:
        """``(group, [(deadline in wall-clock ms, channel), ...])`` for every group."""
        offset = time.time() - self.clock()
        for group, members in self.memberships():
            yield (
                group,
                [
                    (int((deadline + offset) * 1000), channel)
                    for channel, deadline in members.items()
                ],
            )
