"""Configuration: channels_redis-compatible hosts, named limits, clear errors."""

from __future__ import annotations

import ssl

import pytest
from django.test import override_settings

from djwire.exceptions import InvalidChannelLayerError
from djwire.layers import channel_layers
from djwire.layers.redis import RedisChannelLayer
from djwire.layers.redis.cluster import ClusterRouter, ShardRouter
from djwire.layers.redis.config import Limits, parse_address, parse_hosts
from djwire.layers.redis.nodes import SentinelNode, StaticNode
from tests.support.redis_servers import RedisServer


def test_default_host_is_localhost_6379() -> None:
    (node,) = parse_hosts(None)
    assert isinstance(node, StaticNode)
    assert (node.address.host, node.address.port, node.address.db) == ("localhost", 6379, 0)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("redis://127.0.0.1:7000/3", ("127.0.0.1", 7000, 3, None, None)),
        ("redis://user:secret@example.test:7001/0", ("example.test", 7001, 0, "user", "secret")),
        (("10.0.0.1", 7002), ("10.0.0.1", 7002, 0, None, None)),
        ({"address": "redis://h:7003/2"}, ("h", 7003, 2, None, None)),
        ({"address": ("h", 7004), "db": 5, "password": "pw"}, ("h", 7004, 5, None, "pw")),
        ({"host": "h", "port": 7005, "max_connections": 10}, ("h", 7005, 0, None, None)),
    ],
)
def test_hosts_in_every_channels_redis_form(entry: object, expected: tuple) -> None:
    address = parse_address(entry)
    assert (address.host, address.port, address.db, address.username, address.password) == (
        expected
    )


def test_hosts_may_be_one_entry_or_a_tuple_of_entries() -> None:
    assert len(parse_hosts("redis://127.0.0.1:1/0")) == 1
    assert len(parse_hosts(("127.0.0.1", 6379))) == 1
    assert len(parse_hosts(("redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"))) == 2
    assert len(parse_hosts({"address": "redis://127.0.0.1:1/0"})) == 1


def test_tls_and_unix_socket_urls() -> None:
    assert isinstance(parse_address("rediss://h:6380/0").ssl, ssl.SSLContext)
    unix = parse_address("unix:///tmp/redis.sock?db=4")
    assert (unix.unix_path, unix.db) == ("/tmp/redis.sock", 4)


def test_sentinel_dict_names_the_master_and_sentinels() -> None:
    (node,) = parse_hosts(
        [
            {
                "sentinels": [("127.0.0.1", 26379), "redis://127.0.0.1:26380"],
                "master_name": "mymaster",
                "sentinel_kwargs": {"password": "sentinel-pw"},
                "db": 2,
                "password": "master-pw",
            }
        ]
    )
    assert isinstance(node, SentinelNode)
    assert node.master_name == "mymaster"
    assert [s.port for s in node.sentinels] == [26379, 26380]
    assert node.sentinels[0].password == "sentinel-pw"
    assert (node.master.db, node.master.password) == (2, "master-pw")


def test_several_hosts_shard_and_cluster_flag_selects_cluster_routing() -> None:
    urls = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"]
    assert isinstance(RedisChannelLayer(hosts=urls).router, ShardRouter)
    assert isinstance(RedisChannelLayer(hosts=urls, cluster=True).router, ClusterRouter)


@pytest.mark.parametrize(
    "config",
    [
        {"hosts": [object()]},
        {"hosts": []},
        {"hosts": [{"sentinels": [("h", 1)]}]},  # no master_name
        {"prefix": "has{brace}"},
        {"serializer_format": "pickle"},
        {"connect_timeout": 0},
        {"reconnect_backoff": (1.0, 0.5)},
        {"max_batch": 100_000},
        {"inbox_capacity": 0},
        {"group_expiry": 0},
        {"capacity": 0},
        {"channel_capacity": {"x.*": 0}},
    ],
)
def test_bad_configuration_is_a_clear_error(config: dict) -> None:
    with pytest.raises(ValueError):  # InvalidChannelLayerError is a ValueError
        RedisChannelLayer(**config)


def test_every_limit_has_a_safe_default() -> None:
    limits = Limits()
    assert limits.max_pending >= 1000 and limits.inbox_capacity >= 1000
    assert 0 < limits.connect_timeout <= 10 and 0 < limits.retry_timeout <= 10
    assert limits.reconnect_backoff[1] < limits.restart_grace


def test_unknown_option_is_reported_by_the_settings_loader() -> None:
    layers = {
        "default": {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"], "no_such_option": 1},
        }
    }
    with (
        override_settings(CHANNEL_LAYERS=layers),
        pytest.raises(InvalidChannelLayerError, match="no_such_option"),
    ):
        channel_layers.make_backend("default")


async def test_configured_through_django_settings(redis_server: RedisServer) -> None:
    layers = {
        "default": {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_server.url], "prefix": "settings", "capacity": 7},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        layer = channel_layers.make_backend("default")
        assert isinstance(layer, RedisChannelLayer)
        assert layer.capacity == 7
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "ok"})
        assert (await layer.receive(channel))["type"] == "ok"
        await layer.flush()
        await layer.close()
