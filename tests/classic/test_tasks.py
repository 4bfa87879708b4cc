"""Background tasks in one line: ``Channel("thumbnails").send(...)`` from sync code (a
view, ``Model.save()``), ``await Channel(...).asend(...)`` from async code, and
``delay=`` for later delivery; a worker runs them."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from djwire import Channel
from djwire.consumer import AsyncConsumer
from djwire.layers import InMemoryChannelLayer, channel_layers
from djwire.routing import ChannelNameRouter
from djwire.worker import Worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def layer():
    layer = InMemoryChannelLayer()
    old = channel_layers.set("default", layer)
    yield layer
    channel_layers.set("default", old)


async def test_a_view_sends_a_task_in_one_line_and_a_worker_runs_it(layer) -> None:
    done: list[int] = []
    ran = asyncio.Event()

    class Thumbnails(AsyncConsumer):
        async def thumbnail(self, message):
            done.append(message["id"])
            ran.set()

    def view() -> None:  # sync code, as a view or Model.save() is
        Channel("thumbnails").send({"type": "thumbnail", "id": 7})

    await sync_to_async(view)()
    worker = Worker(ChannelNameRouter({"thumbnails": Thumbnails.as_asgi()}), ["thumbnails"], layer)
    task = asyncio.ensure_future(worker.handle())
    try:
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert done == [7]


async def test_asend_and_delay_hold_a_task_back_until_it_is_due(layer) -> None:
    started = time.monotonic()
    await Channel("later").asend({"type": "late"}, delay=0.4)
    await Channel("later").asend({"type": "now"})
    first = await asyncio.wait_for(layer.take("later"), 5)
    second = await asyncio.wait_for(layer.take("later"), 5)
    assert [first[0].message["type"], second[0].message["type"]] == ["now", "late"]
    assert time.monotonic() - started >= 0.35


def test_send_with_delay_from_sync_code(layer) -> None:
    Channel("later").send({"type": "late"}, delay=0.2)
    got: list[str] = []

    def take() -> None:
        async def run() -> None:
            deliveries = await asyncio.wait_for(layer.take("later"), 5)
            got.append(deliveries[0].message["type"])

        asyncio.run(run())

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(10)
    assert got == ["late"]


async def test_a_delay_on_a_process_channel_is_refused(layer) -> None:
    name = await layer.new_channel()
    with pytest.raises(ValueError, match="named channels"):
        await Channel(name).asend({"type": "x"}, delay=1)
