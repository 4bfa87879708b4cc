"""TLS to a real redis-server (started here with a self-signed certificate), configured
the way channels_redis users already configure it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import SSLConnection

from djwire.exceptions import LayerUnavailable
from djwire.layers.redis import RedisChannelLayer
from tests.support.redis_servers import TlsServer, self_signed_certificate, tls_server

# Short enough that a connection that cannot work fails the test quickly.
FAST_FAILURE = {"connect_timeout": 1.0, "retry_timeout": 1.0}


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TlsServer]:
    with tls_server() as server:
        yield server


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("client-cert"), "client")


@pytest.fixture(scope="module")
def mutual_tls_redis(client_certificate: tuple[Path, Path]) -> Iterator[TlsServer]:
    with tls_server(client_ca=client_certificate[0]) as server:
        yield server


@pytest.fixture
async def make_tls_layer() -> AsyncIterator[Callable[[Any], RedisChannelLayer]]:
    made: list[RedisChannelLayer] = []

    def make(host: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[host], prefix="tls", **FAST_FAILURE)  # type: ignore[arg-type]
        made.append(layer)
        return layer

    yield make
    for layer in made:
        with contextlib.suppress(LayerUnavailable):  # a layer meant not to connect
            await layer.flush()
        await layer.close()


async def assert_round_trip(sender: RedisChannelLayer, receiver: RedisChannelLayer) -> None:
    channel = await receiver.new_channel()
    await sender.send(channel, {"type": "over.tls", "n": 1})
    assert await asyncio.wait_for(receiver.receive(channel), 5) == {"type": "over.tls", "n": 1}
    await sender.group_add("tls-group", channel)
    assert await sender.group_channels("tls-group") == [channel]


HEROKU_LIKE_FORMS: list[Callable[[TlsServer], Any]] = [
    lambda server: {"address": server.tls_url, "ssl_cert_reqs": None},  # Heroku's docs
    lambda server: {"address": server.tls_url, "ssl_cert_reqs": "none"},
    lambda server: server.tls_url + "?ssl_cert_reqs=none",
    lambda server: {"address": server.tls_url + "?ssl_cert_reqs=none"},
    lambda server: {
        "host": "127.0.0.1",
        "port": server.tls_port,
        "ssl": True,
        "ssl_cert_reqs": None,
    },
    lambda server: {
        "host": "127.0.0.1",
        "port": server.tls_port,
        "connection_class": SSLConnection,
        "ssl_cert_reqs": None,
    },
]


@pytest.mark.parametrize("form", range(len(HEROKU_LIKE_FORMS)))
async def test_self_signed_redis_with_certificate_checks_off(
    tls_redis: TlsServer, make_tls_layer: Callable[[Any], RedisChannelLayer], form: int
) -> None:
    host = HEROKU_LIKE_FORMS[form](tls_redis)
    await assert_round_trip(make_tls_layer(host), make_tls_layer(host))


async def test_certificate_is_checked_by_default(
    tls_redis: TlsServer, make_tls_layer: Callable[[Any], RedisChannelLayer]
) -> None:
    layer = make_tls_layer(tls_redis.tls_url)
    with pytest.raises(LayerUnavailable, match=r"(?i)certificate"):
        await layer.group_channels("g")


async def test_certificate_trusted_through_ssl_ca_certs_with_host_name_checked(
    tls_redis: TlsServer, make_tls_layer: Callable[[Any], RedisChannelLayer]
) -> None:
    host = {"address": tls_redis.tls_url, "ssl_ca_certs": str(tls_redis.cert)}
    await assert_round_trip(make_tls_layer(host), make_tls_layer(host))


async def test_client_certificate_from_ssl_certfile_and_ssl_keyfile(
    mutual_tls_redis: TlsServer,
    client_certificate: tuple[Path, Path],
    make_tls_layer: Callable[[Any], RedisChannelLayer],
) -> None:
    cert, key = client_certificate
    host = {
        "address": mutual_tls_redis.tls_url,
        "ssl_ca_certs": str(mutual_tls_redis.cert),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }
    await assert_round_trip(make_tls_layer(host), make_tls_layer(host))
    anonymous = make_tls_layer({"address": mutual_tls_redis.tls_url, "ssl_cert_reqs": None})
    with pytest.raises(LayerUnavailable):  # the server wants a client certificate
        await anonymous.group_channels("g")
