"""Links: this process's connections to other processes' inbox sockets.

One Unix stream connection per other process, shared by every event loop and
thread of this process (a lock keeps frames whole), so messages from one process
to another stay in order. ``write()`` never blocks: it appends the frame to the
link's buffer and asks the running loop to send the buffer at the end of this
loop iteration, so frames written together (a burst of sends, a group send to
many processes) leave in one system call. What the kernel does not take at once
waits in the buffer, up to ``peer_buffer_size`` bytes, and goes out when the
socket is writable again.

A process is *gone* when its socket refuses connections (its listening socket
closed when the process died or its layer was torn down) or no longer exists.
Frames waiting for a process that is gone are lost and counted by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import selectors

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
#: connect() errors that mean nobody listens there any more.
_GONE_ERRNOS = {errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK}


class Sent(enum.Enum):
    QUEUED = "queued"
    FULL = "full"  # the process is not reading: its buffer is at peer_buffer_size
    GONE = "gone"  # the process no longer exists


class Link:
    """The connection to one other process."""

    __slots__ = (
        "_drain_waiters",
        "_flusher",
        "_lock",
        "_on_lost",
        "_writable_on",
        "buffered",
        "frames",
        "limit",
        "path",
        "sock",
        "token",
    )

    def __init__(
        self, token: str, path: Path, limit: int, on_lost: Callable[[str, int], None]
    ) -> None:
        self.token = token
        self.path = path
        self.limit = limit
        self.sock: socket.socket | None = None
        self.buffered = bytearray()
        self.frames = 0  # frames written since the buffer was last empty
        self._on_lost = on_lost  # (token, frames lost) when a connection breaks
        self._lock = threading.RLock()  # a lost link's callback may close it
        # The loop that will send the buffer (a callback is scheduled on it), and
        # the loop whose selector watches the socket for writability, if any.
        self._flusher: asyncio.AbstractEventLoop | None = None
        self._writable_on: asyncio.AbstractEventLoop | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []

    def write(self, frame: bytes) -> Sent:
        with self._lock:
            if self.sock is None:
                connected = self._connect()
                if connected is not Sent.QUEUED:
                    return connected
            if self.buffered and len(self.buffered) + len(frame) > self.limit:
                return Sent.FULL
            self.buffered += frame
            self.frames += 1
            self._schedule_flush()
            return Sent.QUEUED

    def _connect(self) -> Sent:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            if exc.errno in _GONE_ERRNOS:
                return Sent.GONE
            # EAGAIN: its accept backlog is full; it is alive but busy right now.
            return Sent.FULL
        self.sock = sock
        return Sent.QUEUED

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        flusher = self._flusher
        if flusher is loop:
            return
        if flusher is not None and flusher.is_running() and not flusher.is_closed():
            return  # another live loop sends it
        self._flusher = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what the kernel takes now; watch for writability if anything is left."""
        with self._lock:
            self._flusher = None
            sock = self.sock
            if sock is None:
                return
            buffered = self.buffered
            while buffered:
                try:
                    sent = sock.send(buffered, _SEND_FLAGS)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._broken()
                    return
                del buffered[:sent]
            if not buffered:
                self.frames = 0
                self._drained()
            self._watch_writable(bool(buffered))

    def _watch_writable(self, needed: bool) -> None:
        running = selectors.running_loop()
        watching = self._writable_on
        if needed:
            if watching is running or running is None or self.sock is None:
                return
            if watching is not None:
                selectors.unregister(watching, self.sock, writer=True)
            running.add_writer(self.sock, self.flush)
            self._writable_on = running
        elif watching is not None:
            self._writable_on = None
            if self.sock is not None:
                selectors.unregister(watching, self.sock, writer=True)

    def _broken(self) -> None:
        """The other side closed: drop the connection and what was waiting for it.

        The buffer does not mark where frames end, so the loss reported is the frames
        written since it was last empty: an upper bound (the first may have been
        partly sent, and the receiver drops a partial frame)."""
        lost = self.frames if self.buffered else 0
        self._close_socket()
        self.buffered = bytearray()
        self.frames = 0
        self._drained()
        self._on_lost(self.token, lost)

    def _close_socket(self) -> None:
        watching, self._writable_on = self._writable_on, None
        if self.sock is not None:
            selectors.close(watching, self.sock, writer=True)
            self.sock = None

    def close(self, deadline: float = 0.0) -> None:
        """Send what waits, waiting for the other process to read it until ``deadline``
        (``time.monotonic()``; the default: only what the kernel takes at once), then
        close (teardown). What is left is lost; the receiver drops the partial frame
        and counts it in ``frames_truncated``."""
        with self._lock:
            sock, buffered = self.sock, self.buffered
            while sock is not None and buffered:
                try:
                    del buffered[: sock.send(buffered, _SEND_FLAGS)]
                except (BlockingIOError, InterruptedError):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    select.select([], [sock], [], min(left, 0.05))
                except OSError:
                    break
            self.buffered = bytearray()
            self._drained()
            self._close_socket()

    async def wait_drained(self, seconds: float) -> None:
        """Wait (at most ``seconds``) until the other process took everything."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self.buffered:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._drain_waiters.append(waiter)
            self._schedule_flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, seconds)

    def _drained(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            loop = waiter.get_loop()
            if loop is selectors.running_loop():
                _resolve(waiter)
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, waiter)

    def forget_socket(self) -> None:
        """In a forked child: let go of the parent's connection without touching it."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()  # the child's copy; the parent's stays open
            self.sock = None
        self.buffered = bytearray()
        self.frames = 0
        self._flusher = self._writable_on = None
        self._lock = threading.RLock()  # a lost link's callback may close it


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def probe(path: Path) -> bool:
    """Whether a process listens at ``path`` (a busy one counts as alive)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(str(path))
    except OSError as exc:
        return exc.errno not in _GONE_ERRNOS
    finally:
        sock.close()
    return True
