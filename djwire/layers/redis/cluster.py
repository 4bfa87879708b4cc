"""Which node holds a tag: client-side shards, or Redis Cluster's slot map.

Both routers map a key's hash tag (see :mod:`.sharding`) to a :class:`Node`.
Client-side sharding uses jump consistent hashing over the configured hosts
(each may be a Sentinel-managed master). Redis Cluster uses the slot of the tag
(CRC16 mod 16384, the cluster spec's ``HASH_SLOT``) and the slot map from
``CLUSTER SLOTS``, fetched on first use and again whenever a node answers
MOVED/ASK (resharding, failover).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.crc import key_slot

from djwire.exceptions import LayerUnavailable

from .connection import Address
from .nodes import Node, StaticNode, ask_first
from .sharding import jump_hash

logger = logging.getLogger("djwire.layers.redis")

SLOTS = 16384


class ShardRouter:
    """Fixed nodes; a tag's node is ``jump_hash(tag)``."""

    cluster = False
    publish = b"PUBLISH"

    def __init__(self, nodes: Sequence[Node]) -> None:
        if not nodes:
            raise ValueError("At least one node is needed")
        self.nodes = list(nodes)
        self._cache: dict[str, Node] = {}

    def node_for(self, tag: str) -> Node:
        if len(self.nodes) == 1:
            return self.nodes[0]
        node = self._cache.get(tag)
        if node is None:
            node = self.nodes[jump_hash(tag.encode(), len(self.nodes))]
            if len(self._cache) < 100_000:
                self._cache[tag] = node
        return node

    @property
    def ready(self) -> bool:
        return True

    async def load(self, connect_timeout: float) -> None:
        """Nothing to discover."""

    async def refresh(self, connect_timeout: float) -> None:
        """Nothing to refresh: shards never move."""

    def masters(self) -> list[Node]:
        return list(self.nodes)


class ClusterRouter:
    """Redis Cluster: tag -> slot -> master node, from ``CLUSTER SLOTS``."""

    cluster = True
    publish = b"SPUBLISH"

    def __init__(self, seeds: Sequence[StaticNode]) -> None:
        if not seeds:
            raise ValueError("At least one cluster node is needed")
        self.seeds = list(seeds)
        self._template = self.seeds[0].address  # credentials for discovered nodes
        self._slots: list[Node] | None = None
        self._nodes: dict[tuple[str, int], StaticNode] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self._refresh_loop: asyncio.AbstractEventLoop | None = None

    @property
    def ready(self) -> bool:
        return self._slots is not None

    def node_for(self, tag: str) -> Node:
        slots = self._slots
        if slots is None:
            raise LayerUnavailable("The Redis Cluster slot map is not loaded yet")
        return slots[key_slot(tag.encode())]

    def masters(self) -> list[Node]:
        return list(dict.fromkeys(self._slots or ()))

    async def load(self, connect_timeout: float) -> None:
        if self._slots is None:
            await self.refresh(connect_timeout)

    async def refresh(self, connect_timeout: float) -> None:
        """Fetch the slot map; concurrent callers on one loop share one fetch."""
        loop = asyncio.get_running_loop()
        if self._refreshing is not None and self._refresh_loop is loop:
            await asyncio.shield(self._refreshing)
            return
        future: asyncio.Future[None] = loop.create_future()
        self._refreshing, self._refresh_loop = future, loop
        try:
            await self._fetch(connect_timeout)
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: concurrent waiters re-raise their own copy
            raise
        finally:
            if self._refreshing is future:
                self._refreshing = None

    async def _fetch(self, connect_timeout: float) -> None:
        candidates = list(dict.fromkeys([*self._nodes.values(), *self.seeds]))
        index, reply = await ask_first(candidates, (b"CLUSTER", b"SLOTS"), connect_timeout)
        self._install(reply, candidates[index].address)

    def _install(self, reply: list[list[object]], answered_by: Address) -> None:
        slots: list[Node | None] = [None] * SLOTS
        for entry in reply:
            start, end, master = entry[0], entry[1], entry[2]
            assert isinstance(start, int) and isinstance(end, int) and isinstance(master, list)
            host = master[0].decode() if master[0] else answered_by.host
            port = int(master[1])
            node = self._nodes.get((host, port))
            if node is None:
                template = self._template
                node = self._nodes[(host, port)] = StaticNode(
                    Address(
                        host=host,
                        port=port,
                        username=template.username,
                        password=template.password,
                        ssl=template.ssl,
                    )
                )
            for slot in range(start, end + 1):
                slots[slot] = node
        missing = slots.count(None)
        if missing:
            raise LayerUnavailable(f"The Redis Cluster does not cover {missing} slots")
        self._slots = [node for node in slots if node is not None]
        logger.debug("Redis Cluster slot map: %d masters", len(set(self._slots)))


Router = ShardRouter | ClusterRouter
