from __future__ import annotations

from typing import Any

import pytest

from tests.testing.dbthreads import release_db_threads  # noqa: F401 (autouse)


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    """A new in-memory layer per test (setting_changed rebuilds the layers)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}
