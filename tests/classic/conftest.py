from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    """A new in-memory layer per test (setting_changed rebuilds the layers)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}
