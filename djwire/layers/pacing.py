"""Backpressure for senders in this process: wait for receivers that keep up.

A handler that calls ``group_send`` (or ``send``) in a loop never yields to the
event loop, so without pacing it fills every member's queue before any member
runs, and the rest is dropped even for members whose clients keep up. Yielding
once per call is not enough either: a consumer takes several event-loop steps
per message (its handler, the socket write), so its queue still grows.

So a paced send, after delivering, looks at what it left behind (the
:data:`~djwire.layers.local.Backlog` that ``LocalChannels.offer`` and the direct
path fill): channels with a receiver that keeps up whose queue reached its
high-water mark (half the capacity), and attached sockets whose write buffer
passed the server's high-water mark. It waits until each queue is down to its
low-water mark (a quarter) and each socket has drained, at most
``backpressure_timeout`` seconds in all. A receiver not caught up by then is
*stalled*: the send goes on, nobody waits for it again until it catches up, and
its queue, once full, drops messages as before (counted, logged).

Below the high-water mark a send costs a comparison per member and one empty list
(no yield, no wait); above it, one wait per quarter of a capacity. Messages that
arrive from other processes (IPC frames, Redis inbox batches) are delivered without
pacing: their paths are bounded by the peer buffer and the inbox capacity.
"""

from __future__ import annotations

import asyncio
import logging

from .base import LayerStats, count_loss
from .local import READ, STALLED, Backlog, LocalChannels, _Queue, low_water

logger = logging.getLogger("djwire.layers")


def new_backlog(local: LocalChannels) -> Backlog | None:
    """What a paced send fills in, or None when pacing is off (timeout 0)."""
    return [] if local.backpressure_timeout else None


async def relieve(local: LocalChannels, backlog: Backlog) -> None:
    """Wait (bounded) until the receivers in ``backlog`` have caught up."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    # future -> (channel, the queue it drains, or None for a socket's drain)
    waits: dict[asyncio.Future[None], tuple[str, _Queue | None]] = {}
    for channel, queue, future in backlog:
        if queue is not None:
            if queue.pace != READ or queue.reader is me:
                # Stalled meanwhile (another sender timed out on it), or the sender's
                # own queue (a consumer sending to a group it is in): it cannot take
                # from it while it waits. (Its socket drains without it: that is fine.)
                continue
            items = queue.items
            if not items or len(items) <= low_water(local.get_capacity(channel)):
                continue
            future = loop.create_future()
            if queue.drainers is None:
                queue.drainers = []
            queue.drainers.append(future)
            waits[future] = (channel, queue)
        elif future is None or future.done() or future in local.stalled_drains:
            continue  # drained, or a wait for this very backlog of the socket timed out
        elif future.get_loop() is loop:
            waits[future] = (channel, None)
    if not waits:
        return
    local.stats.add("backpressure_waits")
    try:
        # asyncio.wait cancels nothing: a socket's drain future is shared with others.
        _, late = await asyncio.wait(waits, timeout=local.backpressure_timeout)
    finally:
        for future, (_, queue) in waits.items():
            if queue is not None and queue.drainers and future in queue.drainers:
                queue.drainers.remove(future)
                if not queue.drainers:
                    queue.drainers = None
    for future in late:
        channel, queue = waits[future]
        if queue is not None:
            queue.pace = STALLED  # until its receiver takes it to the low-water mark
        else:
            # A socket: not waited for again until it has drained (its next backlog
            # has a new drain future). Held weakly: the server drops it once drained.
            # Its consumer is the same receiver: once its socket refuses frames, they
            # go to its queue, which is not waited for either until it catches up.
            local.stalled_drains.add(future)
            local.stall(channel)
        _count_stalled(local.stats, channel, local.backpressure_timeout)


def _count_stalled(stats: LayerStats, channel: str, timeout: float) -> None:
    count_loss(
        stats,
        "backpressure_timeouts",
        logger,
        "The receiver of %s did not catch up within backpressure_timeout (%ss); senders "
        "stop waiting for it until it does (%d such timeouts so far in this process)",
        channel,
        timeout,
    )
