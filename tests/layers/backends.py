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


#: name -> function(pytest request) -> factory. The request lets a backend pull in
#: session fixtures (a Redis server) only when its parameter is used.
BACKENDS: dict[str, Callable[[Any], LayerFactory]] = {"memory": memory_factory}
