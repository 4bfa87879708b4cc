"""The worker feeds named channels into applications; classic named channels too."""

from __future__ import annotations

import asyncio
import threading

import pytest

from djwire.consumer import AsyncConsumer, SyncConsumer
from djwire.layers import InMemoryChannelLayer
from djwire.routing import ChannelNameRouter, route
from djwire.worker import Worker

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
