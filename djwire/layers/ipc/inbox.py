"""The inbox: this process's listening Unix socket and the connections to it.

Other processes connect once and write frames (:mod:`.frames`). The sockets are
plain non-blocking sockets owned by the layer, registered with one event loop at a
time (``loop.add_reader``), so they outlive the loops they are read on: when the
loop reading them ends (``async_to_sync`` makes a loop per call), frames wait in
the kernel until the next ``receive()`` attaches the inbox to its own loop. Only
the listening socket's closing (the process's end) tells others this process is
gone, so it stays open until the layer is torn down.

A connection that closes with half a frame buffered (its writer was killed mid-
write), or sends something that is not a frame, is dropped and counted; frames
that arrived whole before it are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

from . import selectors
from .frames import unpacker

logger = logging.getLogger("djwire.layers.ipc")

#: Bytes read per readiness event: many frames per system call under load.
RECV_SIZE = 256 * 1024
#: Pending connections the kernel keeps for us (capped by net.core.somaxconn).
BACKLOG = 1024
#: A socket file named so is still being set up (see Inbox.__init__).
STARTING_PREFIX = "."

OnFrame = Callable[[Any], None]
OnBad = Callable[[str], None]


class _Connection:
    __slots__ = ("fed", "sock", "unpacker")

    def __init__(self, sock: socket.socket, max_message_size: int) -> None:
        self.sock = sock
        self.unpacker = unpacker(max_message_size)
        self.fed = 0  # bytes fed to the unpacker; more than unpacker.tell(): a partial frame


class Inbox:
    def __init__(
        self, path: Path, max_message_size: int, on_frame: OnFrame, on_bad: OnBad
    ) -> None:
        self.path = path
        self.max_message_size = max_message_size
        self.on_frame = on_frame
        self.on_bad = on_bad
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: dict[int, _Connection] = {}
        # Bound under a temporary name and renamed once listening: a socket file under
        # its real name always accepts, so a process that finds it refusing knows its
        # owner has ended (a process starting at the same moment is not mistaken for
        # one that ended, and its socket is not removed).
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        starting = path.with_name(STARTING_PREFIX + path.name)
        try:
            listener.bind(str(starting))
            os.chmod(starting, 0o600)  # the directory keeps others out; this too
            listener.listen(BACKLOG)
            listener.setblocking(False)
            os.rename(starting, path)
        except BaseException:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(starting)
            raise
        self.listener = listener

    def _sockets(self) -> list[socket.socket]:
        return [self.listener, *(connection.sock for connection in self.connections.values())]

    # -- which loop reads ---------------------------------------------------------------

    def attached_to_live_loop(self) -> bool:
        loop = self.loop
        return loop is not None and not loop.is_closed() and loop.is_running()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read on ``loop`` from now on (the previous loop has ended or stopped: one
        that is stopped may run again, so it lets go of the sockets too)."""
        old = self.loop
        if old is loop:
            return
        for sock in self._sockets():
            selectors.unregister(old, sock, reader=True)
        self.loop = loop
        loop.add_reader(self.listener, self._accept)
        for connection in self.connections.values():
            loop.add_reader(connection.sock, self._read, connection)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop reading on ``loop``; frames wait in the kernel for the next attach."""
        if self.loop is loop:
            self.loop = None
            for sock in self._sockets():
                selectors.unregister(loop, sock, reader=True)

    # -- reading ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: try again on the next readiness
                logger.warning("The IPC layer could not accept a connection: %r", exc)
                return
            sock.setblocking(False)
            connection = _Connection(sock, self.max_message_size)
            self.connections[sock.fileno()] = connection
            if self.loop is not None:
                self.loop.add_reader(sock, self._read, connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if connection.fed > connection.unpacker.tell():
                self.on_bad("truncated")  # its writer died in the middle of a frame
            self._drop(connection)
            return
        connection.fed += len(data)
        frames = connection.unpacker
        try:
            frames.feed(data)
        except msgpack.BufferFull:
            self.on_bad("oversized")
            self._drop(connection)
            return
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (ValueError, msgpack.UnpackException):
                self.on_bad("malformed")
                self._drop(connection)
                return
            try:
                self.on_frame(frame)
            except Exception:  # a bug must not stop this process receiving
                logger.exception("The IPC layer failed to deliver a frame")

    def _drop(self, connection: _Connection) -> None:
        sock = connection.sock
        self.connections.pop(sock.fileno(), None)
        selectors.close(self.loop, sock, reader=True)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening (others now see this process as gone) and remove the socket."""
        loop, self.loop = self.loop, None
        for sock in self._sockets():
            selectors.close(loop, sock, reader=True)
        self.connections.clear()
        if self.pid == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def forget_sockets(self) -> None:
        """In a forked child: close the child's copies, leaving the parent's inbox alone."""
        self.loop = None
        for sock in self._sockets():
            with contextlib.suppress(OSError):
                sock.close()
        self.connections.clear()
