"""A node is one Redis master the layer talks to: at a fixed address, or found
through Redis Sentinel (asked again after every lost connection, so a failover
is followed on the next reconnect)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from djwire.exceptions import LayerUnavailable

from .connection import Address, RedisConnection, open_connection

logger = logging.getLogger("djwire.layers.redis")

OnLost = Callable[[RedisConnection], None]


class Node:
    """Base: ``key`` names the node in per-loop tables; ``connect`` opens a link."""

    key: str

    async def connect(
        self, connect_timeout: float, client_name: str | None, on_lost: OnLost | None
    ) -> RedisConnection:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.key


class StaticNode(Node):
    def __init__(self, address: Address) -> None:
        self.address = address
        self.key = str(address)

    async def connect(
        self, connect_timeout: float, client_name: str | None, on_lost: OnLost | None
    ) -> RedisConnection:
        return await open_connection(
            self.address, connect_timeout=connect_timeout, client_name=client_name, on_lost=on_lost
        )


class SentinelNode(Node):
    """The current master of ``master_name``, as the Sentinels report it."""

    def __init__(self, sentinels: Sequence[Address], master_name: str, master: Address) -> None:
        if not sentinels:
            raise ValueError("A Sentinel host needs at least one sentinel address")
        self.sentinels = list(sentinels)
        self.master_name = master_name
        self.master = master  # db and credentials for the master; host/port are found
        self.key = f"sentinel://{master_name}/{master.db}"
        self.last_address: tuple[str, int] | None = None

    async def discover(self, connect_timeout: float) -> Address:
        sentinels = [StaticNode(address) for address in self.sentinels]
        command = (b"SENTINEL", b"get-master-addr-by-name", self.master_name)
        index, reply = await ask_first(sentinels, command, connect_timeout)
        if index:  # ask the sentinel that answered first next time
            self.sentinels.insert(0, self.sentinels.pop(index))
        host, port = reply[0].decode(), int(reply[1])
        if self.last_address != (host, port):
            if self.last_address is not None:
                logger.warning(
                    "Sentinel reports a new master for %r: %s:%d (was %s:%d)",
                    self.master_name,
                    host,
                    port,
                    *self.last_address,
                )
            self.last_address = (host, port)
        return Address(
            host=host,
            port=port,
            db=self.master.db,
            username=self.master.username,
            password=self.master.password,
            ssl=self.master.ssl,
        )

    async def connect(
        self, connect_timeout: float, client_name: str | None, on_lost: OnLost | None
    ) -> RedisConnection:
        address = await self.discover(connect_timeout)
        # ROLE in the handshake: a demoted master still accepts connections.
        return await open_connection(
            address,
            connect_timeout=connect_timeout,
            client_name=client_name,
            on_lost=on_lost,
            require_master=True,
        )


async def ask_first(
    nodes: Sequence[Node], command: tuple[bytes | str, ...], connect_timeout: float
) -> tuple[int, Any]:
    """Ask ``nodes`` in turn on short-lived connections; the first reply that is
    neither an error nor empty wins: ``(index of that node, reply)``."""
    errors = []
    for index, node in enumerate(nodes):
        try:
            connection = await node.connect(connect_timeout, None, None)
        except LayerUnavailable as exc:
            errors.append(str(exc))
            continue
        try:
            (reply,) = await connection.call(command)
        except LayerUnavailable as exc:
            errors.append(str(exc))
            continue
        finally:
            await connection.aclose(connect_timeout)
        if isinstance(reply, ResponseError) or not reply:
            errors.append(f"{node}: {reply!r}")
            continue
        return index, reply
    raise LayerUnavailable(f"No node answered {command[0]!r} {command[1]!r}: {errors}")
