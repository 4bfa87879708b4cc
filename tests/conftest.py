"""Keep database connections from leaking between tests through asgiref's thread.

Async tests run ``sync_to_async`` work (sessions, ORM calls) in asgiref's one
process-wide thread-sensitive executor thread. A connection opened there outlives the
test; a later test without database access then fails in ``close_old_connections``
("Database access not allowed"). This fixture drops that thread's connections after
each test (an in-memory SQLite test database is not closed, only forgotten: it lives
on in the main thread's connection).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections


def _forget_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):
            connection.close()
        del connections[connection.alias]


@pytest.fixture(autouse=True)
def release_db_threads() -> Iterator[None]:
    yield
    future = SyncToAsync.single_thread_executor.submit(_forget_connections)
    # If the thread is stuck in some test's work, there is nothing more to do here.
    with contextlib.suppress(concurrent.futures.TimeoutError):
        future.result(timeout=10)
