"""Origin checks on WebSocket handshakes; denied handshakes close before accept."""

from __future__ import annotations

from typing import Any

import pytest

from djwire.generic.websocket import AsyncWebsocketConsumer
from djwire.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)
from djwire.testing import HttpCommunicator, WebsocketCommunicator


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}


class Hello(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data="hello")


async def handshake(app: Any, *origins: bytes) -> tuple[bool, Any]:
    headers = [(b"origin", origin) for origin in origins]
    communicator = WebsocketCommunicator(app, "/", headers=headers)
    result = await communicator.connect()
    if result[0]:
        assert await communicator.receive_from() == "hello"
        await communicator.disconnect()
    else:
        # A rejected socket's application ends once the server reports the close.
        await communicator.disconnect()
    return result


@pytest.mark.parametrize(
    ("allowed", "origin", "passes"),
    [
        (["http://example.com"], b"http://example.com", True),
        (["http://example.com"], b"http://example.com:80", True),
        (["http://example.com"], b"https://example.com", False),
        (["http://example.com"], b"http://example.com:8000", False),
        (["https://example.com:8443"], b"https://example.com:8443", True),
        (["wss://example.com"], b"wss://example.com:443", True),
        (["example.com"], b"https://example.com:9000", True),
        (["example.com"], b"http://www.example.com", False),
        ([".example.com"], b"http://www.example.com", True),
        ([".example.com"], b"http://example.com", True),
        (["http://.example.com"], b"http://a.b.example.com", True),
        ([".example.com"], b"http://badexample.com", False),
        (["*"], b"http://anything.test", True),
        (["example.com"], b"null", False),
        (["example.com"], b"http://example.com:99999", False),
        (["example.com"], b"not a url", False),
    ],
)
async def test_origin_validator_matches_patterns(
    allowed: list[str], origin: bytes, passes: bool
) -> None:
    connected, _ = await handshake(OriginValidator(Hello.as_asgi(), allowed), origin)
    assert connected is passes


async def test_a_missing_origin_only_passes_with_a_wildcard() -> None:
    assert (await handshake(OriginValidator(Hello.as_asgi(), ["example.com"])))[0] is False
    assert (await handshake(OriginValidator(Hello.as_asgi(), ["*"])))[0] is True


async def test_two_origin_headers_are_rejected() -> None:
    app = OriginValidator(Hello.as_asgi(), ["example.com"])
    connected, _ = await handshake(app, b"http://example.com", b"http://example.com")
    assert connected is False


async def test_a_rejected_handshake_is_closed_before_accept() -> None:
    communicator = WebsocketCommunicator(
        OriginValidator(Hello.as_asgi(), ["example.com"]),
        "/",
        headers=[(b"origin", b"http://evil.test")],
    )
    await communicator.send_input({"type": "websocket.connect"})
    message = await communicator.receive_output()
    # websocket.close before websocket.accept: the server answers HTTP 403.
    assert message == {"type": "websocket.close"}
    await communicator.disconnect()


async def test_origin_validator_refuses_http_scopes() -> None:
    communicator = HttpCommunicator(OriginValidator(Hello.as_asgi(), ["*"]), "GET", "/")
    with pytest.raises(ValueError, match="non-WebSocket"):
        await communicator.get_response()


async def test_allowed_hosts_validator_reads_the_settings_in_force(settings: Any) -> None:
    app = AllowedHostsOriginValidator(Hello.as_asgi())
    assert isinstance(app, OriginValidator)
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    assert (await handshake(app, b"https://chat.example.com"))[0] is True
    assert (await handshake(app, b"https://example.com"))[0] is False
    settings.ALLOWED_HOSTS = [".example.com"]
    assert (await handshake(app, b"https://example.com"))[0] is True


async def test_allowed_hosts_validator_allows_localhost_in_debug_with_no_hosts(
    settings: Any,
) -> None:
    settings.ALLOWED_HOSTS = []
    settings.DEBUG = True
    app = AllowedHostsOriginValidator(Hello.as_asgi())
    assert (await handshake(app, b"http://localhost:8000"))[0] is True
    assert (await handshake(app, b"http://127.0.0.1:8000"))[0] is True
    assert (await handshake(app, b"http://example.com"))[0] is False
    settings.DEBUG = False
    assert (await handshake(app, b"http://localhost:8000"))[0] is False


async def test_websocket_denier_rejects_every_socket() -> None:
    communicator = WebsocketCommunicator(WebsocketDenier.as_asgi(), "/")
    assert await communicator.connect() == (False, 1000)
    await communicator.disconnect()
