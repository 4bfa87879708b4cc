"""Sends a classic consumer makes are held until it finishes, as in Channels 1.

Inside a function consumer, ``Channel.send()``, ``Group.send()`` and
``message.reply_channel.send()`` do not send at once: they are held, in order, and
sent when the consumer returns or raises. So a consumer that accepts a socket and then
joins a group (``reply_channel.send({"accept": True})``, then ``Group("chat").add(...)``)
lets the client see the accept only once it is in the group, and cannot miss a group
message sent in between. ``send(..., immediately=True)`` sends at once; outside a
consumer (views, ``Model.save()``, management commands) every send is immediate.
``Group.add()``/``discard()`` always act at once.

The held sends live in a thread-local (a consumer runs in one worker thread from start
to end) and are flushed from that thread, with one hop to the event loop for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import async_to_sync

from djwire.exceptions import ChannelFull

__all__ = ["DEFAULT_FULL_RETRY", "HeldSends", "current", "holding_sends"]

logger = logging.getLogger("djwire.classic")

#: How long (seconds) a flush keeps retrying a send to a full channel before giving up:
#: ``settings.DJWIRE_CLASSIC_FULL_RETRY``, by default Channels 1's two seconds.
DEFAULT_FULL_RETRY = 2.0
#: Pause between two tries of a send to a full channel.
_RETRY_INTERVAL = 0.01

Send = Callable[[dict[str, Any]], Awaitable[None]]

_local = threading.local()


class HeldSends:
    """The sends of one running consumer, in the order it made them."""

    def __init__(self) -> None:
        self.pending: list[tuple[Send, str, dict[str, Any]]] = []

    def hold(self, send: Send, target: str, content: dict[str, Any]) -> None:
        """Keep ``send(content)`` (``target`` names the channel or group) for the flush."""
        self.pending.append((send, target, content))

    async def flush(self, full_retry: float) -> None:
        """Send everything held, in order.

        A channel that stays full for ``full_retry`` seconds ends the flush: that
        message and those held after it are not sent (logged with their count), and
        :class:`~djwire.exceptions.ChannelFull` is raised, as Channels 1 raised.
        """
        pending, self.pending = self.pending, []
        for index, (send, target, content) in enumerate(pending):
            deadline = time.monotonic() + full_retry
            while True:
                try:
                    await send(content)
                    break
                except ChannelFull:
                    if time.monotonic() >= deadline:
                        logger.error(
                            "%s stayed full for %.1f s: %d message(s) held by the consumer "
                            "were not sent",
                            target,
                            full_retry,
                            len(pending) - index,
                        )
                        raise
                    await asyncio.sleep(_RETRY_INTERVAL)


def current() -> HeldSends | None:
    """The held sends of the consumer running in this thread, or None outside one."""
    return getattr(_local, "held", None)


def _full_retry() -> float:
    from django.conf import settings

    return float(getattr(settings, "DJWIRE_CLASSIC_FULL_RETRY", DEFAULT_FULL_RETRY))


@contextlib.contextmanager
def holding_sends() -> Iterator[HeldSends]:
    """Hold this thread's classic sends for the block; flush them when it ends,
    whether it returns or raises."""
    held, outer = HeldSends(), current()
    _local.held = held
    try:
        yield held
    finally:
        _local.held = outer
        if held.pending:
            async_to_sync(held.flush)(_full_retry())
