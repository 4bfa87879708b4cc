"""Run worker parts in this process until a signal says stop.

SIGTERM or SIGINT: take no new work, finish what is in hand (each part's own
shutdown timeout), exit. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from typing import Protocol

logger = logging.getLogger("djwire.worker")


class Part(Protocol):
    async def handle(self) -> None:
        """Run until stopped; on the way out, finish what is in hand."""

    async def stop(self) -> None:
        """Take no new work; return once what is in hand is done or given up."""


class StopSwitch:
    """Stop a running :func:`serve` from another thread, and wait until it has."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._requested = False

    def bind(self, event: asyncio.Event) -> None:
        self._loop, self._event = asyncio.get_running_loop(), event
        if self._requested:
            event.set()

    def request(self) -> None:
        self._requested = True
        if self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self._event.set)

    def stopped(self) -> None:
        self._stopped.set()

    def wait_stopped(self, timeout: float) -> bool:
        return self._stopped.wait(timeout)


def run_until_signalled(*parts: Part, switch: StopSwitch | None = None) -> None:
    """Run ``parts`` together until SIGTERM/SIGINT (blocking), on uvloop if installed."""
    try:
        import uvloop
    except ImportError:
        factory = asyncio.new_event_loop
    else:
        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(*parts, switch=switch))
    finally:
        if switch is not None:
            switch.stopped()


async def serve(*parts: Part, switch: StopSwitch | None = None) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    if switch is not None:
        switch.bind(stopping)
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.info("Worker stopping: finishing the work in hand (again to stop at once)")
            stopping.set()
        else:
            for task in running:
                task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        # Signal handlers can only be set in the main thread.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal)
    running = [asyncio.ensure_future(part.handle()) for part in parts]
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait([*running, waiter], return_when=asyncio.FIRST_COMPLETED)
        for task in running:
            if task in done and not task.cancelled() and task.exception() is not None:
                logger.error("Worker part failed; stopping", exc_info=task.exception())
        stopped = [asyncio.ensure_future(part.stop()) for part in parts]
        await asyncio.gather(*stopped, return_exceptions=True)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    finally:
        waiter.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)
    logger.info("Worker stopped")
