"""Backends the layer contract suite runs against.

Each entry builds a fresh layer from keyword arguments (``expiry``, ``capacity``,
``group_expiry``, ``channel_capacity``). Backends that need a service start it
themselves via fixtures and register here under their own name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from djwire.layers import BaseChannelLayer, InMemoryChannelLayer

LayerFactory = Callable[..., BaseChannelLayer]


def memory_factory(request: Any) -> LayerFactory:
    def make(**config: Any) -> BaseChannelLayer:
        return InMemoryChannelLayer(**config)

    return make


def ipc_factory(request: Any) -> LayerFactory:
    import shutil
    import tempfile

    from djwire.layers.ipc import IPCChannelLayer

    # A space per test, short enough for Unix socket paths, removed afterwards.
    space = tempfile.mkdtemp(prefix="djw-ipc-")
    request.addfinalizer(lambda: shutil.rmtree(space, ignore_errors=True))

    def make(**config: Any) -> BaseChannelLayer:
        return IPCChannelLayer(path=space, **config)

    return make


def _redis_factory(hosts: list[Any], **fixed: Any) -> LayerFactory:
    import itertools

    from djwire.layers.redis import RedisChannelLayer

    counter = itertools.count()

    def make(**config: Any) -> BaseChannelLayer:
        # A prefix per layer keeps tests apart even if one forgets to flush.
        return RedisChannelLayer(hosts=hosts, prefix=f"contract{next(counter)}", **fixed, **config)

    return make


def redis_factory(request: Any) -> LayerFactory:
    from tests.support.redis_servers import single_server

    return _redis_factory([single_server(request.config).url])


def redis_sharded_factory(request: Any) -> LayerFactory:
    from tests.support.redis_servers import shard_servers

    return _redis_factory([server.url for server in shard_servers(request.config)])


def redis_cluster_factory(request: Any) -> LayerFactory:
    from tests.support.redis_servers import cluster

    return _redis_factory(cluster(request.config).urls, cluster=True)


#: name -> function(pytest request) -> factory. The request lets a backend pull in
#: session fixtures (a Redis server) only when its parameter is used.
BACKENDS: dict[str, Callable[[Any], LayerFactory]] = {
    "memory": memory_factory,
    "ipc": ipc_factory,
    "redis": redis_factory,
    "redis-sharded": redis_sharded_factory,
    "redis-cluster": redis_cluster_factory,
}
