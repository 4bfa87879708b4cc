"""database_sync_to_async closes stale connections; aclose_old_connections is cheap."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection

from djwire import db
from djwire.db import aclose_old_connections, database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


async def test_runs_in_a_thread_and_returns_the_result() -> None:
    @database_sync_to_async
    def count_users() -> tuple[int, str]:
        return User.objects.count(), threading.current_thread().name

    count, thread = await count_users()
    assert count == 0
    assert thread != threading.current_thread().name


async def test_decorates_methods() -> None:
    class Repo:
        factor = 3

        @database_sync_to_async
        def times(self, value: int) -> int:
            return value * self.factor

    assert await Repo().times(2) == 6


async def test_closes_obsolete_connections_around_the_call(settings) -> None:
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    seen: dict[str, object] = {}

    @database_sync_to_async
    def use_db() -> None:
        User.objects.exists()
        seen["connection"] = connection.connection

    @database_sync_to_async
    def after() -> None:
        seen["after"] = connection.connection

    await use_db()
    assert seen["connection"] is not None
    await after()
    # CONN_MAX_AGE=0: the connection of the first call was closed at its end, as a
    # request's would be (in-memory SQLite keeps its one connection alive).
    if not connection.is_in_memory_db():
        assert seen["after"] is None


async def test_aclose_old_connections_skips_the_thread_hop_until_a_connection_opens(
    monkeypatch,
) -> None:
    hops: list[str] = []

    def fake_close() -> None:
        hops.append(threading.current_thread().name)

    monkeypatch.setattr(db, "close_old_connections", fake_close)
    monkeypatch.setattr(db, "_connections_opened", False)
    await aclose_old_connections()
    assert hops == []
    monkeypatch.setattr(db, "_connections_opened", True)
    await aclose_old_connections()
    assert len(hops) == 1 and hops[0] != threading.current_thread().name


def test_opening_a_connection_sets_the_flag(monkeypatch) -> None:
    from django.db.backends.signals import connection_created

    monkeypatch.setattr(db, "_connections_opened", False)
    connection_created.send(sender=type(connection), connection=connection)
    assert db._connections_opened is True
