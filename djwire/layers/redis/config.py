"""Configuration: ``hosts`` in every form channels_redis accepts, and the limits.

``hosts`` entries may be:

* a URL: ``"redis://user:pass@host:6379/0"``, ``"rediss://..."`` (TLS),
  ``"unix:///path/redis.sock?db=0"``;
* a ``(host, port)`` pair;
* a dict of connection settings: ``{"address": URL or (host, port)}`` or
  ``{"host": ..., "port": ..., "db": ..., "username": ..., "password": ...,
  "ssl": True or an SSLContext}``;
* a Sentinel dict: ``{"sentinels": [(host, port), ...], "master_name": "mymaster",
  "sentinel_kwargs": {"password": ...}}`` plus connection settings for the master.

Settings this layer has no use for (``max_connections``, ``retry_on_timeout``...)
are accepted and ignored, so channels_redis configurations work unchanged.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

from djwire.exceptions import InvalidChannelLayerError

from .connection import Address
from .nodes import Node, SentinelNode, StaticNode


@dataclass(frozen=True)
class Limits:
    """Every limit of the Redis layer, with its default. All times in seconds."""

    #: Opening a connection (TCP + login) takes at most this long.
    connect_timeout: float = 2.0
    #: A connection with replies outstanding for this long is considered dead.
    socket_timeout: float = 5.0
    #: A command issued while Redis is unreachable waits this long for it to come
    #: back, then is given up (counted in ``stats.lost_in_outage``).
    retry_timeout: float = 2.0
    #: Reconnect delays: start at the first value, double up to the second.
    reconnect_backoff: tuple[float, float] = (0.05, 0.5)
    #: Most items one take moves from Redis into the process.
    max_batch: int = 1000
    #: Most commands queued per node per event loop while Redis is slow or away;
    #: beyond it, commands fail at once instead of growing memory.
    max_pending: int = 100_000
    #: Most messages waiting in Redis for one process (its inbox).
    inbox_capacity: int = 10_000
    #: An idle receiver re-checks Redis this often even without a wake-up.
    poll_interval: float = 1.0
    #: Subscriber connections are pinged this often to detect a dead server.
    health_check_interval: float = 10.0
    #: After a node is seen to have restarted (and lost its data), group sends to
    #: groups on it wait out this long before reading the members, so that every
    #: process has had time to re-register its members (it reconnects within
    #: ``reconnect_backoff[1]``). Keep it above that.
    restart_grace: float = 1.0

    def __post_init__(self) -> None:
        positive = ("connect_timeout", "socket_timeout", "retry_timeout", "poll_interval")
        for name in (*positive, "health_check_interval"):
            if getattr(self, name) <= 0:
                raise InvalidChannelLayerError(f"{name} must be positive")
        if self.restart_grace < 0:
            raise InvalidChannelLayerError("restart_grace must not be negative")
        low, high = self.reconnect_backoff
        if not 0 < low <= high:
            raise InvalidChannelLayerError(
                "reconnect_backoff must be (min, max) with 0 < min <= max"
            )
        for name in ("max_batch", "max_pending", "inbox_capacity"):
            if getattr(self, name) < 1:
                raise InvalidChannelLayerError(f"{name} must be at least 1")
        if self.max_batch > 5000:
            # Lua's unpack() has a C stack limit of ~8000 values.
            raise InvalidChannelLayerError("max_batch must be at most 5000")


def parse_hosts(hosts: Sequence[Any] | None) -> list[Node]:
    if hosts is None:
        hosts = [("localhost", 6379)]
    single_pair = isinstance(hosts, tuple) and len(hosts) == 2 and isinstance(hosts[1], int)
    if isinstance(hosts, str | Mapping) or single_pair:
        hosts = [hosts]
    if not hosts:
        raise InvalidChannelLayerError("hosts must name at least one Redis server")
    return [parse_host(entry) for entry in hosts]


def parse_host(entry: Any) -> Node:
    if isinstance(entry, Mapping) and "sentinels" in entry:
        return _sentinel_node(entry)
    return StaticNode(parse_address(entry))


def parse_address(entry: Any) -> Address:
    if isinstance(entry, str):
        return _from_url(entry)
    if isinstance(entry, Sequence) and len(entry) == 2:
        host, port = entry
        return Address(host=str(host), port=int(port))
    if isinstance(entry, Mapping):
        settings = dict(entry)
        address = settings.pop("address", None)
        if address is not None:
            base = parse_address(address)
        else:
            base = Address(
                host=str(settings.pop("host", "localhost")),
                port=int(settings.pop("port", 6379)),
                unix_path=settings.pop("path", None) or settings.pop("unix_socket_path", None),
            )
        return Address(
            host=base.host,
            port=base.port,
            unix_path=base.unix_path,
            db=int(settings.get("db", base.db)),
            username=settings.get("username", base.username),
            password=settings.get("password", base.password),
            ssl=_ssl_context(settings) or base.ssl,
        )
    raise InvalidChannelLayerError(f"Cannot understand Redis host {entry!r}")


def _from_url(url: str) -> Address:
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        raise InvalidChannelLayerError(f"Bad Redis URL {url!r}: {exc}") from exc
    kind = parsed.get("connection_class")
    return Address(
        host=parsed.get("host", "localhost"),
        port=int(parsed.get("port", 6379)),
        unix_path=parsed.get("path") if kind is UnixDomainSocketConnection else None,
        db=int(parsed.get("db", 0)),
        username=parsed.get("username"),
        password=parsed.get("password"),
        ssl=ssl_module.create_default_context() if kind is SSLConnection else None,
    )


def _ssl_context(settings: Mapping[str, Any]) -> ssl_module.SSLContext | None:
    value = settings.get("ssl")
    if isinstance(value, ssl_module.SSLContext):
        return value
    if not value:
        return None
    context = ssl_module.create_default_context(cafile=settings.get("ssl_ca_certs"))
    if settings.get("ssl_certfile"):
        context.load_cert_chain(settings["ssl_certfile"], settings.get("ssl_keyfile"))
    if settings.get("ssl_cert_reqs") in ("none", ssl_module.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def _sentinel_node(entry: Mapping[str, Any]) -> Node:
    settings = dict(entry)
    sentinels = settings.pop("sentinels")
    master_name = settings.pop("master_name", None)
    if not master_name:
        raise InvalidChannelLayerError("A Sentinel host needs 'master_name'")
    sentinel_settings = dict(settings.pop("sentinel_kwargs", None) or {})
    addresses = []
    for sentinel in sentinels:
        base = parse_address(sentinel)
        addresses.append(
            Address(
                host=base.host,
                port=base.port,
                username=sentinel_settings.get("username", base.username),
                password=sentinel_settings.get("password", base.password),
                ssl=_ssl_context(sentinel_settings) or base.ssl,
            )
        )
    if not addresses:
        raise InvalidChannelLayerError("A Sentinel host needs at least one sentinel")
    return SentinelNode(addresses, str(master_name), parse_address(settings or {}))
