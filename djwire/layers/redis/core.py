"""RedisChannelLayer: the channel layer over one Redis, shards, Sentinel or Cluster.

How messages travel:

* **Process-specific channels** (``specific.TOKEN!local``, from ``new_channel``)
  belong to one layer instance. Messages from other processes go to that
  process's single *inbox* list in Redis; one feed per process moves them into
  process-local queues. Messages from this process to its own channels never
  touch Redis. Capacity: a remote sender gets ChannelFull when that process's
  inbox holds ``inbox_capacity`` messages; a channel's own ``capacity`` is applied
  where its queue lives, and arrivals beyond it are dropped and counted in
  ``stats.dropped_full``. Senders apply the capacities, so configure every process
  alike (as with channels_redis).
* **Named channels** (no ``!``) are Redis lists that any process may receive
  from, each message going to exactly one receiver.
* **Groups** cross Redis once per process, not per member (see :mod:`.group_ops`).

The layer wires the parts, each in its own module: :mod:`.commands` (the right
node, retries), :mod:`.pushes` (writing to lists), :mod:`.feeds` (taking from
them) and :mod:`.arrivals` (decoding what was taken), :mod:`.group_ops`,
:mod:`.restarts` (a node that lost its data) and :mod:`.accounting` (outages and
losses). Every limit is a field of :class:`~.config.Limits`, given as a keyword.

Nothing that consumers use raises during a Redis outage: sends that cannot be made
are counted in ``stats.lost_in_outage`` and the outage is logged once; receives
simply wait and resume when Redis is back; group_add is kept locally and written
to Redis when it is back, group_discard takes effect locally. ``group_channels()``
and ``flush()`` are the exceptions, as they have no right answer without Redis:
they repeat a command a broken connection cut off, and raise
:class:`~djwire.exceptions.LayerUnavailable`, naming the node, once Redis has
stayed unreachable for ``retry_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from redis.exceptions import ResponseError

from djwire.exceptions import ChannelFull, InvalidChannelLayerError

from ..base import BaseChannelLayer, Message, check_message
from ..delivery import send_local
from ..direct import DirectSocket
from ..local import LocalChannels
from ..queue_types import DeadLetter, Delivery
from . import envelope
from .accounting import LossLedger, OutageMonitor
from .arrivals import Arrivals
from .cluster import ClusterRouter, Router, ShardRouter
from .commands import Commands
from .config import Limits, parse_hosts
from .envelope import Kind, now_ms
from .feeds import Feeds
from .group_ops import GroupOps
from .nodes import StaticNode
from .pipe import CommandPipe, ServerInfo
from .pushes import Pushes
from .queues import RedisQueues
from .restarts import RestartWatch
from .serializers import make_serializer
from .sharding import Keys, owner_token

logger = logging.getLogger("djwire.layers.redis")


class RedisChannelLayer(BaseChannelLayer):
    """A channel layer over Redis; see the module docstring."""

    extensions: ClassVar[list[str]] = ["groups", "flush", "queues"]
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
        **limits: Any,  # the fields of Limits (see the signature set below the class)
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if group_expiry <= 0:
            raise InvalidChannelLayerError("group_expiry must be positive")
        self.group_expiry = group_expiry
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.limits = Limits.from_options(type(self).__name__, limits)
        nodes = parse_hosts(hosts)
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
        self._expiry_ms = int(expiry * 1000)

        self.local = LocalChannels(
            expiry,
            self.get_capacity,
            self.stats,
            backpressure_timeout=self.limits.backpressure_timeout,
        )
        self.monitor = OutageMonitor(self.stats)
        self.restarts = RestartWatch(self.stats, self.limits.restart_grace)
        self.commands = Commands(
            self.router, self.limits, self.monitor, client_name, self._on_connect
        )
        self.pushes = Pushes(
            self.commands,
            self.keys,
            self.monitor,
            expiry,
            self.limits.inbox_capacity,
            self.get_capacity,
        )
        self.group_ops = GroupOps(
            self.commands,
            self.pushes,
            self.restarts,
            self.keys,
            self.token,
            self.local,
            self.stats,
            self.monitor,
            self.serializer,
            expiry,
            group_expiry,
        )
        self.arrivals = Arrivals(
            self.local, self.stats, self.serializer, LossLedger(self.stats), self.group_ops.own
        )
        #: Named channels as work queues: take with leases, delays, dead letters.
        self.named_queues = RedisQueues(self)
        self.feeds = Feeds(
            self.commands,
            self.keys,
            self.token,
            self.local,
            self.arrivals,
            self.pushes.inbox_ttl,
            # The queues' take also moves due delayed messages and overdue leases to
            # the list, so plain receivers get those too.
            named_take=self.named_queues.feed_take,
        )

    def __repr__(self) -> str:
        return f"<RedisChannelLayer prefix={self.prefix!r} token={self.token}>"

    def _on_connect(self, pipe: CommandPipe, info: ServerInfo) -> None:
        """A pipe (re)connected: put back what a node lost (memberships, leases) and
        write the acknowledgements an outage held back."""
        connected = self.restarts.on_connect(pipe, info)
        if connected.restore:
            restored = self.group_ops.restore_on(pipe)
            if restored:
                logger.info("Re-registered %d group memberships on %s", restored, pipe.node)
        self.named_queues.on_connect(pipe, connected.restarted)

    # -- channels -------------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        token = owner_token(channel)
        if token == self.token:
            await send_local(self.local, self.stats, channel, message)
            return
        payload = self.serializer.dumps(message)
        deadline = now_ms() + self._expiry_ms
        if token is not None:
            result = await self.pushes.to_inbox(token, Kind.MESSAGE, channel, payload, deadline)
            if result == -1:
                raise ChannelFull(channel, self.limits.inbox_capacity)
            return
        result = await self.pushes.to_channel(channel, payload, deadline)
        if result == -1:
            raise ChannelFull(channel, self.get_capacity(channel))
        if result:
            self.stats.expired += result

    async def receive(self, channel: str) -> Message:
        self.require_valid_channel_name(channel)
        message = self.local.take(channel)
        if message is not None:
            return message
        token = owner_token(channel)
        if token is None:
            return await self.feeds.receive_named(channel)
        if token != self.token:
            raise ValueError(
                f"Channel {channel!r} belongs to another process (or layer instance); "
                "only the layer whose new_channel() made it can receive from it"
            )
        self.feeds.ensure_inbox()
        return await self.local.get(channel)

    def claim_receive(self, channel: str) -> asyncio.Future[Message]:
        """Like ``receive()`` but a plain future, for consumers of this process's own
        channels (see LocalChannels.claim): an idle consumer then costs no Task."""
        if owner_token(channel) != self.token:
            return asyncio.ensure_future(self.receive(channel))
        self.feeds.ensure_inbox()
        return self.local.claim(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        separator = "" if prefix.endswith(".") else "."
        name = f"{prefix}{separator}{self.token}!{secrets.token_hex(6)}"
        self.feeds.ensure_inbox()
        return name

    # -- groups ---------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self.group_ops.add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self.group_ops.discard(group, channel)

    async def group_channels(self, group: str) -> list[str]:
        """The live members of ``group`` in every process. Raises LayerUnavailable
        (naming the Redis node) when Redis stays unreachable for ``retry_timeout``."""
        self.require_valid_group_name(group)
        return await self.group_ops.channels(group)

    async def group_send(self, group: str, message: Message) -> None:
        self.require_valid_group_name(group)
        check_message(message)
        await self.group_ops.send(group, message)

    # -- named channels as work queues (djwire/layers/redis/queues.py) ---------------------

    async def take(
        self, channel: str, count: int = 1, *, lease: float | None = None
    ) -> list[Delivery]:
        return await self.named_queues.take(channel, count, lease)

    async def ack(self, channel: str, tags: list[str]) -> None:
        await self.named_queues.ack(channel, tags)

    async def retry(self, channel: str, tag: str, delay: float = 0) -> bool:
        return await self.named_queues.retry(channel, tag, delay)

    async def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        return await self.named_queues.dead_letter(channel, tag, reason)

    async def dead_letters(self, channel: str, limit: int = 100) -> list[DeadLetter]:
        return await self.named_queues.dead_letters(channel, limit)

    async def replay_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        return await self.named_queues.replay_dead_letters(channel, ids)

    async def discard_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        return await self.named_queues.discard_dead_letters(channel, ids)

    async def send_later(self, channel: str, message: Message, delay: float) -> None:
        await self.named_queues.send_later(channel, message, delay)

    # -- direct sockets -------------------------------------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        if owner_token(channel) != self.token:
            return False
        self.local.attach(channel, socket)
        return True

    def detach_socket(self, channel: str) -> None:
        self.local.detach(channel)

    # -- lifecycle ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key of this prefix on every node, and all local state. Raises
        LayerUnavailable (naming the node) when Redis stays unreachable for
        ``retry_timeout``."""
        commands = self.commands
        if not self.router.ready:
            await self.router.load(self.limits.connect_timeout)
        pattern = self.keys.pattern()
        for node in self.router.masters():
            pipe = commands.pipe(node)
            cursor = b"0"
            while True:
                scan = (b"SCAN", cursor, b"MATCH", pattern, b"COUNT", 1000)
                reply = await commands.repeatable(lambda: pipe.call(scan))  # noqa: B023
                if isinstance(reply, ResponseError):
                    raise reply
                cursor, found = reply
                # One key per UNLINK: in a cluster, keys of different slots may not
                # share a command (CROSSSLOT). The pipe sends them in one write anyway.
                unlinks = [(b"UNLINK", key) for key in found]
                results = await commands.repeatable(
                    lambda: asyncio.gather(*(pipe.call(c) for c in unlinks))  # noqa: B023
                )
                for result in results:
                    if isinstance(result, ResponseError):
                        raise result
                if cursor == b"0":
                    break
        self.local.clear()
        self.group_ops.clear()
        self.feeds.confirmed.clear()
        self.named_queues.clear()

    async def close(self) -> None:
        """Stop the feeds and close the connections: this loop's now, those of loops
        that have ended (or are not running) at once, and those of loops running in
        other threads on those loops. The layer can be used again afterwards."""
        loop = asyncio.get_running_loop()
        mine = [feed.task for feed in self.feeds.stop_all() if feed.loop is loop]
        if mine:
            # A feed stops after its current take (at most one round trip), which
            # keeps the batch it delivered confirmed; cancel only if Redis is stuck.
            _, pending = await asyncio.wait(mine, timeout=self.limits.socket_timeout)
            for task in pending:
                task.cancel()
        await self.commands.aclose_current()

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


def _signature_with_limits(init: Any) -> inspect.Signature:
    """``init``'s signature with ``**limits`` spelled out as Limits' fields."""
    signature = inspect.signature(init)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    return signature.replace(parameters=[*fixed, *Limits.parameters()])


RedisChannelLayer.__init__.__signature__ = _signature_with_limits(  # type: ignore[attr-defined]
    RedisChannelLayer.__init__
)
