"""Noticing a Redis node that restarted, so that what it lost is put back.

A restarted Redis without persistence has lost the groups. Every pipe reports the
server's run id and uptime on each (re)connect; a new run id on a node seen before
means a restart (counted in ``stats.extra["redis_restarts"]`` and logged), and the
layer then re-registers this process's memberships there. Group sends to a node
that restarted less than ``restart_grace`` ago wait out the rest of it, so that
every process has had time to re-register before the members are read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

from ..base import LayerStats
from .pipe import CommandPipe, ServerInfo

logger = logging.getLogger("djwire.layers.redis")


class Connected(NamedTuple):
    """What a (re)connect to a node means for this process."""

    restarted: bool  # the node restarted since this process last saw it: its data is gone
    restore: bool  # put this process's memberships back on it now


class RestartWatch:
    """Run ids and restart times of the nodes one layer talks to."""

    def __init__(self, stats: LayerStats, restart_grace: float) -> None:
        self.stats = stats
        self.restart_grace = restart_grace
        self._run_ids: dict[str, str] = {}
        self._restarted: dict[str, float] = {}  # node -> when it (re)started, monotonic
        self._needs_restore: set[str] = set()

    def on_connect(self, pipe: CommandPipe, info: ServerInfo) -> Connected:
        """Note the server a pipe (re)connected to."""
        node = pipe.node.key
        previous = self._run_ids.get(node)
        self._run_ids[node] = info.run_id
        age = info.youngest_age  # not uptime: that may overstate the age by a second
        if age < self.restart_grace:
            # A fresh server may have lost groups a moment ago even if this process
            # never saw it before: give members time to re-register.
            self._restarted[node] = time.monotonic() - age
        restarted = previous is not None and previous != info.run_id
        if restarted:
            self.stats.add("redis_restarts")
            logger.warning(
                "Redis at %s restarted: messages it held are lost (receivers count them); "
                "re-registering this process's group memberships",
                node,
            )
            self._restarted.setdefault(node, time.monotonic())
            self._needs_restore.add(node)
        restore = node in self._needs_restore
        self._needs_restore.discard(node)
        return Connected(restarted, restore)

    @property
    def seen(self) -> bool:
        """Whether any node was seen fresh or restarted (else group sends skip the
        restart check altogether)."""
        return bool(self._restarted)

    def restore_later(self, node: str) -> None:
        """Put memberships back on ``node`` on its next connect (a write to it failed)."""
        self._needs_restore.add(node)

    async def wait_out_grace(self, node: str) -> bool:
        """Sleep until ``restart_grace`` has passed since ``node`` restarted; True if
        that took a sleep (what was read from it before may be incomplete)."""
        since = self._restarted.get(node)
        if since is None:
            return False
        left = self.restart_grace - (time.monotonic() - since)
        if left <= 0:
            return False
        await asyncio.sleep(left)
        return True
