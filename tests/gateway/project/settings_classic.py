"""The same project with the classic (2017) API: routing in CHANNEL_LAYERS, no
ASGI_APPLICATION."""

from .settings import *  # noqa: F403

ASGI_APPLICATION = None
CHANNEL_LAYERS["default"]["ROUTING"] = "tests.gateway.project.classic.channel_routing"  # noqa: F405
