"""Wake-up subscriptions: one pub/sub connection per Redis node per event loop.

Pushing to an empty list also publishes on the list's wake channel; a feed that
found its list empty waits for that. Wake-ups are only hints — the data stays in
Redis (in the list, or in the taken batch when a wake-up carries the item to an
idle inbox feed) — so a wake-up missed while disconnected loses nothing: after every
(re)subscription every watcher is woken and looks at its list again, and feeds
poll every ``poll_interval`` anyway. In Redis Cluster the wake channels are
sharded channels (SSUBSCRIBE/SPUBLISH, Redis 7), living on the node of their slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from djwire.exceptions import LayerUnavailable

from .accounting import OutageMonitor
from .config import Limits
from .connection import RedisConnection
from .nodes import Node

logger = logging.getLogger("djwire.layers.redis")

#: Called with the message's payload: b"" for a plain wake-up (and on every
#: (re)subscription), else what the publisher sent along (see scripts.PUSH_INBOX).
Callback = Callable[[bytes], None]

_MESSAGES = frozenset({b"message", b"smessage"})
_CONFIRMATIONS = frozenset({b"subscribe", b"ssubscribe"})


class Subscriber:
    def __init__(
        self,
        node: Node,
        limits: Limits,
        monitor: OutageMonitor,
        sharded: bool,
        client_name: str | None = None,
    ) -> None:
        self.node = node
        self.limits = limits
        self.monitor = monitor
        self.client_name = client_name
        self.loop = asyncio.get_running_loop()
        self._subscribe = b"SSUBSCRIBE" if sharded else b"SUBSCRIBE"
        self._unsubscribe = b"SUNSUBSCRIBE" if sharded else b"UNSUBSCRIBE"
        self._watchers: dict[bytes, list[Callback]] = {}
        self._subscribed: set[bytes] = set()
        self._connection: RedisConnection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def watch(self, channel: bytes, callback: Callback) -> None:
        """Call ``callback`` on every wake-up of ``channel``, starting with the one
        sent when the subscription is confirmed (so nothing published between a
        caller's last look and the subscription goes unnoticed)."""
        callbacks = self._watchers.setdefault(channel, [])
        callbacks.append(callback)
        if channel not in self._subscribed:
            self._subscribed.add(channel)
            connection = self._connection
            if connection is not None and not connection.closed:
                connection.write([(self._subscribe, channel)], [])
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())

    def unwatch(self, channel: bytes, callback: Callback) -> None:
        callbacks = self._watchers.get(channel)
        if not callbacks:
            return
        with contextlib.suppress(ValueError):
            callbacks.remove(callback)
        if not callbacks:
            del self._watchers[channel]
            self._subscribed.discard(channel)
            connection = self._connection
            if connection is not None and not connection.closed:
                connection.write([(self._unsubscribe, channel)], [])

    # -- the connection ----------------------------------------------------------------

    async def _run(self) -> None:
        low, high = self.limits.reconnect_backoff
        delay = low
        while not self._closed and self._watchers:
            try:
                connection = await self.node.connect(
                    self.limits.connect_timeout, self.client_name, self._on_lost
                )
            except LayerUnavailable as exc:
                self.monitor.down(self.node.key, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, high)
                continue
            delay = low
            self._lost.clear()
            connection.on_push = self._on_push
            self._connection = connection
            channels = list(self._watchers)
            self._subscribed = set(channels)
            if channels:
                connection.write([(self._subscribe, channel) for channel in channels], [])
            await self._keep_alive(connection)
            self._connection = None
            # Anything published meanwhile was missed: every watcher looks again
            # once resubscribed (see _on_push).

    async def _keep_alive(self, connection: RedisConnection) -> None:
        interval = self.limits.health_check_interval
        while not connection.closed and not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._lost.wait()
            if connection.closed or self._closed:
                return
            if time.monotonic() - connection.last_read < interval:
                continue
            pinged = time.monotonic()
            connection.write([(b"PING",)], [])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.limits.socket_timeout):
                    await self._lost.wait()
            if not connection.closed and connection.last_read < pinged:
                connection.abort(TimeoutError("no reply to PING on the subscriber connection"))
                return

    def _on_lost(self, connection: RedisConnection) -> None:
        if connection is self._connection and not self._closed:
            self.monitor.down(self.node.key, connection.error())
        self._lost.set()

    def _on_push(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 2:
            return
        kind = reply[0]
        if kind in _MESSAGES:
            payload = reply[2] if len(reply) > 2 and isinstance(reply[2], bytes) else b""
            self._wake(reply[1], payload)
        elif kind in _CONFIRMATIONS:
            self.monitor.up(self.node.key)
            self._wake(reply[1], b"")

    def _wake(self, channel: bytes, payload: bytes) -> None:
        callbacks = self._watchers.get(channel)
        if not callbacks:
            return
        if len(callbacks) == 1:
            callbacks[0](payload)
            return
        for callback in list(callbacks):
            callback(payload)

    async def aclose(self) -> None:
        self._closed = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.on_lost = None
            await connection.aclose(self.limits.connect_timeout)

    def close_now(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.on_lost = None
            connection.close()
