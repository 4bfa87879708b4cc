"""Named channels as work queues: the "queues" extension of the layer contract.

Every backend workers can use runs these unchanged (see backends.py): batch takes,
leases with redelivery, retries, dead letters and delayed sends.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from djwire.layers import BaseChannelLayer
from djwire.layers.queue_types import Delivery

from .backends import LayerFactory

pytestmark = pytest.mark.asyncio

TIMEOUT = 5


async def take(
    layer: BaseChannelLayer, channel: str, count: int = 1, lease: float | None = None
) -> list[Delivery]:
    return await asyncio.wait_for(layer.take(channel, count, lease=lease), TIMEOUT)


async def assert_nothing_taken(layer: BaseChannelLayer, channel: str, wait: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.take(channel, 10), wait)


async def test_every_backend_offers_the_queues_extension(layer: BaseChannelLayer) -> None:
    assert "queues" in layer.extensions


async def test_take_returns_up_to_count_messages_in_order(layer: BaseChannelLayer) -> None:
    for n in range(5):
        await layer.send("jobs", {"type": "job", "n": n})
    first = await take(layer, "jobs", 3)
    rest = await take(layer, "jobs", 10)
    assert [d.message["n"] for d in first] == [0, 1, 2]
    assert [d.message["n"] for d in rest] == [3, 4]
    assert all(d.tag is None and d.attempt == 1 for d in first + rest)


async def test_take_waits_for_a_later_send(layer: BaseChannelLayer) -> None:
    waiting = asyncio.ensure_future(take(layer, "later", 5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await layer.send("later", {"type": "x"})
    assert [d.message for d in await waiting] == [{"type": "x"}]


async def test_a_cancelled_take_loses_nothing(layer: BaseChannelLayer) -> None:
    for _ in range(3):
        waiting = asyncio.ensure_future(layer.take("cancelled", 5))
        await asyncio.sleep(0.02)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    await layer.send("cancelled", {"type": "kept"})
    assert [d.message["type"] for d in await take(layer, "cancelled", 5)] == ["kept"]


async def test_each_message_goes_to_exactly_one_of_several_takers(
    make_layer: LayerFactory,
) -> None:
    layer = make_layer(capacity=100)
    got: list[int] = []
    all_taken = asyncio.Event()

    async def taker() -> None:
        while True:
            for delivery in await layer.take("shared", 2):
                got.append(delivery.message["n"])
            if len(got) >= 60:
                all_taken.set()

    takers = [asyncio.ensure_future(taker()) for _ in range(3)]
    try:
        for n in range(60):
            await layer.send("shared", {"type": "n", "n": n})
        await asyncio.wait_for(all_taken.wait(), TIMEOUT)
    finally:
        for task in takers:
            task.cancel()
        await asyncio.gather(*takers, return_exceptions=True)
    assert sorted(got) == list(range(60))


async def test_process_specific_channels_are_refused(layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    with pytest.raises(ValueError, match="named channels"):
        await layer.send_later(channel, {"type": "x"}, 1)
    with pytest.raises(ValueError, match="named channels"):
        await layer.take(channel, 1, lease=5)


# -- leases ---------------------------------------------------------------------------


async def test_an_acknowledged_lease_is_never_delivered_again(layer: BaseChannelLayer) -> None:
    await layer.send("tasks", {"type": "t"})
    (delivery,) = await take(layer, "tasks", lease=0.3)
    assert delivery.tag is not None and delivery.attempt == 1
    await layer.ack("tasks", [delivery.tag])
    await assert_nothing_taken(layer, "tasks", wait=0.8)


async def test_a_lease_not_acknowledged_in_time_is_delivered_again(
    layer: BaseChannelLayer,
) -> None:
    await layer.send("tasks", {"type": "t", "n": 1})
    (first,) = await take(layer, "tasks", lease=0.3)
    started = time.monotonic()
    (again,) = await take(layer, "tasks", lease=5)
    assert time.monotonic() - started >= 0.2
    assert again.message == {"type": "t", "n": 1}
    assert again.attempt == 2 and again.tag != first.tag
    # The first lease is gone: settling it is harmless and changes nothing.
    await layer.ack("tasks", [first.tag])  # type: ignore[list-item]
    assert await layer.retry("tasks", first.tag, 0) is False  # type: ignore[arg-type]
    await layer.ack("tasks", [again.tag])  # type: ignore[list-item]
    await assert_nothing_taken(layer, "tasks")


async def test_retry_delivers_the_message_again_after_the_delay(layer: BaseChannelLayer) -> None:
    await layer.send("tasks", {"type": "t"})
    (first,) = await take(layer, "tasks", lease=5)
    assert first.tag is not None
    assert await layer.retry("tasks", first.tag, 0.4) is True
    started = time.monotonic()
    (again,) = await take(layer, "tasks", lease=5)
    assert time.monotonic() - started >= 0.3
    assert again.attempt == 2 and again.message == {"type": "t"}


async def test_dead_letters_are_listed_replayed_and_discarded(layer: BaseChannelLayer) -> None:
    for n in range(3):
        await layer.send("tasks", {"type": "t", "n": n})
    deliveries = await take(layer, "tasks", 3, lease=5)
    for delivery in deliveries:
        assert delivery.tag is not None
        assert await layer.dead_letter("tasks", delivery.tag, f"failed {delivery.message['n']}")
    letters = await layer.dead_letters("tasks")
    assert [(d.message["n"], d.reason, d.attempts) for d in letters] == [
        (0, "failed 0", 1),
        (1, "failed 1", 1),
        (2, "failed 2", 1),
    ]
    assert all(letter.failed_at <= time.time() for letter in letters)
    assert len({letter.id for letter in letters}) == 3
    await assert_nothing_taken(layer, "tasks")
    assert await layer.replay_dead_letters("tasks", [letters[1].id]) == 1
    (replayed,) = await take(layer, "tasks", 5)
    assert replayed.message["n"] == 1 and replayed.attempt == 1
    assert [d.message["n"] for d in await layer.dead_letters("tasks")] == [0, 2]
    assert await layer.discard_dead_letters("tasks") == 2
    assert await layer.dead_letters("tasks") == []


async def test_dead_letters_of_one_channel_stay_apart_from_another(
    layer: BaseChannelLayer,
) -> None:
    await layer.send("a-tasks", {"type": "a"})
    (delivery,) = await take(layer, "a-tasks", lease=5)
    await layer.dead_letter("a-tasks", delivery.tag, "no")  # type: ignore[arg-type]
    assert await layer.dead_letters("b-tasks") == []
    assert await layer.replay_dead_letters("b-tasks") == 0
    assert len(await layer.dead_letters("a-tasks")) == 1


# -- delays ---------------------------------------------------------------------------


async def test_send_later_is_invisible_until_its_delay_has_passed(
    layer: BaseChannelLayer,
) -> None:
    started = time.monotonic()
    await layer.send_later("later-jobs", {"type": "late"}, 0.5)
    await layer.send("later-jobs", {"type": "now"})
    (first,) = await take(layer, "later-jobs")
    assert first.message["type"] == "now"
    (second,) = await take(layer, "later-jobs")
    assert second.message["type"] == "late"
    assert time.monotonic() - started >= 0.45


async def test_a_waiting_take_wakes_for_a_delayed_message(layer: BaseChannelLayer) -> None:
    waiting = asyncio.ensure_future(take(layer, "wake-jobs", 5))
    await asyncio.sleep(0.05)
    await layer.send_later("wake-jobs", {"type": "late"}, 0.3)
    assert [d.message["type"] for d in await waiting] == ["late"]


async def test_send_later_with_a_bad_delay_is_refused(layer: BaseChannelLayer) -> None:
    for bad in (-1, float("nan"), "soon"):
        with pytest.raises(ValueError, match="delay"):
            await layer.send_later("jobs", {"type": "x"}, bad)  # type: ignore[arg-type]


async def test_delayed_messages_keep_their_order_by_due_time(make_layer: LayerFactory) -> None:
    layer = make_layer(expiry=10)
    await layer.send_later("ordered-jobs", {"type": "n", "n": 2}, 0.4)
    await layer.send_later("ordered-jobs", {"type": "n", "n": 1}, 0.2)
    got = []
    while len(got) < 2:
        got += [d.message["n"] for d in await take(layer, "ordered-jobs", 5)]
    assert got == [1, 2]
