"""Every public name of issue 2 exists where a Channels 4.3 project expects it."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

NAMES = {
    "djwire": ["Channel", "Group", "DEFAULT_CHANNEL_LAYER", "__version__"],
    "djwire.consumer": ["AsyncConsumer", "SyncConsumer", "get_handler_name"],
    "djwire.generic.websocket": [
        "WebsocketConsumer",
        "AsyncWebsocketConsumer",
        "JsonWebsocketConsumer",
        "AsyncJsonWebsocketConsumer",
    ],
    "djwire.generic.http": ["AsyncHttpConsumer"],
    "djwire.generic.websockets": ["WebsocketConsumer", "JsonWebsocketConsumer", "BaseConsumer"],
    "djwire.routing": [
        "ProtocolTypeRouter",
        "URLRouter",
        "ChannelNameRouter",
        "get_default_application",
        "route",
        "route_class",
        "include",
    ],
    "djwire.layers": [
        "get_channel_layer",
        "channel_layers",
        "BaseChannelLayer",
        "InMemoryChannelLayer",
        "ChannelFull",
    ],
    "djwire.auth": [
        "AuthMiddleware",
        "AuthMiddlewareStack",
        "login",
        "logout",
        "get_user",
        "channel_session_user_from_http",
        "channel_session_user",
        "http_session_user",
    ],
    "djwire.sessions": [
        "CookieMiddleware",
        "SessionMiddleware",
        "SessionMiddlewareStack",
        "channel_session",
    ],
    "djwire.security.websocket": [
        "OriginValidator",
        "AllowedHostsOriginValidator",
        "WebsocketDenier",
    ],
    "djwire.middleware": ["BaseMiddleware"],
    "djwire.db": ["database_sync_to_async", "aclose_old_connections"],
    "djwire.exceptions": [
        "StopConsumer",
        "AcceptConnection",
        "DenyConnection",
        "ChannelFull",
        "MessageTooLarge",
        "InvalidChannelLayerError",
        "RequestAborted",
        "RequestTimeout",
    ],
    "djwire.testing": [
        "ApplicationCommunicator",
        "WebsocketCommunicator",
        "HttpCommunicator",
        "ChannelsLiveServerTestCase",
        "DjwireLiveServerTestCase",
    ],
    "djwire.worker": ["Worker"],
}


@pytest.mark.parametrize(
    "module, name", [(module, name) for module, names in NAMES.items() for name in names]
)
def test_public_name_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


#: Names a Channels project imports but needs no text about.
UNDOCUMENTED = {"__version__"}


def test_every_public_name_is_documented() -> None:
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text() + "".join(
        page.read_text() for page in sorted((root / "docs").glob("*.md"))
    )
    missing = [
        f"{module}.{name}"
        for module, names in NAMES.items()
        for name in names
        if name not in UNDOCUMENTED and not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", text)
    ]
    assert missing == [], f"not in README.md or docs/: {missing}"


def defaults(func) -> dict:
    return {
        name: param.default
        for name, param in inspect.signature(func).parameters.items()
        if param.default is not inspect.Parameter.empty
    }


def test_in_memory_layer_defaults_match_channels() -> None:
    from djwire.layers import InMemoryChannelLayer

    assert defaults(InMemoryChannelLayer) == {
        "expiry": 60,
        "group_expiry": 86400,
        "capacity": 100,
        "channel_capacity": None,
    }


def test_websocket_consumer_signatures_match_channels() -> None:
    from djwire.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer

    for cls in (WebsocketConsumer, AsyncWebsocketConsumer):
        assert defaults(cls.accept) == {"subprotocol": None, "headers": None}
        assert defaults(cls.receive) == {"text_data": None, "bytes_data": None}
        assert defaults(cls.send) == {"text_data": None, "bytes_data": None, "close": False}
        assert defaults(cls.close) == {"code": None, "reason": None}


def test_live_server_alias_is_the_same_class() -> None:
    from djwire.testing import ChannelsLiveServerTestCase, DjwireLiveServerTestCase

    assert ChannelsLiveServerTestCase is DjwireLiveServerTestCase


def test_exceptions_are_one_tree_and_keep_channels_builtin_bases() -> None:
    from djwire import exceptions

    for name in NAMES["djwire.exceptions"]:
        assert issubclass(getattr(exceptions, name), exceptions.DjwireError)
    assert issubclass(exceptions.InvalidChannelLayerError, ValueError)
    assert issubclass(exceptions.InvalidNameError, TypeError)
    assert issubclass(exceptions.RouteNotFound, ValueError)
    assert issubclass(exceptions.RequestTimeout, exceptions.RequestAborted)


def test_importing_djwire_does_not_touch_settings() -> None:
    import subprocess
    import sys

    code = (
        "import djwire, djwire.layers, djwire.routing, djwire.consumer, "
        "djwire.generic.websocket; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""}
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_default_channel_layer_alias_is_importable_from_the_package_as_in_channels() -> None:
    import djwire
    from djwire.layers import DEFAULT_CHANNEL_LAYER

    # Packages write ``from channels import DEFAULT_CHANNEL_LAYER``.
    assert djwire.DEFAULT_CHANNEL_LAYER == DEFAULT_CHANNEL_LAYER == "default"
    assert "DEFAULT_CHANNEL_LAYER" in djwire.__all__


@pytest.mark.parametrize("statement", ["import djwire", "import djwire.testing"])
def test_djwire_routing_is_an_attribute_after_importing_the_package(statement: str) -> None:
    # Packages' conftests write ``import channels.testing`` and then use
    # ``channels.routing.ProtocolTypeRouter``; Channels' testing package imports it.
    import subprocess
    import sys

    code = f"{statement}; import djwire; print(djwire.routing.ProtocolTypeRouter.__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""}
    )
    assert result.stdout.strip() == "ProtocolTypeRouter", result.stderr
