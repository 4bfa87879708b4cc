from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from djwire.layers import BaseChannelLayer

from .backends import BACKENDS, LayerFactory


@pytest.fixture(params=sorted(BACKENDS))
async def make_layer(request: pytest.FixtureRequest) -> AsyncIterator[LayerFactory]:
    """Build layers of one backend; every layer built is flushed and closed after."""
    factory = BACKENDS[request.param](request)
    made: list[BaseChannelLayer] = []

    def make(**config: Any) -> BaseChannelLayer:
        layer = factory(**config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.flush()
        await layer.close()


@pytest.fixture
async def layer(make_layer: LayerFactory) -> BaseChannelLayer:
    return make_layer(expiry=3, capacity=10, group_expiry=60)
