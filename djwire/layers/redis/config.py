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

TLS takes redis-py's settings, in a dict or a URL's query (the query wins, as in
redis-py): ``ssl_cert_reqs`` (None or ``"none"``, ``"optional"``, ``"required"``),
``ssl_ca_certs``, ``ssl_ca_data``, ``ssl_ca_path``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_password``, ``ssl_check_hostname``, ``ssl_min_version``,
``ssl_ciphers``; redis-py's own ``RedisSSLContext`` turns them into the
``SSLContext``, so they mean exactly what they mean to channels_redis. They apply
where TLS is on (``rediss://``, ``"ssl": True``, or an SSL ``connection_class``);
elsewhere they are an error rather than a silently unencrypted connection.

Settings this layer has no use for (``max_connections``, ``retry_on_timeout``...)
are accepted and ignored, so channels_redis configurations work unchanged.
"""

from __future__ import annotations

import inspect
import ssl as ssl_module
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

from redis.asyncio.connection import (
    RedisSSLContext,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import RedisError

from djwire.exceptions import InvalidChannelLayerError

from ..local import DEFAULT_BACKPRESSURE_TIMEOUT, check_backpressure_timeout
from ..queues import DEFAULT_MAX_DEAD_LETTERS
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
    #: After delivering a batch, a process's inbox feed confirms it (and marks itself
    #: idle, so that the next message comes with its wake-up instead of after a
    #: take) in its process's next write to Redis, or after this long if there is
    #: none sooner: the confirmation then costs no write and no wake-up of its own.
    confirm_delay: float = 0.002
    #: Subscriber connections are pinged this often to detect a dead server.
    health_check_interval: float = 10.0
    #: After a node is seen to have restarted (and lost its data), group sends to
    #: groups on it wait out this long before reading the members, so that every
    #: process has had time to re-register its members (it reconnects within
    #: ``reconnect_backoff[1]``). Keep it above that.
    restart_grace: float = 1.0
    #: Dead letters kept per named channel (the "queues" extension); beyond it the
    #: oldest is dropped, counted in ``stats.extra["dead_letters_dropped"]`` and logged.
    max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS
    #: Longest a send or group_send waits for a receiver in this process to catch up
    #: (djwire.layers.pacing); 0: never wait (full queues drop, as in Channels).
    backpressure_timeout: float = DEFAULT_BACKPRESSURE_TIMEOUT

    def __post_init__(self) -> None:
        positive = ("connect_timeout", "socket_timeout", "retry_timeout", "poll_interval")
        for name in (*positive, "health_check_interval"):
            if getattr(self, name) <= 0:
                raise InvalidChannelLayerError(f"{name} must be positive")
        for name in ("restart_grace", "confirm_delay"):
            if getattr(self, name) < 0:
                raise InvalidChannelLayerError(f"{name} must not be negative")
        check_backpressure_timeout(self.backpressure_timeout)
        low, high = self.reconnect_backoff
        if not 0 < low <= high:
            raise InvalidChannelLayerError(
                "reconnect_backoff must be (min, max) with 0 < min <= max"
            )
        for name in ("max_batch", "max_pending", "inbox_capacity", "max_dead_letters"):
            if getattr(self, name) < 1:
                raise InvalidChannelLayerError(f"{name} must be at least 1")
        if self.max_batch > 5000:
            # Lua's unpack() has a C stack limit of ~8000 values.
            raise InvalidChannelLayerError("max_batch must be at most 5000")

    @classmethod
    def from_options(cls, owner: str, options: Mapping[str, Any]) -> Limits:
        """The limits given among ``owner``'s keyword arguments; any other key there is
        refused with the TypeError Python raises for an unexpected keyword."""
        names = {limit.name for limit in fields(cls)}
        for key in options:
            if key not in names:
                raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}")
        if "reconnect_backoff" in options:  # a list from JSON or settings works too
            options = {**options, "reconnect_backoff": tuple(options["reconnect_backoff"])}
        return cls(**options)

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """One keyword-only parameter per limit, with its default: for the signature
        of a constructor that takes them as ``**limits`` (introspection, and
        ``manage.py check``'s test of CONFIG keys, see them)."""
        return [
            inspect.Parameter(
                limit.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=limit.default if limit.default is not MISSING else inspect.Parameter.empty,
                annotation=limit.type,
            )
            for limit in fields(cls)
        ]


def parse_hosts(hosts: Sequence[Any] | str | Mapping[str, Any] | None) -> list[Node]:
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
        return _from_url(entry, {})
    if isinstance(entry, Sequence) and len(entry) == 2:
        host, port = entry
        return Address(host=str(host), port=int(port))
    if isinstance(entry, Mapping):
        settings = dict(entry)
        address = settings.pop("address", None)
        if isinstance(address, str):
            return _from_url(address, settings)
        if isinstance(address, Mapping):
            return parse_address({**address, **settings})
        if address is not None:
            pair = parse_address(address)
            host, port = pair.host, pair.port
        else:
            host, port = settings.get("host", "localhost"), settings.get("port", 6379)
        return Address(
            host=str(host),
            port=int(port),
            unix_path=settings.get("path") or settings.get("unix_socket_path"),
            db=int(settings.get("db", 0)),
            username=settings.get("username"),
            password=settings.get("password"),
            ssl=tls_context(settings),
        )
    raise InvalidChannelLayerError(f"Cannot understand Redis host {entry!r}")


def _from_url(url: str, settings: Mapping[str, Any]) -> Address:
    """A URL, with the settings of the dict it came in (``{"address": url, ...}``)."""
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        raise InvalidChannelLayerError(f"Bad Redis URL {url!r}: {exc}") from exc
    kind = parsed.get("connection_class")
    query_tls = {key: value for key, value in parsed.items() if key in _TLS_SETTINGS}
    return Address(
        host=parsed.get("host", "localhost"),
        port=int(parsed.get("port", 6379)),
        unix_path=parsed.get("path") if kind is UnixDomainSocketConnection else None,
        db=int(settings.get("db", parsed.get("db", 0))),
        username=settings.get("username", parsed.get("username")),
        password=settings.get("password", parsed.get("password")),
        ssl=tls_context({**settings, **query_tls}, tls_address=kind is SSLConnection),
    )


#: redis-py's TLS settings -> the RedisSSLContext argument each one is.
_TLS_SETTINGS = {
    "ssl_cert_reqs": "cert_reqs",
    "ssl_ca_certs": "ca_certs",
    "ssl_ca_data": "ca_data",
    "ssl_ca_path": "ca_path",
    "ssl_certfile": "certfile",
    "ssl_keyfile": "keyfile",
    "ssl_password": "password",
    "ssl_check_hostname": "check_hostname",
    "ssl_min_version": "min_version",
    "ssl_ciphers": "ciphers",
    "ssl_include_verify_flags": "include_verify_flags",
    "ssl_exclude_verify_flags": "exclude_verify_flags",
}


def tls_context(
    settings: Mapping[str, Any], *, tls_address: bool = False
) -> ssl_module.SSLContext | None:
    """The SSLContext for ``settings`` (None: no TLS). ``tls_address``: the address
    was a ``rediss://`` URL."""
    given = settings.get("ssl")
    if isinstance(given, ssl_module.SSLContext):
        return given
    connection_class = settings.get("connection_class")
    wanted = (
        tls_address
        or bool(given)
        or (isinstance(connection_class, type) and issubclass(connection_class, SSLConnection))
    )
    options = {key: settings[key] for key in _TLS_SETTINGS if key in settings}
    if not wanted:
        if options:
            raise InvalidChannelLayerError(
                f"{', '.join(options)} given for a Redis connection without TLS; use a "
                "rediss:// address or 'ssl': True"
            )
        return None
    # redis-py's SSLConnection defaults: certificate and host name checked. An
    # explicit ssl_cert_reqs=None means no checks, as RedisSSLContext reads it.
    arguments: dict[str, Any] = {"cert_reqs": "required", "check_hostname": True}
    for key, value in options.items():
        arguments[_TLS_SETTINGS[key]] = value
    if isinstance(arguments["cert_reqs"], str):
        arguments["cert_reqs"] = arguments["cert_reqs"].lower()
    if isinstance(arguments["check_hostname"], str):
        arguments["check_hostname"] = arguments["check_hostname"].lower() not in _FALSE
    try:
        return RedisSSLContext(**arguments).get()
    except (RedisError, OSError, TypeError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise InvalidChannelLayerError(f"Bad TLS settings for Redis ({exc})") from exc


_FALSE = ("0", "f", "false", "n", "no", "off", "")


def _sentinel_node(entry: Mapping[str, Any]) -> Node:
    settings = dict(entry)
    sentinels = settings.pop("sentinels")
    master_name = settings.pop("master_name", None)
    if not master_name:
        raise InvalidChannelLayerError("A Sentinel host needs 'master_name'")
    sentinel_settings = dict(settings.pop("sentinel_kwargs", None) or {})
    addresses = []
    for sentinel in sentinels:
        # Sentinels take the login and TLS settings of sentinel_kwargs, never a db.
        address = parse_address({**sentinel_settings, "address": sentinel, "db": 0})
        addresses.append(address)
    if not addresses:
        raise InvalidChannelLayerError("A Sentinel host needs at least one sentinel")
    return SentinelNode(addresses, str(master_name), parse_address(settings or {}))
