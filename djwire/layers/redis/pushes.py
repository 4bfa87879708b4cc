"""Writing messages into Redis: to a process's inbox, or to a named channel's list.

Each push is one script that checks capacity, appends the item (see
:mod:`.envelope`) and publishes a wake-up when the list was empty; to an idle
process inbox, the wake-up carries the item itself (see ``scripts.PUSH_INBOX``). A push that
Redis cannot take in an outage is given up after ``retry_timeout`` and counted as
lost by the pipe (see :mod:`.pipe`), so callers only see what became of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from djwire.exceptions import LayerUnavailable

from . import envelope, scripts
from .accounting import OutageMonitor
from .commands import Commands, Enqueue
from .envelope import Kind, now_ms
from .pipe import PushBuilder
from .sharding import Keys

#: What became of a push: 0 queued (or, to a named channel, >= 0: queued after that
#: many expired items were dropped), -1 refused because the list is full, None lost
#: in an outage (already counted).
PushResult = int | None


class Pushes:
    def __init__(
        self,
        commands: Commands,
        keys: Keys,
        monitor: OutageMonitor,
        expiry: float,
        inbox_capacity: int,
        get_capacity: Callable[[str], int],
    ) -> None:
        self.commands = commands
        self.keys = keys
        self.monitor = monitor
        self.inbox_capacity = inbox_capacity
        self.get_capacity = get_capacity
        # Lists live a little longer than their newest item may wait; an inbox a
        # minute longer, so a process that is briefly away finds its messages.
        self.list_ttl = math.ceil(expiry) + 1
        self.inbox_ttl = math.ceil(expiry) + 60

    async def to_inbox(
        self, token: str, kind: Kind, target: str, payload: bytes, deadline: int
    ) -> PushResult:
        """Push to the inbox of the process whose token is ``token``."""
        keys = self.keys
        inbox = keys.inbox(token)
        rejections = keys.rejections(token)
        taken, idle = keys.taken(inbox, token), keys.idle(inbox)
        wake = keys.wake(inbox)
        capacity, ttl = self.inbox_capacity, self.inbox_ttl
        publish = self.commands.router.publish

        def build(writer: str, seq: int, accounted: int) -> scripts.Command:
            # Numbered by the pipe when it is written (see accounting).
            item = envelope.build(deadline, kind, target, payload, writer, seq, accounted)
            return scripts.PUSH_INBOX.evalsha(
                (inbox, rejections, taken, idle), (item, capacity, ttl, wake, publish, writer)
            )

        builder: PushBuilder = build
        return await self.push(keys.inbox_tag(token), lambda pipe: pipe.push(inbox, builder))

    async def to_channel(self, channel: str, payload: bytes, deadline: int) -> PushResult:
        """Push to a named channel's list."""
        key = self.keys.channel(channel)
        item = envelope.build(deadline, Kind.MESSAGE, channel, payload)
        command = scripts.PUSH_CHANNEL.evalsha(
            (key,),
            (
                item,
                self.get_capacity(channel),
                self.list_ttl,
                self.keys.wake(key),
                self.commands.router.publish,
                now_ms(),
            ),
        )
        return await self.push(
            self.keys.channel_tag(channel), lambda pipe: pipe.call(command, message=True)
        )

    async def push(self, tag: str, enqueue: Enqueue) -> PushResult:
        """Run a push command through ``enqueue`` on ``tag``'s node."""
        try:
            reply = await self.commands.run(tag, enqueue)
        except LayerUnavailable as exc:
            if not self.commands.router.ready:  # never reached a pipe: count it here
                self.monitor.down(tag, exc)
                self.monitor.lost(tag)
            return None  # the pipe counted it, and the outage is logged
        return int(reply)
