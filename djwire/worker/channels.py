"""The worker for named channels: background tasks, many in progress at once.

``manage.py runworker thumbnails`` gives every message on ``thumbnails`` to the
project's application with scope ``{"type": "channel", "channel": "thumbnails"}``
(usually a ``ChannelNameRouter``). Per channel:

* one *taker* takes messages in batches - as many as there is room for - so at most
  ``concurrency`` messages are in progress and ``prefetch`` more wait for a slot
  (the next batch is on its way while the slots work), and several worker
  processes on one channel share its messages (each goes to one of them);
* ``concurrency`` *slots*, each an application instance (made on demand) that
  handles one message at a time: asking for the next message (calling
  ``receive()``) is what says the last one is done. Sync consumers of different
  slots run on different threads (see :mod:`.threads`).

An instance that raises is logged and replaced. On a reliable channel (see
:mod:`.settings`) messages are taken with a lease and acknowledged only once
handled; a failed one is retried with backoff, then dead-lettered. Elsewhere a
message is handled at most once, and one whose handler failed is counted
(``Worker.stats``) and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from djwire.layers import BaseChannelLayer
from djwire.layers.queue_types import Delivery
from djwire.typing import ASGIApp

from .extension import WORKER_EXTENSION
from .settings import DEFAULT_CONCURRENCY, Reliability, WorkerSettings
from .threads import ThreadPool

logger = logging.getLogger("djwire.worker")


class Worker:
    """Feed messages from ``channels`` into ``application`` until stopped.

    ``Worker(application, channels, channel_layer)`` as in Django Channels;
    ``settings`` sets concurrency, shutdown time and reliable channels.
    """

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        channel_layer: BaseChannelLayer | None,
        max_applications: int | None = None,
        *,
        settings: WorkerSettings | None = None,
        require_type: bool = True,
    ) -> None:
        if channel_layer is None:
            raise ValueError("Channel layer is not valid: configure CHANNEL_LAYERS")
        self.application = application
        self.channels = list(dict.fromkeys(channels))
        if not self.channels:
            raise ValueError("A worker needs at least one channel to listen on")
        for name in self.channels:
            channel_layer.require_valid_channel_name(name)
            if "!" in name:
                raise ValueError(f"Workers consume named channels, not {name!r}")
        self.channel_layer = channel_layer
        if settings is None:
            concurrency = max_applications if max_applications else DEFAULT_CONCURRENCY
            settings = WorkerSettings(concurrency=concurrency)
        self.settings = settings
        reliable = [name for name in self.channels if settings.reliability(name) is not None]
        if reliable and "queues" not in getattr(channel_layer, "extensions", ()):
            raise ValueError(
                f"Reliable channels ({', '.join(reliable)}) need a channel layer that can lease "
                f"messages; {type(channel_layer).__name__} cannot (use the Redis or in-memory "
                "layer, or take them out of DJWIRE_RELIABLE_CHANNELS)"
            )
        # Classic (Channels 1) messages have no "type"; their app routes by channel.
        self.require_type = require_type
        #: handled / failed / retried / dead_lettered / lost, per channel
        self.stats: dict[str, Counter[str]] = {name: Counter() for name in self.channels}
        self._runners: list[ChannelRunner] = []
        self._threads: ThreadPool | None = None

    # -- running -------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGINT/SIGTERM, then stop gracefully (blocking)."""
        from .process import run_until_signalled

        run_until_signalled(self)

    async def handle(self) -> None:
        """Consume every channel until cancelled or :meth:`stop`; then finish what is
        in hand (up to ``shutdown_timeout``)."""
        self._threads = ThreadPool(self.settings.concurrency, "djwire-worker")
        self._runners = [
            ChannelRunner(self, name, self.settings.reliability(name)) for name in self.channels
        ]
        try:
            await asyncio.gather(*(runner.run() for runner in self._runners))
        finally:
            await self._finish()

    async def stop(self) -> None:
        """Take no new message; return once those in hand are done (or given up)."""
        for runner in self._runners:
            runner.stopping = True
        await self._finish()

    async def _finish(self) -> None:
        runners = self._runners
        if runners:
            await asyncio.gather(
                *(runner.drain(self.settings.shutdown_timeout) for runner in runners)
            )
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None

    def threads(self) -> ThreadPool:
        assert self._threads is not None, "the worker is not running"
        return self._threads


class _Slot:
    """One application instance and the message it is handling.

    Also the instance's :class:`~djwire.worker.extension.ConsumerHost`: a djwire
    consumer adopts it and reports each handled message, so the slot knows when
    a message is done even though the consumer asks for the next one early.
    """

    __slots__ = ("adopted", "current", "receiver", "runner", "task")

    channel_name = None  # consumers of named channels make their own

    def __init__(self, runner: ChannelRunner) -> None:
        self.runner = runner
        self.current: Delivery | None = None
        #: The future the instance's pending receive() waits on.
        self.receiver: asyncio.Future[dict[str, Any]] | None = None
        self.task: asyncio.Task[None] | None = None
        self.adopted = False

    def adopt(self, consumer: Any) -> bool:
        self.adopted = True
        return False

    def handled(self, message: dict[str, Any]) -> None:
        current = self.current
        if current is not None and current.message is message:
            self.runner._finished(self)


class ChannelRunner:
    """Takes the messages of one channel and hands them to slots."""

    def __init__(self, worker: Worker, channel: str, reliability: Reliability | None) -> None:
        self.worker = worker
        self.layer = worker.channel_layer
        self.channel = channel
        self.reliability = reliability
        self.stats = worker.stats[channel]
        self.stopping = False
        size = worker.settings.concurrency
        # Room for messages in this process: the slots' and those taken ahead of them.
        self.free = asyncio.Semaphore(worker.settings.taken_at_most)
        # Messages taken and not yet started, and slots waiting for one. A message is
        # handed straight to a waiting slot's receive() future: no queue, no task.
        self.backlog: deque[Delivery] = deque()
        self.ready: deque[_Slot] = deque()
        self.slots = [_Slot(self) for _ in range(size)]
        self.scope = {"type": "channel", "channel": channel}
        self._acks: list[str] = []
        self._ack_wake = asyncio.Event()
        self._taker: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        # Settling failures and give-backs: awaited before the worker stops.
        self._settling: set[asyncio.Future[Any]] = set()

    async def run(self) -> None:
        for slot in self.slots:
            self._start(slot)
        if self.reliability is not None:
            self._acker = asyncio.ensure_future(self._send_acks())
        self._taker = asyncio.ensure_future(self._take())
        with contextlib.suppress(asyncio.CancelledError):
            await self._taker

    # -- taking ------------------------------------------------------------------------

    async def _take(self) -> None:
        lease = self.reliability.lease if self.reliability is not None else None
        free = self.free
        while not self.stopping:
            await free.acquire()
            wanted = 1
            while not free.locked():  # take every free slot's share in one batch
                await free.acquire()
                wanted += 1
            try:
                deliveries = await self.layer.take(self.channel, wanted, lease=lease)
            except asyncio.CancelledError:
                for _ in range(wanted):
                    free.release()
                raise
            except Exception:
                for _ in range(wanted):
                    free.release()
                logger.exception("Taking from %s failed; retrying in 1 s", self.channel)
                await asyncio.sleep(1)
                continue
            for _ in range(wanted - len(deliveries)):
                free.release()
            for delivery in deliveries:
                self._deliver(delivery)

    # -- slots ---------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.adopted = False
        slot.receiver = None
        loop = asyncio.get_running_loop()

        def receive() -> asyncio.Future[dict[str, Any]]:
            # A plain future, not a coroutine: the consumer waits without a Task.
            if not slot.adopted:
                self._finished(slot)  # asking for more means the last one is done
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            slot.receiver = future
            if slot.current is None:
                self._serve(slot)
            # else: a djwire consumer asks early; served once it reports the last one
            return future

        async def send(message: dict[str, Any]) -> None:
            raise RuntimeError("Channel consumers cannot send ASGI messages back to a client")

        scope = {**self.scope, "extensions": {WORKER_EXTENSION: slot}}

        async def instance() -> None:
            async with self.worker.threads().context():
                await self.worker.application(scope, receive, send)

        slot.task = asyncio.ensure_future(instance())
        slot.task.add_done_callback(lambda task: self._instance_done(slot, task))

    def _usable(self, delivery: Delivery) -> bool:
        if self.worker.require_type and not delivery.message.get("type"):
            logger.error(
                "Worker got a message with no type on %s; dropped: %r",
                self.channel,
                delivery.message,
            )
            self.stats["lost"] += 1
            self._settle(delivery, ok=True)
            return False
        return True

    def _hand(self, slot: _Slot, delivery: Delivery) -> None:
        receiver = slot.receiver
        assert receiver is not None
        slot.current = delivery
        slot.receiver = None
        receiver.set_result(delivery.message)

    def _serve(self, slot: _Slot) -> None:
        """An idle slot waits for a message: give it the next one, or let it wait."""
        receiver = slot.receiver
        if receiver is None or receiver.done():
            slot.receiver = None
            return
        while self.backlog:
            delivery = self.backlog.popleft()
            if self._usable(delivery):
                self._hand(slot, delivery)
                return
        self.ready.append(slot)

    def _deliver(self, delivery: Delivery) -> None:
        """A message taken from the layer: to a waiting slot, or to the backlog."""
        while self.ready:
            slot = self.ready.popleft()
            receiver = slot.receiver
            if receiver is None or receiver.done() or slot.current is not None:
                continue  # its instance ended or was already served
            if self._usable(delivery):
                self._hand(slot, delivery)
            else:
                self.ready.appendleft(slot)
            return
        self.backlog.append(delivery)

    def _finished(self, slot: _Slot) -> None:
        """The slot's message is handled."""
        if slot.current is not None:
            self.stats["handled"] += 1
            self._settle(slot.current, ok=True)
            slot.current = None
            if slot.adopted and slot.receiver is not None:
                self._serve(slot)

    def _settle(self, delivery: Delivery, ok: bool, error: BaseException | None = None) -> None:
        self.free.release()
        if ok:
            if delivery.tag is not None:
                self._acks.append(delivery.tag)
                self._ack_wake.set()
            return
        self.stats["failed"] += 1
        if delivery.tag is None or self.reliability is None:
            self.stats["lost"] += 1
            logger.error(
                "A message on %s failed and is dropped (not a reliable channel)",
                self.channel,
                exc_info=error,
            )
            return
        self._background(self._fail(delivery, self.reliability, error))

    def _background(self, work: Any) -> None:
        future = asyncio.ensure_future(work)
        self._settling.add(future)
        future.add_done_callback(self._settling.discard)

    async def _fail(
        self, delivery: Delivery, reliability: Reliability, error: BaseException | None
    ) -> None:
        assert delivery.tag is not None
        reason = f"{type(error).__name__}: {error}" if error is not None else "failed"
        try:
            if delivery.attempt >= reliability.max_attempts:
                self.stats["dead_lettered"] += 1
                await self.layer.dead_letter(self.channel, delivery.tag, reason)
                logger.error(
                    "A message on %s failed %d times; moved to its dead letters (%s)",
                    self.channel,
                    delivery.attempt,
                    reason,
                    exc_info=error,
                )
            else:
                delay = reliability.delay_after(delivery.attempt)
                self.stats["retried"] += 1
                await self.layer.retry(self.channel, delivery.tag, delay)
                logger.warning(
                    "A message on %s failed (attempt %d of %d); retrying in %.1f s: %s",
                    self.channel,
                    delivery.attempt,
                    reliability.max_attempts,
                    delay,
                    reason,
                )
        except Exception:
            logger.exception(
                "Could not settle a failed message on %s; its lease will expire and it will "
                "be delivered again",
                self.channel,
            )

    def _instance_done(self, slot: _Slot, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        current, slot.current = slot.current, None
        slot.receiver = None
        if task.cancelled():
            if current is not None:
                self._give_back(current, started=True)
            return
        if error is not None:
            logger.error(
                "Application instance for channel %s raised; a new instance takes the next "
                "message",
                self.channel,
                exc_info=error,
            )
        if current is not None:
            self._settle(current, ok=error is None, error=error)
        if not self.stopping:
            self._start(slot)

    def _give_back(self, delivery: Delivery, started: bool) -> None:
        """A message a stopping worker did not finish: back to the channel."""
        self.free.release()
        if delivery.tag is not None:
            # At once, instead of when its lease runs out.
            self._background(self.layer.retry(self.channel, delivery.tag, 0))
        elif not started:
            self._background(self._send_again(delivery.message))
        else:
            self.stats["lost"] += 1
            logger.error(
                "A message on %s was cut short by the worker stopping (not a reliable "
                "channel: it is not delivered again)",
                self.channel,
            )

    async def _send_again(self, message: dict[str, Any]) -> None:
        try:
            await self.layer.send(self.channel, message)
        except Exception:
            self.stats["lost"] += 1
            logger.exception("A message on %s not started before a stop was lost", self.channel)

    async def _send_acks(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            tags, self._acks = self._acks, []
            if tags:
                try:
                    await self.layer.ack(self.channel, tags)
                except Exception:
                    logger.exception(
                        "Acknowledging %d message(s) on %s failed; they will be delivered again",
                        len(tags),
                        self.channel,
                    )

    # -- stopping ------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Stop taking; give back what was taken ahead and not started; let the slots
        finish what they are handling, for up to ``grace`` seconds."""
        self.stopping = True
        if self._taker is not None:
            self._taker.cancel()
            await asyncio.gather(self._taker, return_exceptions=True)
        self._give_back_backlog()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.busy() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        tasks = [slot.task for slot in self.slots if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._give_back_backlog()
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        if self._acker is not None:
            self._ack_wake.set()
            await asyncio.sleep(0)
            tags, self._acks = self._acks, []
            self._acker.cancel()
            await asyncio.gather(self._acker, return_exceptions=True)
            if tags:
                with contextlib.suppress(Exception):
                    await self.layer.ack(self.channel, tags)

    def _give_back_backlog(self) -> None:
        leftover = list(self.backlog)
        self.backlog.clear()
        for delivery in leftover:
            self._give_back(delivery, started=False)

    def busy(self) -> bool:
        return any(slot.current is not None for slot in self.slots)
