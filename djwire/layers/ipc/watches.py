"""Waiting for a named channel: registered as its listener, woken by its senders.

Messages on named channels (no ``!``) live in the shared store, and any process may
take them (see :mod:`.store`). A process whose code waits on one (``receive()`` or
``take()``) is registered in the store as a *listener* of the channel; a sender
that queues a message there writes a WAKE frame to every listener's inbox (or, in
its own process, pokes the watch directly). A waiter that finds nothing sleeps
until a wake-up, or until the store says the next delayed message or lease falls
due - never in a polling loop; ``poll_interval`` bounds the sleep only as a safety
net.

The registration is committed before the first look at the channel, so a message
queued at any moment is either seen by that look or followed by a wake-up; a
wake-up that arrives while a waiter is looking is not lost either (the watch
counts them). With no waiter left, the registration lingers for
``poll_interval`` (a worker taking one message after another does not register
again for each) and is then removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from djwire.exceptions import LayerUnavailable

from .store import Store

logger = logging.getLogger("djwire.layers.ipc")


class Watch:
    """This process's waiters on one named channel."""

    def __init__(self, channel: str, token: str, store: Store, linger: float) -> None:
        self.channel = channel
        self.token = token
        self.store = store
        self.linger = linger
        self.waiters = 0
        self.wakes = 0  # wake-ups so far: a waiter compares before and after looking
        self.listening = False
        self._sleepers: list[asyncio.Future[None]] = []
        self._lock = threading.Lock()
        self._idle_handle: asyncio.TimerHandle | None = None

    async def enter(self) -> None:
        """A waiter arrives: make sure senders wake this process."""
        self.waiters += 1
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if not self.listening:
            await self.store.write(lambda c: self.store.listen(c, self.channel, self.token))
            self.listening = True

    def leave(self, on_idle: Callable[[Watch], None]) -> None:
        """A waiter is done; with none left, unregister after ``linger``."""
        self.waiters -= 1
        if self.waiters == 0 and self.listening:
            loop = asyncio.get_running_loop()
            self._idle_handle = loop.call_later(self.linger, self._idle, on_idle)

    def _idle(self, on_idle: Callable[[Watch], None]) -> None:
        self._idle_handle = None
        if self.waiters:
            return
        self.unlisten()
        on_idle(self)

    def unlisten(self) -> None:
        if not self.listening:
            return
        self.listening = False
        try:
            self.store.write_now(lambda c: self.store.unlisten(c, self.channel, self.token))
        except LayerUnavailable as exc:  # the registration goes with the process anyway
            logger.debug("Could not unregister from %s: %r", self.channel, exc)

    def poke(self) -> None:
        """Something changed on the channel (from any thread): wake every sleeper."""
        with self._lock:
            self.wakes += 1
            sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            loop = sleeper.get_loop()
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                _wake(sleeper)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_wake, sleeper)

    async def sleep(self, wakes: int, seconds: float) -> None:
        """Sleep until a wake-up after the ``wakes``-th, or for ``seconds``."""
        sleeper: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self.wakes != wakes:
                return  # one came while the caller looked
            self._sleepers.append(sleeper)
        try:
            await asyncio.wait_for(sleeper, seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._sleepers.remove(sleeper)


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
