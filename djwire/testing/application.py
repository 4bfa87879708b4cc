"""``ApplicationCommunicator``: drive any ASGI application from a test.

asgiref's communicator, with one change (as in Django Channels): while it talks
to the application, djwire does not close "old" database connections around
consumer handlers. Django's test cases keep each test inside a transaction on one
connection; closing it mid-test would end that transaction.
"""

# The timeout= arguments are the public API of Channels' and asgiref's communicators.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import threading
from asyncio import FIRST_COMPLETED
from collections.abc import Iterator
from typing import Any

from asgiref.testing import ApplicationCommunicator as BaseApplicationCommunicator

import djwire.db

__all__ = ["ApplicationCommunicator", "database_connections_kept"]

_lock = threading.Lock()
_depth = 0
_original: Any = None
#: The name djwire.db calls (at call time) around every database_sync_to_async.
_PATCHED = "close_old_connections"


def _keep_connections(**kwargs: Any) -> None:
    """Stands in for ``close_old_connections`` while a communicator is waiting."""


@contextlib.contextmanager
def database_connections_kept() -> Iterator[None]:
    """Make ``djwire.db`` skip ``close_old_connections`` inside this block.

    Counted, so overlapping communicators (several sockets in one test) restore
    the original only when the last one is done.
    """
    global _depth, _original
    with _lock:
        if _depth == 0:
            _original = getattr(djwire.db, _PATCHED)
            setattr(djwire.db, _PATCHED, _keep_connections)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                setattr(djwire.db, _PATCHED, _original)


class ApplicationCommunicator(BaseApplicationCommunicator):
    """Send ASGI events to an application and receive what it sends back."""

    # So asgiref's __del__ works even when a subclass rejected its arguments
    # before calling __init__.
    _future: Any = None

    def __init__(self, application: Any, scope: Any) -> None:
        super().__init__(application, scope)  # type: ignore[no-untyped-call]

    async def send_input(self, message: dict[str, Any]) -> None:
        with database_connections_kept():
            await super().send_input(message)  # type: ignore[no-untyped-call]

    async def receive_output(self, timeout: float = 1) -> Any:
        """The next message the application sends.

        Raises the application's exception as soon as it crashes (asgiref's
        communicator only notices at the timeout), and TimeoutError at once if the
        application has ended without sending anything more.
        """
        with database_connections_kept():
            if not self.output_queue.empty():
                return self.output_queue.get_nowait()
            app = self.future
            getter = asyncio.ensure_future(self.output_queue.get())
            try:
                await asyncio.wait({getter, app}, timeout=timeout, return_when=FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
            if getter.done() and not getter.cancelled():
                return getter.result()
            if app.done():
                if not app.cancelled():
                    app.result()  # raises what the application raised
                raise TimeoutError("The application ended without sending a message")
            app.cancel()
            await asyncio.gather(app, return_exceptions=True)
            raise TimeoutError(f"No message from the application within {timeout} s")

    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool:
        with database_connections_kept():
            return bool(await super().receive_nothing(timeout, interval))  # type: ignore[no-untyped-call]

    async def wait(self, timeout: float = 1) -> None:
        with database_connections_kept():
            await super().wait(timeout)  # type: ignore[no-untyped-call]
