"""Database helpers for async code: run ORM work in a thread, closing stale connections."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.db.backends.signals import connection_created

F = TypeVar("F", bound=Callable[..., Any])

# Set once any database connection has been opened in this process. Until then
# there is nothing to close, and aclose_old_connections() can skip its thread hop:
# the hot path of consumers that never touch the database stays on the event loop.
_connections_opened = False


def _note_connection(**kwargs: Any) -> None:
    global _connections_opened
    _connections_opened = True


connection_created.connect(_note_connection, dispatch_uid="djwire.db.note_connection")


@overload
def database_sync_to_async(func: F, *, thread_sensitive: bool = True) -> Any: ...
@overload
def database_sync_to_async(
    func: None = None, *, thread_sensitive: bool = True
) -> Callable[[F], Any]: ...
def database_sync_to_async(func: Any = None, *, thread_sensitive: bool = True) -> Any:
    """Like ``sync_to_async``, but closes unusable and expired DB connections around
    the call, as Django does around a request. Usable as ``@database_sync_to_async``
    on functions and methods."""

    def decorate(target: Callable[..., Any]) -> Any:
        @functools.wraps(target)
        def closing(*args: Any, **kwargs: Any) -> Any:
            close_old_connections()
            try:
                return target(*args, **kwargs)
            finally:
                close_old_connections()

        return sync_to_async(closing, thread_sensitive=thread_sensitive)

    return decorate(func) if func is not None else decorate


#: Django Channels spells the class-like name this way; both work.
DatabaseSyncToAsync = database_sync_to_async


def connections_opened() -> bool:
    """Whether any database connection was ever opened in this process (until then
    :func:`aclose_old_connections` has nothing to do)."""
    return _connections_opened


async def aclose_old_connections() -> None:
    """Close expired connections, as Django does between requests.

    Skips the thread hop while no connection has ever been opened.
    """
    if _connections_opened:
        await sync_to_async(close_old_connections)()
