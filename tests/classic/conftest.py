"""Fixtures shared by the classic API's tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def cache_channel_sessions(settings: Any) -> None:
    """Keep channel sessions in the cache, as CHANNEL_SESSION_ENGINE allows.

    Consumers of different sockets run at once in different threads; the tests'
    in-memory SQLite database (shared cache) answers concurrent writes with "database
    table is locked" instead of waiting, which a server database never does.
    """
    settings.CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.cache"
