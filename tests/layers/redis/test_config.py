"""Configuration: channels_redis-compatible hosts, named limits, clear errors."""

from __future__ import annotations

import dataclasses
import inspect
import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from redis.asyncio.connection import SSLConnection

from djwire.checks import check_channel_layers
from djwire.exceptions import InvalidChannelLayerError
from djwire.layers import channel_layers
from djwire.layers.redis import RedisChannelLayer
from djwire.layers.redis.cluster import ClusterRouter, ShardRouter
from djwire.layers.redis.config import Limits, parse_address, parse_hosts
from djwire.layers.redis.nodes import SentinelNode, StaticNode
from tests.support.redis_servers import RedisServer, self_signed_certificate


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


def test_tls_urls_check_certificates_and_host_names_by_default() -> None:
    context = parse_address("rediss://h:6380/0").ssl
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert parse_address("redis://h:6379/0").ssl is None


@pytest.mark.parametrize(
    ("entry", "verify_mode", "check_hostname"),
    [
        # channels_redis + redis-py forms; Heroku documents the first one.
        ({"address": "rediss://h:1", "ssl_cert_reqs": None}, ssl.CERT_NONE, False),
        ({"address": "rediss://h:1", "ssl_cert_reqs": "none"}, ssl.CERT_NONE, False),
        ({"address": "rediss://h:1", "ssl_cert_reqs": ssl.CERT_NONE}, ssl.CERT_NONE, False),
        ("rediss://h:1/0?ssl_cert_reqs=none", ssl.CERT_NONE, False),
        ({"address": "rediss://h:1/0?ssl_cert_reqs=none"}, ssl.CERT_NONE, False),
        ({"address": "rediss://h:1", "ssl_cert_reqs": "optional"}, ssl.CERT_OPTIONAL, True),
        ({"address": "rediss://h:1", "ssl_cert_reqs": "required"}, ssl.CERT_REQUIRED, True),
        ({"address": "rediss://h:1", "ssl_check_hostname": False}, ssl.CERT_REQUIRED, False),
        ("rediss://h:1/0?ssl_check_hostname=false", ssl.CERT_REQUIRED, False),
        ({"host": "h", "ssl": True, "ssl_cert_reqs": None}, ssl.CERT_NONE, False),
        ({"host": "h", "ssl": True}, ssl.CERT_REQUIRED, True),
        ({"host": "h", "connection_class": SSLConnection, "ssl_cert_reqs": "none"}, 0, False),
        # The URL's query wins over the dict, as in redis-py's from_url.
        (
            {"address": "rediss://h:1/0?ssl_cert_reqs=required", "ssl_cert_reqs": None},
            ssl.CERT_REQUIRED,
            True,
        ),
    ],
)
def test_tls_settings_in_every_channels_redis_form(
    entry: object, verify_mode: int, check_hostname: bool
) -> None:
    context = parse_address(entry).ssl
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (verify_mode, check_hostname)


def test_tls_ca_certs_are_loaded(tmp_path: Path) -> None:
    cert, _ = self_signed_certificate(tmp_path)
    context = parse_address({"address": "rediss://h:1", "ssl_ca_certs": str(cert)}).ssl
    assert context is not None
    subjects = [dict(entry[0] for entry in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "djwire test"} in subjects


def test_an_ssl_context_is_used_as_given() -> None:
    mine = ssl.create_default_context()
    assert parse_address({"address": "rediss://h:1", "ssl": mine}).ssl is mine


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"address": "redis://h:1", "ssl_cert_reqs": None}, "without TLS"),
        ("redis://h:1/0?ssl_cert_reqs=none", "without TLS"),
        ({"host": "h", "ssl_ca_certs": "/x.pem"}, "without TLS"),
        ({"address": "rediss://h:1", "ssl_cert_reqs": "sometimes"}, "sometimes"),
        ({"address": "rediss://h:1", "ssl_ca_certs": "/no/such/ca.pem"}, "TLS settings"),
    ],
)
def test_bad_tls_settings_are_a_clear_error(entry: object, message: str) -> None:
    with pytest.raises(InvalidChannelLayerError, match=message):
        parse_address(entry)


def test_sentinels_take_tls_settings_from_sentinel_kwargs() -> None:
    (node,) = parse_hosts(
        [
            {
                "sentinels": [("127.0.0.1", 26379)],
                "master_name": "mymaster",
                "sentinel_kwargs": {"ssl": True, "ssl_cert_reqs": None, "password": "s"},
                "ssl": True,
                "ssl_check_hostname": False,
            }
        ]
    )
    assert isinstance(node, SentinelNode)
    sentinel, master = node.sentinels[0], node.master
    assert sentinel.password == "s" and sentinel.ssl is not None and master.ssl is not None
    assert sentinel.ssl.verify_mode == ssl.CERT_NONE
    assert (master.ssl.verify_mode, master.ssl.check_hostname) == (ssl.CERT_REQUIRED, False)


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


def test_each_limit_is_a_keyword_of_the_constructor_with_its_default() -> None:
    parameters = inspect.signature(RedisChannelLayer).parameters
    for limit in dataclasses.fields(Limits):
        assert parameters[limit.name].default == limit.default
        assert parameters[limit.name].kind is inspect.Parameter.KEYWORD_ONLY
    layer = RedisChannelLayer(max_batch=7, reconnect_backoff=[0.1, 0.2], restart_grace=0)
    assert layer.limits == Limits(max_batch=7, reconnect_backoff=(0.1, 0.2), restart_grace=0)


def test_manage_py_check_names_an_unknown_key_and_lists_the_limits(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"], "max_batchh": 10},
        }
    }
    (message,) = check_channel_layers()
    assert message.id == "djwire.E007"
    assert "max_batchh" in message.msg
    assert "max_batch" in message.hint and "restart_grace" in message.hint


def test_the_docs_limits_table_lists_every_limit_with_its_default() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "layers.md").read_text()
    section = docs.split("### Limits", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.MULTILINE)
    assert rows == [(limit.name, repr(limit.default)) for limit in dataclasses.fields(Limits)]


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
