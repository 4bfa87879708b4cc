"""RedisChannelLayer: the channel layer over one Redis, shards, Sentinel or Cluster.

How messages travel:

* **Process-specific channels** (``specific.TOKEN!local``, from ``new_channel``)
  belong to one layer instance. Messages from other processes go to that
  process's single *inbox* list in Redis; one feed per process moves them into
  process-local queues. Messages from this process to its own channels never
  touch Redis. Capacity: a remote sender gets ChannelFull when that process's
  inbox holds ``inbox_capacity`` messages; a channel's own ``capacity`` is applied
  where its queue lives, and arrivals beyond it are dropped and counted in
  ``stats.dropped_full`` (as group messages are). Senders apply the capacities, so
  configure every process alike (as with channels_redis).
* **Named channels** (no ``!``) are Redis lists that any process may receive
  from, each message going to exactly one receiver.
* **Groups**: Redis keeps the group's member channels (to list them and expire
  them), the *processes* that have members and how many each has; each process
  keeps its own members. ``group_send`` serializes once, pushes one item per
  process inbox (plus one per named-channel member), and each process fans it out
  locally (straight to attached WebSockets where possible). Cost: O(processes),
  not O(members). A process leaves the group's processes with its last member,
  whichever process discards it, or when its members expire.

Every limit is a named argument (see :class:`~.config.Limits`). Nothing that
consumers use raises during a Redis outage: sends that cannot be made are counted
in ``stats.lost_in_outage`` and the outage is logged once; receives simply wait and
resume when Redis is back; group_add is kept locally and written to Redis when it
is back, group_discard takes effect locally. ``group_channels()`` and ``flush()``
are the exceptions, as they have no right answer without Redis: they repeat a
command a broken connection cut off, and raise
:class:`~djwire.exceptions.LayerUnavailable`, naming the node, once Redis has
stayed unreachable for ``retry_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from redis.exceptions import ResponseError

from djwire.exceptions import ChannelFull, InvalidChannelLayerError, LayerUnavailable

from ..base import BaseChannelLayer, Message, check_message, count_loss
from ..delivery import count_dropped, deliver_to_local, offer_local, send_local
from ..direct import DirectSocket
from ..local import LocalChannels
from . import envelope, scripts
from .accounting import LossLedger, OutageMonitor
from .cluster import ClusterRouter, Router, ShardRouter
from .config import Limits, parse_hosts
from .envelope import Kind
from .feeds import Feed
from .loops import PerLoop
from .membership import MembershipMirror
from .nodes import Node, StaticNode
from .pipe import CommandPipe, PushBuilder, ServerInfo
from .serializers import make_serializer
from .sharding import Keys, owner_token
from .subscriber import Subscriber

logger = logging.getLogger("djwire.layers.redis")

_MAX_ATTEMPTS = 4  # per command: MOVED / NOSCRIPT / READONLY recoveries


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisChannelLayer(BaseChannelLayer):
    """A channel layer over Redis; see the module docstring."""

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    shared_between_processes: ClassVar[bool] = True

    def __init__(
        self,
        hosts: Sequence[Any] | str | Mapping[str, Any] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | re.Pattern[str], int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        serializer_format: str = "msgpack",
        *,
        cluster: bool = False,
        random_prefix_length: int | None = None,  # channels_redis option; tokens are fixed-size
        client_name: str | None = None,
        connect_timeout: float = Limits.connect_timeout,
        socket_timeout: float = Limits.socket_timeout,
        retry_timeout: float = Limits.retry_timeout,
        reconnect_backoff: tuple[float, float] = Limits.reconnect_backoff,
        max_batch: int = Limits.max_batch,
        max_pending: int = Limits.max_pending,
        inbox_capacity: int = Limits.inbox_capacity,
        poll_interval: float = Limits.poll_interval,
        health_check_interval: float = Limits.health_check_interval,
        restart_grace: float = Limits.restart_grace,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if group_expiry <= 0:
            raise InvalidChannelLayerError("group_expiry must be positive")
        self.group_expiry = group_expiry
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.limits = Limits(
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry_timeout=retry_timeout,
            reconnect_backoff=tuple(reconnect_backoff),  # type: ignore[arg-type]
            max_batch=max_batch,
            max_pending=max_pending,
            inbox_capacity=inbox_capacity,
            poll_interval=poll_interval,
            health_check_interval=health_check_interval,
            restart_grace=restart_grace,
        )
        nodes = parse_hosts(hosts)  # type: ignore[arg-type]
        #: How many ``hosts`` entries (shards, or Cluster seeds) there are, as in
        #: channels_redis.
        self.ring_size = len(nodes)
        self.router: Router
        if cluster:
            if not all(isinstance(node, StaticNode) for node in nodes):
                raise InvalidChannelLayerError(
                    "Redis Cluster hosts must be addresses, not Sentinels"
                )
            self.router = ClusterRouter([node for node in nodes if isinstance(node, StaticNode)])
        else:
            self.router = ShardRouter(nodes)
        self.serializer = make_serializer(serializer_format, symmetric_encryption_keys)
        self.client_name = client_name

        #: This layer instance's process token: names its inbox and its channels.
        self.token = secrets.token_hex(6)
        self.queues = LocalChannels(expiry, self.get_capacity, self.stats)
        self.local_groups = MembershipMirror(group_expiry)  # our channels' groups
        self.named_groups = MembershipMirror(group_expiry)  # named channels we added
        self.monitor = OutageMonitor(self.stats)
        self.ledger = LossLedger(self.stats)
        self._loops = PerLoop(self._make_pipe, self._make_subscriber)
        self._expiry_ms = int(expiry * 1000)
        self._group_expiry_ms = int(group_expiry * 1000)
        self._list_ttl = math.ceil(expiry) + 1
        self._inbox_ttl = math.ceil(expiry) + 60
        self._group_ttl = math.ceil(group_expiry) + 1
        self._inbox_feed: Feed | None = None
        self._named_feeds: dict[str, Feed] = {}
        self._waiting: dict[str, int] = {}
        self._confirmed: dict[bytes, bytes] = {}
        self._run_ids: dict[str, str] = {}
        self._restarted: dict[str, float] = {}  # node -> when we saw it had restarted
        self._needs_restore: set[str] = set()

    def __repr__(self) -> str:
        return f"<RedisChannelLayer prefix={self.prefix!r} token={self.token}>"

    # -- channels_redis's public names ------------------------------------------------

    @property
    def client_prefix(self) -> str:
        """The part of this process's channel names before the ``!`` (channels_redis's
        name for it; djwire calls it the token)."""
        return self.token

    async def close_pools(self) -> None:
        """channels_redis's name for :meth:`close`, which many test teardowns call."""
        await self.close()

    async def wait_received(self) -> None:
        """Returns at once: nothing is left to finish after a receive (channels_redis
        waits for its clean-up tasks here; a djwire take is confirmed by the next)."""

    def serialize(self, message: Message) -> bytes:
        """A message as stored in Redis (with ``serializer_format`` and the keys)."""
        return self.serializer.dumps(message)

    def deserialize(self, data: bytes) -> Message:
        """Inverse of :meth:`serialize`."""
        return self.serializer.loads(envelope.unpack_payload(data))

    # -- plumbing -------------------------------------------------------------------------

    def _make_pipe(self, node: Node) -> CommandPipe:
        return CommandPipe(node, self.limits, self.monitor, self.client_name, self._on_connect)

    def _make_subscriber(self, node: Node) -> Subscriber:
        return Subscriber(
            node,
            self.limits,
            self.monitor,
            sharded=self.router.cluster,
            client_name=self.client_name,
        )

    async def _node(self, tag: str) -> Node:
        if not self.router.ready:
            await self.router.load(self.limits.connect_timeout)
        return self.router.node_for(tag)

    async def _run(self, tag: str, enqueue: Callable[[CommandPipe], asyncio.Future[Any]]) -> Any:
        """Issue a command via ``enqueue`` on the right node; recover from MOVED,
        NOSCRIPT and READONLY replies; return the reply."""
        for attempt in range(_MAX_ATTEMPTS):
            pipe = self._loops.current().pipe(await self._node(tag))
            reply = await enqueue(pipe)
            if not isinstance(reply, ResponseError):
                return reply
            text = str(reply)
            if text.startswith(("MOVED", "ASK")):
                await self.router.refresh(self.limits.connect_timeout)
            elif text.startswith("NOSCRIPT"):
                for script in scripts.ALL:  # someone ran SCRIPT FLUSH
                    pipe.call(script.load()).add_done_callback(_ignore_result)
            elif text.startswith(("READONLY", "MASTERDOWN", "LOADING", "TRYAGAIN")):
                # Failover or restart in progress: reconnect (Sentinel asks again).
                pipe.reset()
                await asyncio.sleep(self.limits.reconnect_backoff[0] * 2**attempt)
            else:
                raise reply
        raise LayerUnavailable(f"Redis at {pipe.node} kept refusing a command: {reply}")

    async def _repeatable(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` (commands that are safe to run twice); after a connection broke
        under it, run it again until ``retry_timeout`` has passed, then let the
        LayerUnavailable (which names the node) through."""
        started = time.monotonic()
        while True:
            try:
                return await call()
            except LayerUnavailable:
                if time.monotonic() - started >= self.limits.retry_timeout:
                    raise
                await asyncio.sleep(self.limits.reconnect_backoff[0])

    async def _script(
        self, tag: str, script: scripts.Script, keys: tuple[bytes, ...], args: tuple[Any, ...]
    ) -> Any:
        command = script.evalsha(keys, args)
        return await self._run(tag, lambda pipe: pipe.call(command))

    def _on_connect(self, pipe: CommandPipe, info: ServerInfo) -> None:
        """A pipe (re)connected: notice restarts and put memberships back."""
        node = pipe.node.key
        previous = self._run_ids.get(node)
        self._run_ids[node] = info.run_id
        age = info.youngest_age  # not uptime: that may overstate the age by a second
        if age < self.limits.restart_grace:
            # Fresh server: it may have lost groups a moment ago even if this
            # process never saw it before; give members time to re-register.
            self._restarted[node] = time.monotonic() - age
        if previous is not None and previous != info.run_id:
            self.stats.extra["redis_restarts"] = self.stats.extra.get("redis_restarts", 0) + 1
            logger.warning(
                "Redis at %s restarted: messages it held are lost (receivers count them); "
                "re-registering this process's group memberships",
                node,
            )
            self._restarted.setdefault(node, time.monotonic())
            self._needs_restore.add(node)
        if node in self._needs_restore:
            self._needs_restore.discard(node)
            self._restore_memberships(pipe)

    def _restore_memberships(self, pipe: CommandPipe) -> None:
        restored = 0
        for mirror, token in ((self.local_groups, self.token), (self.named_groups, "")):
            for group, members in mirror.snapshot():
                if (
                    self.router.ready
                    and self.router.node_for(self.keys.group_tag(group)) != pipe.node
                ):
                    continue
                args: list[Any] = [token, self._group_ttl]
                for deadline, channel in members:
                    args += [deadline, channel]
                pipe.call(
                    scripts.GROUP_RESTORE.evalsha(self._group_keys(group), tuple(args))
                ).add_done_callback(_ignore_result)
                restored += len(members)
        if restored:
            logger.info("Re-registered %d group memberships on %s", restored, pipe.node)

    def _group_keys(self, group: str) -> tuple[bytes, bytes, bytes, bytes]:
        keys = self.keys
        return (
            keys.group_members(group),
            keys.group_processes(group),
            keys.group_named(group),
            keys.group_counts(group),
        )

    # -- pushes ---------------------------------------------------------------------------

    def _inbox_builder(
        self, token: str, kind: Kind, target: str, payload: bytes, deadline: int
    ) -> tuple[bytes, PushBuilder]:
        keys = self.keys
        inbox = keys.inbox(token)
        rejections = keys.rejections(token)
        wake = keys.wake(inbox)
        capacity = self.limits.inbox_capacity
        ttl = self._inbox_ttl
        publish = self.router.publish

        def build(writer: str, seq: int, accounted: int) -> scripts.Command:
            item = envelope.build(deadline, kind, target, payload, writer, seq, accounted)
            return scripts.PUSH_INBOX.evalsha(
                (inbox, rejections), (item, capacity, ttl, wake, publish, writer)
            )

        return inbox, build

    async def _push_inbox(
        self, token: str, kind: Kind, target: str, payload: bytes, deadline: int
    ) -> int | None:
        """Push to a process inbox: 0 queued, -1 full, None lost in an outage (counted)."""
        inbox, build = self._inbox_builder(token, kind, target, payload, deadline)
        return await self._push(self.keys.inbox_tag(token), lambda pipe: pipe.push(inbox, build))

    async def _push_channel(self, channel: str, payload: bytes, deadline: int) -> int | None:
        """Push to a named channel: >= 0 queued (that many expired items dropped),
        -1 full, None lost in an outage (counted)."""
        key = self.keys.channel(channel)
        item = envelope.build(deadline, Kind.MESSAGE, channel, payload)
        command = scripts.PUSH_CHANNEL.evalsha(
            (key,),
            (
                item,
                self.get_capacity(channel),
                self._list_ttl,
                self.keys.wake(key),
                self.router.publish,
                _now_ms(),
            ),
        )
        return await self._push(
            self.keys.channel_tag(channel), lambda pipe: pipe.call(command, message=True)
        )

    async def _push(
        self, tag: str, enqueue: Callable[[CommandPipe], asyncio.Future[Any]]
    ) -> int | None:
        try:
            reply = await self._run(tag, enqueue)
        except LayerUnavailable as exc:
            if not self.router.ready:  # never reached a pipe: count it here
                self.monitor.down(tag, exc)
                self.monitor.lost(tag)
            return None  # the pipe counted it and the outage is logged
        return int(reply)

    # -- channels -------------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        token = owner_token(channel)
        if token == self.token:
            send_local(self.queues, self.stats, channel, message)
            return
        payload = self.serializer.dumps(message)
        deadline = _now_ms() + self._expiry_ms
        if token is not None:
            result = await self._push_inbox(token, Kind.MESSAGE, channel, payload, deadline)
            if result == -1:
                raise ChannelFull(channel, self.limits.inbox_capacity)
            return
        result = await self._push_channel(channel, payload, deadline)
        if result == -1:
            raise ChannelFull(channel, self.get_capacity(channel))
        if result:
            self.stats.expired += result

    async def receive(self, channel: str) -> Message:
        self.require_valid_channel_name(channel)
        message = self.queues.take(channel)
        if message is not None:
            return message
        token = owner_token(channel)
        if token is None:
            return await self._receive_named(channel)
        if token != self.token:
            raise ValueError(
                f"Channel {channel!r} belongs to another process (or layer instance); "
                "only the layer whose new_channel() made it can receive from it"
            )
        self._ensure_inbox_feed()
        return await self.queues.get(channel)

    def claim_receive(self, channel: str) -> asyncio.Future[Message]:
        """Like ``receive()`` but a plain future, for consumers of this process's own
        channels (see LocalChannels.claim): an idle consumer then costs no Task."""
        if owner_token(channel) != self.token:
            return asyncio.ensure_future(self.receive(channel))
        self._ensure_inbox_feed()
        return self.queues.claim(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        separator = "" if prefix.endswith(".") else "."
        name = f"{prefix}{separator}{self.token}!{secrets.token_hex(6)}"
        self._ensure_inbox_feed()
        return name

    async def _receive_named(self, channel: str) -> Message:
        self._waiting[channel] = self._waiting.get(channel, 0) + 1
        try:
            feed = self._named_feeds.get(channel)
            if feed is None or not feed.alive():
                if feed is not None:
                    feed.stop()
                self._named_feeds[channel] = self._start_named_feed(channel)
            else:
                feed.poke()
            return await self.queues.get(channel)
        finally:
            left = self._waiting.get(channel, 1) - 1
            if left:
                self._waiting[channel] = left
            else:
                self._waiting.pop(channel, None)

    # -- feeds ----------------------------------------------------------------------------

    def _ensure_inbox_feed(self) -> None:
        feed = self._inbox_feed
        if feed is not None and feed.alive():
            return
        if feed is not None:
            feed.stop()
        self._inbox_feed = self._start_feed(
            name=f"inbox {self.token}",
            tag=self.keys.inbox_tag(self.token),
            list_key=self.keys.inbox(self.token),
            rejections=self.keys.rejections(self.token),
            deliver=self._deliver_inbox,
            batch_size=lambda: self.limits.max_batch,
            wanted=lambda: True,
        )

    def _start_named_feed(self, channel: str) -> Feed:
        def wanted() -> bool:
            return self._waiting.get(channel, 0) > 0

        def batch_size() -> int:
            return max(1, min(self._waiting.get(channel, 0), self.limits.max_batch))

        def deliver(refused: bytes, items: list[bytes]) -> None:
            self._deliver_named(channel, items)

        key = self.keys.channel(channel)
        return self._start_feed(
            name=f"channel {channel}",
            tag=self.keys.channel_tag(channel),
            list_key=key,
            rejections=key + b":r",  # never written: named channels have no writers' seqs
            deliver=deliver,
            batch_size=batch_size,
            wanted=wanted,
        )

    def _start_feed(
        self,
        name: str,
        tag: str,
        list_key: bytes,
        rejections: bytes,
        deliver: Callable[[bytes, list[bytes]], None],
        batch_size: Callable[[], int],
        wanted: Callable[[], bool],
    ) -> Feed:
        taken = self.keys.taken(list_key, self.token)
        ttl = self._inbox_ttl

        async def take(count: int, confirmed: bytes, batch_id: bytes) -> Any:
            return await self._script(
                tag, scripts.TAKE, (list_key, taken, rejections), (confirmed, batch_id, count, ttl)
            )

        async def find_subscriber() -> Subscriber | None:
            try:
                node = await self._node(tag)
            except LayerUnavailable:
                return None
            return self._loops.current().subscriber(node)

        return Feed(
            name=name,
            token=self.token,
            confirmed=self._confirmed,
            list_key=list_key,
            wake_channel=self.keys.wake(list_key),
            find_subscriber=find_subscriber,
            take=take,
            deliver=deliver,
            batch_size=batch_size,
            wanted=wanted,
            poll_interval=self.limits.poll_interval,
            retry_delay=self.limits.reconnect_backoff[1],
        )

    def _deliver_inbox(self, refused: bytes, items: list[bytes]) -> None:
        if refused:
            self.ledger.refused(refused)
        now = _now_ms()
        for raw in items:
            try:
                item = envelope.parse(raw)
            except ValueError:
                self._malformed(raw)
                continue
            if item.writer:
                self.ledger.observe(item.writer, item.seq, item.accounted)
            if item.deadline_ms <= now:
                self.stats.expired += 1
                continue
            kind = item.kind
            if kind is Kind.MESSAGE:
                message = self._decode(item.payload)
                if message is not None:
                    offer_local(self.queues, self.stats, item.target, message)
            elif kind is Kind.GROUP:
                members = self.local_groups.members(item.target)
                if members:
                    message = self._decode(item.payload)
                    if message is not None:
                        deliver_to_local(self.queues, self.stats, members, message)
            elif kind is Kind.JOIN:
                self.local_groups.add(item.target, item.payload)
            elif kind is Kind.LEAVE:
                self.local_groups.discard(item.target, item.payload)

    def _deliver_named(self, channel: str, items: list[bytes]) -> None:
        now = _now_ms()
        for raw in items:
            try:
                item = envelope.parse(raw)
            except ValueError:
                self._malformed(raw)
                continue
            if item.deadline_ms <= now:
                self.stats.expired += 1
                continue
            message = self._decode(item.payload)
            if message is not None:
                offer_local(self.queues, self.stats, channel, message)

    def _decode(self, payload: Any) -> Message | None:
        try:
            return self.serializer.loads(payload)
        except Exception as exc:  # wrong key, foreign data: skip it, say so
            self._malformed(payload, exc)
            return None

    def _malformed(self, raw: object, exc: BaseException | None = None) -> None:
        count_loss(
            self.stats,
            "malformed",
            logger,
            "Skipped an undecodable channel layer message (%s; different serializer_format "
            "or symmetric_encryption_keys between processes?); %d so far",
            repr(exc) if exc is not None else "bad envelope",
        )

    # -- groups ---------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        token = owner_token(channel)
        if token == self.token:
            self.local_groups.add(group, channel)
        elif token is None:
            self.named_groups.add(group, channel)
        deadline = _now_ms() + self._group_expiry_ms
        tag = self.keys.group_tag(group)
        try:
            await self._script(
                tag,
                scripts.GROUP_ADD,
                self._group_keys(group),
                (channel, deadline, token or "", self._group_ttl, _now_ms()),
            )
        except LayerUnavailable:
            # Kept locally; written to Redis when it is back (see _on_connect).
            self._remember_restore(tag)
            return
        if token is not None and token != self.token:
            await self._push_inbox(
                token, Kind.JOIN, group, envelope.pack_payload(channel), deadline
            )

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        token = owner_token(channel)
        if token == self.token:
            self.local_groups.discard(group, channel)
        elif token is None:
            self.named_groups.discard(group, channel)
        try:
            # Redis counts each process's members, so the channel's process leaves the
            # group's processes with its last member, whichever process discards it.
            await self._script(
                self.keys.group_tag(group),
                scripts.GROUP_DISCARD,
                self._group_keys(group),
                (channel, _now_ms()),
            )
        except LayerUnavailable:
            return  # the membership expires by itself; restore will not re-add it
        if token is not None and token != self.token:
            deadline = _now_ms() + self._expiry_ms
            await self._push_inbox(
                token, Kind.LEAVE, group, envelope.pack_payload(channel), deadline
            )

    async def group_channels(self, group: str) -> list[str]:
        """The live members of ``group`` in every process. Raises LayerUnavailable
        (naming the Redis node) when Redis stays unreachable for ``retry_timeout``."""
        self.require_valid_group_name(group)
        members, tag = self.keys.group_members(group), self.keys.group_tag(group)

        def ask() -> Awaitable[Any]:
            command = (b"ZRANGEBYSCORE", members, b"(%d" % _now_ms(), b"+inf")
            return self._run(tag, lambda pipe: pipe.call(command))

        reply = await self._repeatable(ask)
        return [member.decode() for member in reply]

    async def group_send(self, group: str, message: Message) -> None:
        self.require_valid_group_name(group)
        check_message(message)
        tag = self.keys.group_tag(group)
        keys = self._group_keys(group)
        # Ask Redis for the other processes first, and deliver to this process's
        # members while that round trip is under way.
        early: asyncio.Future[Any] | None = None
        if self.router.ready:
            pipe = self._loops.current().pipe(self.router.node_for(tag))
            early = pipe.call(scripts.GROUP_TARGETS.evalsha(keys, (_now_ms(),)))
            pipe.flush_now()
        members = self.local_groups.members(group)
        if members:
            deliver_to_local(self.queues, self.stats, members, message)
        try:
            processes, named = await self._group_targets(group, tag, early)
        except LayerUnavailable as exc:
            node = self.router.node_for(tag).key if self.router.ready else tag
            self.monitor.down(node, exc)
            self.monitor.lost(node)
            return
        own = self.token.encode()
        remote = [token.decode() for token in processes if token != own]
        if not remote and not named:
            return
        payload = self.serializer.dumps(message)  # once, whatever the number of processes
        deadline = _now_ms() + self._expiry_ms
        results = await asyncio.gather(
            *(self._push_inbox(token, Kind.GROUP, group, payload, deadline) for token in remote),
            *(self._push_channel(channel.decode(), payload, deadline) for channel in named),
        )
        for result in results:
            if result == -1:
                count_dropped(
                    self.stats, "a group message", group, "a member's queue in Redis is full"
                )
            elif result:
                self.stats.expired += result

    async def _group_targets(
        self, group: str, tag: str, early: asyncio.Future[Any] | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        """The processes and named channels of ``group`` (``early``: the reply of a
        GROUP_TARGETS already sent; any error reply is retried the careful way)."""
        keys = self._group_keys(group)
        targets = await early if early is not None else None
        if targets is None or isinstance(targets, ResponseError):
            targets = await self._script(tag, scripts.GROUP_TARGETS, keys, (_now_ms(),))
        if self._restarted and self.router.ready:
            # Redis lost the group shortly ago: members may not be back yet. Wait
            # until every process has had time to re-register, then look again.
            since = self._restarted.get(self.router.node_for(tag).key)
            if since is not None:
                left = self.limits.restart_grace - (time.monotonic() - since)
                if left > 0:
                    await asyncio.sleep(left)
                    targets = await self._script(tag, scripts.GROUP_TARGETS, keys, (_now_ms(),))
        processes, named = targets
        return processes, named

    def _remember_restore(self, tag: str) -> None:
        if self.router.ready:
            self._needs_restore.add(self.router.node_for(tag).key)

    # -- direct sockets -------------------------------------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        if owner_token(channel) != self.token:
            return False
        self.queues.attach(channel, socket)
        return True

    def detach_socket(self, channel: str) -> None:
        self.queues.detach(channel)

    # -- lifecycle ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key of this prefix on every node, and all local state. Raises
        LayerUnavailable (naming the node) when Redis stays unreachable for
        ``retry_timeout``."""
        if not self.router.ready:
            await self.router.load(self.limits.connect_timeout)
        pattern = self.keys.pattern()
        for node in self.router.masters():
            pipe = self._loops.current().pipe(node)
            cursor = b"0"
            while True:
                scan = (b"SCAN", cursor, b"MATCH", pattern, b"COUNT", 1000)
                reply = await self._repeatable(lambda: pipe.call(scan))  # noqa: B023
                if isinstance(reply, ResponseError):
                    raise reply
                cursor, found = reply
                # One key per UNLINK: in a cluster, keys of different slots may not
                # share a command (CROSSSLOT). The pipe sends them in one write anyway.
                unlinks = [(b"UNLINK", key) for key in found]
                results = await self._repeatable(
                    lambda: asyncio.gather(*(pipe.call(c) for c in unlinks))  # noqa: B023
                )
                for result in results:
                    if isinstance(result, ResponseError):
                        raise result
                if cursor == b"0":
                    break
        self.queues.clear()
        self.local_groups.clear()
        self.named_groups.clear()
        self._confirmed.clear()

    async def close(self) -> None:
        """Stop the feeds and close this loop's connections (others close with their
        loops). The layer can be used again afterwards."""
        feeds = [self._inbox_feed, *self._named_feeds.values()]
        self._inbox_feed = None
        self._named_feeds.clear()
        loop = asyncio.get_running_loop()
        mine = []
        for feed in feeds:
            if feed is None:
                continue
            feed.stop()
            if feed.loop is loop:
                mine.append(feed.task)
        if mine:
            # A feed stops after its current take (at most one round trip), which
            # keeps the batch it delivered confirmed; cancel only if Redis is stuck.
            _, pending = await asyncio.wait(mine, timeout=self.limits.socket_timeout)
            for task in pending:
                task.cancel()
        await self._loops.aclose_current()


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
