"""Registering the layer's own sockets with event loops, from any thread.

The layer's sockets outlive loops and may be registered with a loop that runs in
another thread, or has stopped, or is closed. A registration must be removed
before its socket is closed, or the loop's selector keeps a stale entry that
breaks the next socket to get the same file descriptor number; and only the
loop's own thread may touch a running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _on_loop(loop: asyncio.AbstractEventLoop | None, work: Callable[[], None]) -> None:
    """Run ``work`` where it may touch ``loop``: now, or on the loop's own thread."""
    if loop is None or loop.is_closed() or loop is running_loop() or not loop.is_running():
        work()
        return
    try:
        loop.call_soon_threadsafe(work)
    except RuntimeError:  # closed meanwhile
        work()


def _unregister(
    loop: asyncio.AbstractEventLoop | None, sock: socket.socket, reader: bool, writer: bool
) -> None:
    if loop is None or loop.is_closed() or sock.fileno() < 0:
        return
    with contextlib.suppress(ValueError, OSError, RuntimeError, KeyError):
        if reader:
            loop.remove_reader(sock)
        if writer:
            loop.remove_writer(sock)


def unregister(
    loop: asyncio.AbstractEventLoop | None,
    sock: socket.socket,
    *,
    reader: bool = False,
    writer: bool = False,
) -> None:
    """Remove ``sock``'s registrations with ``loop`` (now or on the loop's thread)."""
    _on_loop(loop, lambda: _unregister(loop, sock, reader, writer))


def close(
    loop: asyncio.AbstractEventLoop | None,
    sock: socket.socket,
    *,
    reader: bool = False,
    writer: bool = False,
) -> None:
    """Unregister ``sock`` from ``loop``, then close it, in that order."""

    def work() -> None:
        _unregister(loop, sock, reader, writer)
        sock.close()

    _on_loop(loop, work)
