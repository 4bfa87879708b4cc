"""Counting what Redis outages cost, and saying so once.

Two places can lose a message when Redis goes away, and each counts its own:

* the **sender** (:class:`OutageMonitor`): a command that could not be sent
  within ``retry_timeout``, or that was in flight when the connection broke (it
  may or may not have run). These are added to ``stats.lost_in_outage`` of the
  sending layer, and the whole outage is logged once when it starts and once,
  with the count, when it ends.
* the **receiver** (:class:`LossLedger`): items already queued in Redis when it
  restarted. Every push to a process inbox carries the writer's sequence number
  and how many of its pushes the writer has already counted as lost; Redis
  itself records pushes it refused (inbox full). A receiver that sees seq 57
  after seq 50 and can explain only 2 of the 6 missing numbers counts 4 as lost
  in ``stats.lost_in_outage`` and logs it.

So the sum of both sides is every message lost, counted once (over-counting is
possible only for commands in flight when a connection broke that did run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from ..base import LayerStats

logger = logging.getLogger("djwire.layers.redis")

#: Receivers remember this many writers (writer = one process's event loop).
MAX_WRITERS = 4096


class OutageMonitor:
    """Per-node up/down state of one layer, with logging once per outage."""

    def __init__(self, stats: LayerStats) -> None:
        self.stats = stats
        self._down: dict[str, tuple[float, int]] = {}  # node -> (since, lost so far)
        self._lock = threading.Lock()

    def down(self, node: str, error: BaseException) -> None:
        with self._lock:
            if node in self._down:
                return
            self._down[node] = (time.monotonic(), 0)
        self.stats.extra["redis_outages"] = self.stats.extra.get("redis_outages", 0) + 1
        logger.warning(
            "Redis at %s is unavailable (%s); retrying, messages that cannot be sent "
            "will be counted in stats.lost_in_outage",
            node,
            error,
        )

    def lost(self, node: str, count: int = 1) -> None:
        with self._lock:
            self.stats.lost_in_outage += count
            if node in self._down:
                since, lost = self._down[node]
                self._down[node] = (since, lost + count)
                return
        logger.warning(
            "%d message(s) for Redis at %s were lost with a broken connection", count, node
        )

    def up(self, node: str) -> None:
        with self._lock:
            state = self._down.pop(node, None)
        if state is not None:
            since, lost = state
            logger.warning(
                "Redis at %s is reachable again after %.1f s; %d message(s) lost meanwhile",
                node,
                time.monotonic() - since,
                lost,
            )


class LossLedger:
    """Finds gaps in each writer's sequence numbers arriving at one inbox."""

    def __init__(self, stats: LayerStats) -> None:
        self.stats = stats
        # writer -> [next expected seq, writer's "accounted" total seen so far]
        self._writers: OrderedDict[str, list[int]] = OrderedDict()
        self._refused: dict[str, int] = {}
        self._last_log = 0.0
        self._unlogged = 0

    def refused(self, counts: bytes) -> None:
        """Record ``b"writer count writer count ..."`` from Redis (inbox was full)."""
        fields = counts.split()
        for writer, count in zip(fields[::2], fields[1::2], strict=True):
            key = writer.decode()
            if key in self._refused or len(self._refused) < MAX_WRITERS:
                self._refused[key] = self._refused.get(key, 0) + int(count)

    def observe(self, writer: str, seq: int, accounted: int) -> None:
        state = self._writers.get(writer)
        if state is None:
            state = [1, 0]
            self._writers[writer] = state
            if len(self._writers) > MAX_WRITERS:
                self._writers.popitem(last=False)
        else:
            self._writers.move_to_end(writer)
        gap = seq - state[0]
        if gap < 0:  # a duplicate (a redelivered batch): nothing new is known
            return
        explained = max(0, accounted - state[1])
        state[0] = seq + 1
        state[1] = max(state[1], accounted)
        if gap == 0:
            return
        unexplained = gap - explained
        refused = self._refused.get(writer, 0)
        if unexplained > 0 and refused:
            used = min(refused, unexplained)
            unexplained -= used
            if refused == used:
                del self._refused[writer]
            else:
                self._refused[writer] = refused - used
        if unexplained > 0:
            self._lose(unexplained)

    def _lose(self, count: int) -> None:
        self.stats.lost_in_outage += count
        self._unlogged += count
        now = time.monotonic()
        # One line per burst, not per message.
        if now - self._last_log >= 5.0:
            logger.warning(
                "%d message(s) sent to this process were lost inside Redis (restart or "
                "flush while they were queued); counted in stats.lost_in_outage",
                self._unlogged,
            )
            self._last_log = now
            self._unlogged = 0
