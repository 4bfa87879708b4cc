"""Auto-pipelining command queue: one per Redis node per event loop.

Every command issued during one event-loop turn goes out in one write on one
connection, and replies come back in order. A thousand concurrent callers share
one connection, so there is no pool to exhaust (redis-py 8 caps an asyncio pool
at 100 connections and then raises MaxConnectionsError).

While the node is unreachable, commands wait up to ``retry_timeout`` for a
reconnect (with backoff), then fail with :class:`LayerUnavailable`. Pushes of
messages that are given up, or were in flight when the connection broke, are
counted by the :class:`OutageMonitor` here, once.

Pushes to a process inbox are numbered per (pipe, inbox) when written, so the
receiving process can tell a gap from a refusal (see :mod:`.accounting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from redis.exceptions import ResponseError

from djwire.exceptions import LayerUnavailable

from .accounting import OutageMonitor
from .config import Limits
from .connection import RedisConnection, Waiter
from .nodes import Node
from .queue_scripts import QUEUE_SCRIPTS
from .scripts import ALL as ALL_SCRIPTS
from .scripts import Command, Script

#: Every script, loaded on each (re)connect so that EVALSHA finds them.
LOADED_SCRIPTS: tuple[Script, ...] = (*ALL_SCRIPTS, *QUEUE_SCRIPTS)

#: Builds an inbox push once its (writer, seq, accounted) numbers are known.
PushBuilder = Callable[[str, int, int], Command]
#: Told the server's identity after every (re)connect.
OnConnect = Callable[["CommandPipe", "ServerInfo"], None]


class ServerInfo(NamedTuple):
    run_id: str  # changes when the server restarts
    uptime: int  # INFO's uptime_in_seconds (see youngest_age)

    @property
    def youngest_age(self) -> int:
        """The fewest whole seconds the server may have been up. Redis reports uptime
        as the difference of two whole-second clocks, so it reads 1 from the moment
        the wall clock passes a second boundary, even 10 ms after the start."""
        return max(0, self.uptime - 1)


_WRITE_CHUNK = 4096  # commands per transport write


class _Entry:
    __slots__ = ("build", "command", "inbox", "message", "since", "waiter")

    def __init__(
        self,
        waiter: Waiter,
        command: Command | None,
        build: PushBuilder | None,
        inbox: bytes | None,
        message: bool,
    ) -> None:
        self.waiter = waiter
        self.command = command
        self.build = build
        self.inbox = inbox
        self.message = message
        self.since = time.monotonic()


class CommandPipe:
    def __init__(
        self,
        node: Node,
        limits: Limits,
        monitor: OutageMonitor,
        client_name: str | None = None,
        on_connect: OnConnect | None = None,
    ) -> None:
        self.node = node
        self.limits = limits
        self.monitor = monitor
        self.client_name = client_name
        self.on_connect = on_connect
        self.loop = asyncio.get_running_loop()
        self.writer = secrets.token_hex(6)
        self._seqs: dict[bytes, list[int]] = {}  # inbox -> [last seq, accounted]
        self._queue: deque[_Entry] = deque()
        self._connection: RedisConnection | None = None
        self._connector: asyncio.Task[None] | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._ride_timer: asyncio.TimerHandle | None = None  # see ride()
        self._closed = False
        self._last_error: LayerUnavailable | None = None  # why the last connect failed

    # -- issuing -----------------------------------------------------------------------

    def call(self, command: Command, *, message: bool = False) -> asyncio.Future[Any]:
        """Queue ``command``; the future gets its reply (error replies included)."""
        return self._enqueue(command, None, None, message)

    def ride(self, command: Command, delay: float) -> asyncio.Future[Any]:
        """Queue ``command`` to go out with the next write of this pipe, or after
        ``delay`` seconds if nothing else is written sooner: a command whose reply is
        not urgent then costs no write (and no wake-up of Redis) of its own."""
        return self._enqueue(command, None, None, False, ride=delay)

    def expedite(self) -> None:
        """Write the commands riding on the next write now (at the end of this turn)."""
        if self._ride_timer is not None:
            self._ride_timer.cancel()
            self._ride_timer = None
            self._schedule_flush()

    def flush_now(self) -> None:
        """Write what is queued now rather than at the end of this loop turn (used
        when the caller has synchronous work to overlap with the round trip)."""
        connection = self._connection
        if connection is not None and not connection.closed and connection.writable:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush()

    def push(self, inbox: bytes, build: PushBuilder) -> asyncio.Future[Any]:
        """Queue a numbered push to ``inbox``; ``build`` makes the command."""
        return self._enqueue(None, build, inbox, True)

    def _enqueue(
        self,
        command: Command | None,
        build: PushBuilder | None,
        inbox: bytes | None,
        message: bool,
        ride: float | None = None,
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if self._closed:
            future.set_exception(LayerUnavailable("The channel layer is closed"))
            return future
        if len(self._queue) >= self.limits.max_pending:
            if message:
                self.monitor.lost(self.node.key)
            future.set_exception(
                LayerUnavailable(
                    f"{len(self._queue)} commands already wait for Redis at {self.node} "
                    f"(max_pending={self.limits.max_pending})"
                )
            )
            return future
        self._queue.append(_Entry(Waiter(future, inbox, message), command, build, inbox, message))
        connection = self._connection
        if ride is not None:
            if self._flush_handle is None and self._ride_timer is None:
                self._ride_timer = self.loop.call_later(ride, self._ride_due)
            return future
        if connection is not None and not connection.closed:
            if self._flush_handle is None and connection.writable:
                self._flush_handle = self.loop.call_soon(self._flush)
        else:
            self._ensure_connecting()
        return future

    def _ride_due(self) -> None:
        self._ride_timer = None
        self._schedule_flush()

    def _flush(self) -> None:
        self._flush_handle = None
        if self._ride_timer is not None:  # riders go out with this write
            self._ride_timer.cancel()
            self._ride_timer = None
        connection = self._connection
        if connection is None or connection.closed:
            self._ensure_connecting()
            return
        if not connection.writable:
            return  # resume_writing calls us again
        if not connection.pending:
            connection.last_read = time.monotonic()  # the silence before now was idleness
        queue = self._queue
        while queue:
            commands: list[Command] = []
            waiters: list[Waiter] = []
            while queue and len(commands) < _WRITE_CHUNK:
                entry = queue.popleft()
                if entry.waiter.future.done():
                    continue  # the caller gave up before it was sent
                if entry.build is not None:
                    assert entry.inbox is not None
                    numbers = self._seqs.get(entry.inbox)
                    if numbers is None:
                        numbers = self._seqs[entry.inbox] = [0, 0]
                        if len(self._seqs) > 65536:  # a fresh identity beats unbounded memory
                            self.writer = secrets.token_hex(6)
                            self._seqs = {entry.inbox: numbers}
                    numbers[0] += 1
                    command = entry.build(self.writer, numbers[0], numbers[1])
                else:
                    assert entry.command is not None
                    command = entry.command
                commands.append(command)
                waiters.append(entry.waiter)
            if commands:
                connection.write(commands, waiters)
        self._arm_watchdog()

    # -- connection ----------------------------------------------------------------------

    def _ensure_connecting(self) -> None:
        if self._connector is None and not self._closed:
            self._connector = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        low, high = self.limits.reconnect_backoff
        delay = low
        try:
            while not self._closed:
                try:
                    connection = await self.node.connect(
                        self.limits.connect_timeout, self.client_name, self._lost
                    )
                    info = await self._prepare(connection)
                except LayerUnavailable as exc:
                    self._last_error = exc
                    self.monitor.down(self.node.key, exc)
                    self._give_up_old()
                    if not self._queue:
                        return  # nobody waits; the next command reconnects
                    oldest = self._queue[0].since + self.limits.retry_timeout
                    await asyncio.sleep(max(0.0, min(delay, oldest - time.monotonic())))
                    delay = min(delay * 2, high)
                    continue
                self._connection = connection
                self._last_error = None
                connection.on_writable = self._schedule_flush
                self.monitor.up(self.node.key)
                if self.on_connect is not None:
                    self.on_connect(self, info)
                self._schedule_flush()
                return
        finally:
            self._connector = None

    async def _prepare(self, connection: RedisConnection) -> ServerInfo:
        """Load the scripts (so EVALSHA works) and learn who the server is."""
        replies = await connection.call(
            *(script.load() for script in LOADED_SCRIPTS), (b"INFO", b"server")
        )
        for reply in replies:
            if isinstance(reply, ResponseError):
                connection.abort()
                raise LayerUnavailable(f"Redis at {self.node} refused to load scripts: {reply}")
        fields = dict(line.split(b":", 1) for line in replies[-1].splitlines() if b":" in line)
        return ServerInfo(
            run_id=fields.get(b"run_id", b"").decode().strip(),
            uptime=int(fields.get(b"uptime_in_seconds", b"0") or 0),
        )

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and self._queue:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _lost(self, connection: RedisConnection) -> None:
        if connection is not self._connection:
            return
        self._connection = None
        error = connection.error()
        waiters = list(connection.pending)
        connection.pending.clear()
        messages = 0
        for waiter in waiters:
            if waiter.inbox is not None:
                # Counted here as lost; the receiver must not count it again.
                self._seqs[waiter.inbox][1] += 1
            if waiter.message:
                messages += 1
        if not self._closed:
            self.monitor.down(self.node.key, error)
            if messages:
                self.monitor.lost(self.node.key, messages)
        # Fail the callers only after counting, so what they see is consistent.
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if self._queue:
            self._ensure_connecting()

    def _give_up_old(self) -> None:
        deadline = time.monotonic() - self.limits.retry_timeout
        queue = self._queue
        while queue and queue[0].since <= deadline:
            entry = queue.popleft()
            future = entry.waiter.future
            if future.done():
                continue
            if entry.message:
                self.monitor.lost(self.node.key)
            cause = self._last_error
            error = LayerUnavailable(
                f"Redis at {self.node} stayed unreachable for retry_timeout="
                f"{self.limits.retry_timeout} s" + (f"; last error: {cause}" if cause else "")
            )
            error.__cause__ = cause
            future.set_exception(error)

    def _arm_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(self.limits.socket_timeout, self._check_stalled)

    def _check_stalled(self) -> None:
        self._watchdog = None
        connection = self._connection
        if connection is None or not connection.pending:
            return
        idle = time.monotonic() - connection.last_read
        if idle >= self.limits.socket_timeout:
            connection.abort(TimeoutError(f"no reply for {idle:.1f} s (socket_timeout)"))
        else:
            self._watchdog = self.loop.call_later(
                self.limits.socket_timeout - idle, self._check_stalled
            )

    def reset(self) -> None:
        """Drop the connection (e.g. the node turned out to be a replica)."""
        if self._connection is not None:
            self._connection.abort(LayerUnavailable(f"{self.node} is no longer usable"))

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.closed

    async def aclose(self) -> None:
        self._closed = True
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        for handle in (self._flush_handle, self._watchdog, self._ride_timer):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._watchdog = self._ride_timer = None
        error = LayerUnavailable("The channel layer is closed")
        while self._queue:
            future = self._queue.popleft().waiter.future
            if not future.done():
                future.set_exception(error)
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.on_lost = None
            await connection.aclose(self.limits.connect_timeout)

    def close_now(self) -> None:
        """Synchronous close for a loop that no longer runs."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.on_lost = None
            connection.abort()
