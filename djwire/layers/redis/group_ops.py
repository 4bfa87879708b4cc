"""Groups over Redis: membership, listing, and sends that cross Redis once per process.

Redis keeps each group's member channels (to list and expire them), the processes
that have members and how many each has, and its named-channel members; each
process keeps its own members (:class:`.membership.MembershipMirror`). A group send
delivers to this process's members directly, asks Redis (one script) for the other
processes and the named channels, serializes the message once and pushes one item
per process inbox plus one per named channel: O(processes), not O(members).

In an outage, an add is kept locally and written once Redis is back (see
:mod:`.restarts`); a discard takes effect locally, and the membership in Redis
expires by itself.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import Any

from redis.exceptions import ResponseError

from djwire.exceptions import LayerUnavailable

from ..base import LayerStats, Message
from ..delivery import count_dropped, deliver_to_local
from ..local import LocalChannels
from ..pacing import new_backlog, relieve
from . import envelope, scripts
from .accounting import OutageMonitor
from .commands import Commands, ignore_result
from .envelope import Kind, now_ms
from .membership import MembershipMirror
from .pipe import CommandPipe
from .pushes import Pushes
from .restarts import RestartWatch
from .serializers import Serializer
from .sharding import Keys, owner_token

GroupKeys = tuple[bytes, bytes, bytes, bytes]


class GroupOps:
    def __init__(
        self,
        commands: Commands,
        pushes: Pushes,
        restarts: RestartWatch,
        keys: Keys,
        token: str,
        local: LocalChannels,
        stats: LayerStats,
        monitor: OutageMonitor,
        serializer: Serializer,
        expiry: float,
        group_expiry: float,
    ) -> None:
        self.commands = commands
        self.pushes = pushes
        self.restarts = restarts
        self.keys = keys
        self.token = token
        self.local = local
        self.stats = stats
        self.monitor = monitor
        self.serializer = serializer
        self.own = MembershipMirror(group_expiry)  # this process's channels' groups
        self.named = MembershipMirror(group_expiry)  # named channels this process added
        self.expiry_ms = int(expiry * 1000)
        self.group_expiry_ms = int(group_expiry * 1000)
        self.group_ttl = math.ceil(group_expiry) + 1

    def group_keys(self, group: str) -> GroupKeys:
        keys = self.keys
        return (
            keys.group_members(group),
            keys.group_processes(group),
            keys.group_named(group),
            keys.group_counts(group),
        )

    # -- membership -------------------------------------------------------------------

    async def add(self, group: str, channel: str) -> None:
        token = owner_token(channel)
        if token == self.token:
            self.own.add(group, channel)
        elif token is None:
            self.named.add(group, channel)
        deadline = now_ms() + self.group_expiry_ms
        tag = self.keys.group_tag(group)
        try:
            await self.commands.script(
                tag,
                scripts.GROUP_ADD,
                self.group_keys(group),
                (channel, deadline, token or "", self.group_ttl, now_ms()),
            )
        except LayerUnavailable:
            # Kept locally; written to Redis when it is back.
            if self.commands.router.ready:
                self.restarts.restore_later(self.commands.node_key(tag))
            return
        if token is not None and token != self.token:
            await self.pushes.to_inbox(
                token, Kind.JOIN, group, envelope.pack_payload(channel), deadline
            )

    async def discard(self, group: str, channel: str) -> None:
        token = owner_token(channel)
        if token == self.token:
            self.own.discard(group, channel)
        elif token is None:
            self.named.discard(group, channel)
        try:
            # Redis counts each process's members, so the channel's process leaves the
            # group's processes with its last member, whichever process discards it.
            await self.commands.script(
                self.keys.group_tag(group),
                scripts.GROUP_DISCARD,
                self.group_keys(group),
                (channel, now_ms()),
            )
        except LayerUnavailable:
            return  # the membership expires by itself; a restore will not re-add it
        if token is not None and token != self.token:
            deadline = now_ms() + self.expiry_ms
            await self.pushes.to_inbox(
                token, Kind.LEAVE, group, envelope.pack_payload(channel), deadline
            )

    async def channels(self, group: str) -> list[str]:
        """The live members in every process. Raises LayerUnavailable (naming the
        node) when Redis stays unreachable for ``retry_timeout``."""
        members, tag = self.keys.group_members(group), self.keys.group_tag(group)

        def ask() -> Awaitable[Any]:
            command = (b"ZRANGEBYSCORE", members, b"(%d" % now_ms(), b"+inf")
            return self.commands.run(tag, lambda pipe: pipe.call(command))

        reply = await self.commands.repeatable(ask)
        return [member.decode() for member in reply]

    def restore_on(self, pipe: CommandPipe) -> int:
        """Write this process's memberships of groups on ``pipe``'s node again (after
        that node lost them); returns how many."""
        restored = 0
        router = self.commands.router
        for mirror, token in ((self.own, self.token), (self.named, "")):
            for group, members in mirror.snapshot():
                if router.ready and router.node_for(self.keys.group_tag(group)) != pipe.node:
                    continue
                args: list[Any] = [token, self.group_ttl]
                for deadline, channel in members:
                    args += [deadline, channel]
                pipe.call(
                    scripts.GROUP_RESTORE.evalsha(self.group_keys(group), tuple(args))
                ).add_done_callback(ignore_result)
                restored += len(members)
        return restored

    def clear(self) -> None:
        self.own.clear()
        self.named.clear()

    # -- sending ----------------------------------------------------------------------

    async def send(self, group: str, message: Message) -> None:
        tag = self.keys.group_tag(group)
        keys = self.group_keys(group)
        # Ask Redis for the other processes first, and deliver to this process's
        # members while that round trip is under way.
        early = self.commands.send_now(tag, scripts.GROUP_TARGETS.evalsha(keys, (now_ms(),)))
        members = self.own.members(group)
        backlog = new_backlog(self.local)
        if members:
            deliver_to_local(self.local, self.stats, members, message, backlog)
        await self._send_out(group, message, tag, keys, early)
        if backlog:
            await relieve(self.local, backlog)

    async def _send_out(
        self,
        group: str,
        message: Message,
        tag: str,
        keys: GroupKeys,
        early: asyncio.Future[Any] | None,
    ) -> None:
        """The part of a group send for other processes and named channels."""
        try:
            processes, named = await self._targets(tag, keys, early)
        except LayerUnavailable as exc:
            node = self.commands.node_key(tag)
            self.monitor.down(node, exc)
            self.monitor.lost(node)
            return
        own = self.token.encode()
        remote = [token.decode() for token in processes if token != own]
        if not remote and not named:
            return
        payload = self.serializer.dumps(message)  # once, whatever the number of processes
        deadline = now_ms() + self.expiry_ms
        pushes = self.pushes
        results = await asyncio.gather(
            *(pushes.to_inbox(token, Kind.GROUP, group, payload, deadline) for token in remote),
            *(pushes.to_channel(channel.decode(), payload, deadline) for channel in named),
        )
        for result in results:
            if result == -1:
                count_dropped(
                    self.stats, "a group message", group, "a member's queue in Redis is full"
                )
            elif result:
                self.stats.expired += result

    async def _targets(
        self, tag: str, keys: GroupKeys, early: asyncio.Future[Any] | None
    ) -> tuple[list[bytes], list[bytes]]:
        """The processes and named channels of a group (``early``: the reply of a
        GROUP_TARGETS already sent; an error reply is retried the careful way)."""
        targets = await early if early is not None else None
        if targets is None or isinstance(targets, ResponseError):
            targets = await self.commands.script(tag, scripts.GROUP_TARGETS, keys, (now_ms(),))
        if (
            self.restarts.seen
            and self.commands.router.ready
            and await self.restarts.wait_out_grace(self.commands.node_key(tag))
        ):
            # Redis lost the group a moment ago: members may not all be back yet.
            targets = await self.commands.script(tag, scripts.GROUP_TARGETS, keys, (now_ms(),))
        processes, named = targets
        return processes, named
