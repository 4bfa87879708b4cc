"""The worker: consumes named channels of the channel layer and runs their consumers.

``manage.py runworker thumbnails-generate`` gives every message on that channel to
the application with scope ``{"type": "channel", "channel": "thumbnails-generate"}``
(usually a ``ChannelNameRouter``). One application instance serves each channel,
fed through a bounded queue, so a slow consumer applies backpressure instead of
piling messages up in memory; an instance that crashes is logged and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from typing import Any

from djwire.layers import BaseChannelLayer
from djwire.typing import ASGIApp

logger = logging.getLogger("djwire.worker")

#: Messages buffered per channel between the layer and its application instance.
DEFAULT_QUEUE_SIZE = 100


class Worker:
    """Feed messages from ``channels`` into ``application`` until stopped."""

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        channel_layer: BaseChannelLayer | None,
        max_applications: int = 1000,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        require_type: bool = True,
    ) -> None:
        if channel_layer is None:
            raise ValueError("Channel layer is not valid: configure CHANNEL_LAYERS")
        self.application = application
        self.channels = list(channels)
        if not self.channels:
            raise ValueError("A worker needs at least one channel to listen on")
        for name in self.channels:
            channel_layer.require_valid_channel_name(name)
        self.channel_layer = channel_layer
        self.max_applications = max_applications
        self.queue_size = queue_size
        # Classic (Channels 1) messages have no "type"; their app routes by channel.
        self.require_type = require_type
        self._instances: dict[str, tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]] = {}

    def run(self) -> None:
        """Run until SIGINT/SIGTERM (blocking)."""
        asyncio.run(self._run_until_signalled())

    async def _run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Signal handlers can only be set in the main thread.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, main.cancel)
        try:
            await self.handle()
        except asyncio.CancelledError:
            logger.info("Worker stopping")
        finally:
            await self.stop()

    async def handle(self) -> None:
        """Listen on every channel until cancelled; a layer error ends the worker."""
        listeners = [asyncio.ensure_future(self.listener(name)) for name in self.channels]
        try:
            await asyncio.gather(*listeners)
        finally:
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    async def listener(self, channel: str) -> None:
        while True:
            message = await self.channel_layer.receive(channel)
            if self.require_type and not message.get("type"):
                logger.error(
                    "Worker got a message with no type on %s; dropped: %r", channel, message
                )
                continue
            await self._queue_for(channel).put(message)

    def _queue_for(self, channel: str) -> asyncio.Queue[dict[str, Any]]:
        entry = self._instances.get(channel)
        if entry is not None and not entry[1].done():
            return entry[0]
        if len(self._instances) >= self.max_applications:
            raise RuntimeError(f"More than {self.max_applications} application instances")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        scope = {"type": "channel", "channel": channel}

        async def send(message: dict[str, Any]) -> None:
            raise RuntimeError("Channel consumers cannot send ASGI messages back to a client")

        task = asyncio.ensure_future(self.application(scope, queue.get, send))
        task.add_done_callback(lambda done: self._instance_done(channel, queue, done))
        self._instances[channel] = (queue, task)
        return queue

    def _instance_done(
        self, channel: str, queue: asyncio.Queue[dict[str, Any]], task: asyncio.Task[None]
    ) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error(
                "Application instance for channel %s raised; %d queued message(s) lost; "
                "a new instance takes the next message",
                channel,
                queue.qsize(),
                exc_info=error,
            )

    async def stop(self) -> None:
        tasks = [task for _, task in self._instances.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._instances.clear()
