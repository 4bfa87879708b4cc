"""The worker feeds named channels into applications; classic named channels too."""

from __future__ import annotations

import asyncio
import threading

import pytest

from djwire.consumer import AsyncConsumer, SyncConsumer
from djwire.layers import InMemoryChannelLayer
from djwire.routing import ChannelNameRouter, route
from djwire.worker import Reliability, Worker, WorkerSettings
from djwire.worker.settings import parse_reliable

# Consumers close stale DB connections between messages, as Django does between
# requests; once other tests opened one, that touches the (test) database.
pytestmark = pytest.mark.django_db


async def run_worker_until(worker: Worker, done: asyncio.Event) -> None:
    task = asyncio.ensure_future(worker.handle())
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.stop()


async def test_worker_runs_the_routed_consumer_for_each_message_in_order() -> None:
    layer = InMemoryChannelLayer()
    seen: list[int] = []
    done = asyncio.Event()

    class Thumbnailer(AsyncConsumer):
        async def thumbnail_make(self, message):
            seen.append(message["id"])
            if len(seen) == 3:
                done.set()

    app = ChannelNameRouter({"thumbnails": Thumbnailer.as_asgi()})
    worker = Worker(app, ["thumbnails"], layer)
    for n in range(3):
        await layer.send("thumbnails", {"type": "thumbnail.make", "id": n})
    await run_worker_until(worker, done)
    assert seen == [0, 1, 2]


async def test_sync_consumers_run_off_the_event_loop_thread() -> None:
    layer = InMemoryChannelLayer()
    threads: list[str] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Mailer(SyncConsumer):
        def mail_send(self, message):
            threads.append(threading.current_thread().name)
            loop.call_soon_threadsafe(done.set)

    worker = Worker(ChannelNameRouter({"mail": Mailer.as_asgi()}), ["mail"], layer)
    await layer.send("mail", {"type": "mail.send"})
    await run_worker_until(worker, done)
    assert threads and threads[0] != threading.current_thread().name


async def test_a_crashing_consumer_is_logged_and_replaced(caplog) -> None:
    layer = InMemoryChannelLayer()
    done = asyncio.Event()
    calls: list[str] = []

    class Flaky(AsyncConsumer):
        async def job_run(self, message):
            calls.append(message["what"])
            if message["what"] == "crash":
                raise RuntimeError("boom")
            done.set()

    worker = Worker(ChannelNameRouter({"jobs": Flaky.as_asgi()}), ["jobs"], layer)
    await layer.send("jobs", {"type": "job.run", "what": "crash"})
    task = asyncio.ensure_future(worker.handle())
    await asyncio.sleep(0.1)
    await layer.send("jobs", {"type": "job.run", "what": "ok"})
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.stop()
    assert calls == ["crash", "ok"]
    assert "Application instance for channel jobs raised" in caplog.text
    assert "boom" in caplog.text


async def test_messages_without_type_are_logged_and_skipped(caplog) -> None:
    layer = InMemoryChannelLayer()
    done = asyncio.Event()

    class Consumer(AsyncConsumer):
        async def ok(self, message):
            done.set()

    worker = Worker(ChannelNameRouter({"typed": Consumer.as_asgi()}), ["typed"], layer)
    await layer.send("typed", {"no": "type"})
    await layer.send("typed", {"type": "ok"})
    await run_worker_until(worker, done)
    assert "no type" in caplog.text


def test_worker_rejects_bad_setup() -> None:
    with pytest.raises(ValueError, match="Channel layer is not valid"):
        Worker(ChannelNameRouter({}), ["x"], None)
    with pytest.raises(ValueError, match="at least one channel"):
        Worker(ChannelNameRouter({}), [], InMemoryChannelLayer())
    with pytest.raises(TypeError):
        Worker(ChannelNameRouter({}), ["bad name"], InMemoryChannelLayer())


async def test_classic_named_channel_consumers_run_from_the_worker() -> None:
    from djwire.classic.app import ClassicChannelApp

    layer = InMemoryChannelLayer()
    got: list[tuple[str, str]] = []
    done = threading.Event()

    def make_thumbnail(message, name, size):
        got.append((message.channel.name, name + "@" + size))
        done.set()

    app = ClassicChannelApp(
        [
            route(
                "thumbnails",
                make_thumbnail,
                image=r"^(?P<name>\w+)\.png$",
                size=r"^(?P<size>\d+)$",
            )
        ]
    )
    assert app.named_channels() == ["thumbnails"]
    worker = Worker(app, app.named_channels(), layer, require_type=False)
    await layer.send("thumbnails", {"image": "cat.png", "size": "64"})
    task = asyncio.ensure_future(worker.handle())
    try:
        for _ in range(100):
            if done.is_set():
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.stop()
    assert got == [("thumbnails", "cat@64")]


# -- concurrency ------------------------------------------------------------------------


async def run_until(worker: Worker, condition, seconds: float = 5) -> None:
    """Run the worker until ``condition()`` holds (polled), then stop it gracefully."""
    task = asyncio.ensure_future(worker.handle())
    try:
        for _ in range(int(seconds / 0.01)):
            if condition():
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_async_consumers_handle_up_to_concurrency_messages_at_once() -> None:
    layer = InMemoryChannelLayer(capacity=1000)
    running = 0
    most = 0
    done: list[int] = []
    release = asyncio.Event()

    class Slow(AsyncConsumer):
        async def job(self, message):
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1
            done.append(message["n"])

    worker = Worker(
        ChannelNameRouter({"jobs": Slow.as_asgi()}),
        ["jobs"],
        layer,
        settings=WorkerSettings(concurrency=8),
    )
    for n in range(20):
        await layer.send("jobs", {"type": "job", "n": n})
    task = asyncio.ensure_future(worker.handle())
    try:
        for _ in range(500):
            if running == 8:
                break
            await asyncio.sleep(0.01)
        assert running == 8  # never more than the concurrency, and all of it used
        release.set()
        for _ in range(500):
            if len(done) == 20:
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert most == 8
    assert sorted(done) == list(range(20))
    assert worker.stats["jobs"]["handled"] == 20


async def test_sync_consumers_run_on_several_threads_at_once() -> None:
    layer = InMemoryChannelLayer(capacity=1000)
    barrier = threading.Barrier(4, timeout=5)
    threads: set[str] = set()

    class Blocking(SyncConsumer):
        def job(self, message):
            threads.add(threading.current_thread().name)
            barrier.wait()  # only returns once 4 handlers run at the same time

    worker = Worker(
        ChannelNameRouter({"jobs": Blocking.as_asgi()}),
        ["jobs"],
        layer,
        settings=WorkerSettings(concurrency=4),
    )
    for n in range(8):
        await layer.send("jobs", {"type": "job", "n": n})
    await run_until(worker, lambda: worker.stats["jobs"]["handled"] == 8)
    assert worker.stats["jobs"]["handled"] == 8
    assert len(threads) == 4


async def test_stop_finishes_the_messages_in_hand_and_leaves_the_rest_queued() -> None:
    layer = InMemoryChannelLayer(capacity=1000)
    started = asyncio.Event()
    finished: list[int] = []

    class Slow(AsyncConsumer):
        async def job(self, message):
            started.set()
            await asyncio.sleep(0.2)
            finished.append(message["n"])

    worker = Worker(
        ChannelNameRouter({"jobs": Slow.as_asgi()}),
        ["jobs"],
        layer,
        settings=WorkerSettings(concurrency=2),
    )
    for n in range(10):
        await layer.send("jobs", {"type": "job", "n": n})
    task = asyncio.ensure_future(worker.handle())
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(finished) == [0, 1]
    left = [d.message["n"] for d in await layer.take("jobs", 100)]
    assert sorted(left) == list(range(2, 10))
    assert worker.stats["jobs"]["lost"] == 0


# -- reliable channels ----------------------------------------------------------------


async def test_a_failing_message_on_a_reliable_channel_is_retried_then_dead_lettered(
    caplog,
) -> None:
    layer = InMemoryChannelLayer()
    attempts: list[int] = []

    class Broken(AsyncConsumer):
        async def job(self, message):
            attempts.append(message["n"])
            raise RuntimeError("always fails")

    settings = WorkerSettings(
        concurrency=2,
        reliable=parse_reliable({"jobs": {"max_attempts": 3, "backoff": (0.01, 0.05)}}),
    )
    worker = Worker(
        ChannelNameRouter({"jobs": Broken.as_asgi()}), ["jobs"], layer, settings=settings
    )
    await layer.send("jobs", {"type": "job", "n": 7})
    await run_until(worker, lambda: worker.stats["jobs"]["dead_lettered"] == 1)
    assert attempts == [7, 7, 7]
    assert worker.stats["jobs"]["retried"] == 2
    (letter,) = await layer.dead_letters("jobs")
    assert letter.message == {"type": "job", "n": 7}
    assert letter.attempts == 3
    assert "RuntimeError: always fails" in letter.reason
    assert "moved to its dead letters" in caplog.text


async def test_a_reliable_message_that_succeeds_on_a_retry_is_acknowledged() -> None:
    layer = InMemoryChannelLayer()
    calls: list[int] = []

    class Flaky(AsyncConsumer):
        async def job(self, message):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("first time")

    settings = WorkerSettings(
        reliable=parse_reliable({"jo*": {"max_attempts": 3, "backoff": (0.01, 0.01)}})
    )
    worker = Worker(
        ChannelNameRouter({"jobs": Flaky.as_asgi()}), ["jobs"], layer, settings=settings
    )
    await layer.send("jobs", {"type": "job"})
    await run_until(worker, lambda: worker.stats["jobs"]["handled"] == 1)
    assert len(calls) == 2
    assert await layer.dead_letters("jobs") == []
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.take("jobs", 10), 0.3)


async def test_on_an_unreliable_channel_a_failed_message_is_counted_and_logged(caplog) -> None:
    layer = InMemoryChannelLayer()

    class Broken(AsyncConsumer):
        async def job(self, message):
            raise RuntimeError("nope")

    worker = Worker(ChannelNameRouter({"jobs": Broken.as_asgi()}), ["jobs"], layer)
    await layer.send("jobs", {"type": "job"})
    await run_until(worker, lambda: worker.stats["jobs"]["failed"] == 1)
    assert worker.stats["jobs"]["lost"] == 1
    assert "failed and is dropped (not a reliable channel)" in caplog.text


def test_reliable_channel_settings_are_checked() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="max_attempts"):
        parse_reliable({"jobs": {"max_attempts": 0}})
    with pytest.raises(ImproperlyConfigured, match="named channel"):
        parse_reliable({"jobs!x": {}})
    with pytest.raises(ImproperlyConfigured, match="unexpected keyword"):
        parse_reliable({"jobs": {"retries": 3}})
    settings = WorkerSettings(reliable=parse_reliable({"mail.*": None, "jobs": {"lease": 5}}))
    assert settings.reliability("mail.send") == Reliability()
    assert settings.reliability("jobs") == Reliability(lease=5)
    assert settings.reliability("other") is None


def test_reliable_channels_on_a_layer_that_cannot_lease_are_refused_at_start() -> None:
    class NoQueues(InMemoryChannelLayer):
        extensions = ["groups", "flush"]

    settings = WorkerSettings(reliable=parse_reliable({"jobs": {}}))
    with pytest.raises(ValueError, match="Reliable channels \\(jobs\\) need a channel layer"):
        Worker(ChannelNameRouter({}), ["jobs", "other"], NoQueues(), settings=settings)
    Worker(ChannelNameRouter({}), ["other"], NoQueues(), settings=settings)  # not reliable: fine
