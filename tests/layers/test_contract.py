"""The channel layer contract. Every backend must pass every test here, unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest

from djwire.exceptions import ChannelFull, InvalidChannelLayerError, InvalidNameError
from djwire.layers import BaseChannelLayer

from .backends import LayerFactory

pytestmark = pytest.mark.asyncio

TIMEOUT = 5


async def receive(layer: BaseChannelLayer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), TIMEOUT)


async def assert_nothing_for(layer: BaseChannelLayer, channel: str, wait: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), wait)


# -- point to point ---------------------------------------------------------------


async def test_send_then_receive_returns_an_equal_message(layer: BaseChannelLayer) -> None:
    message = {"type": "test.message", "text": "héllo", "bytes": b"\x00\xff", "n": [1, {"a": 2}]}
    await layer.send("test-channel", message)
    assert await receive(layer, "test-channel") == message


async def test_receive_waits_for_a_later_send(layer: BaseChannelLayer) -> None:
    waiting = asyncio.ensure_future(receive(layer, "later"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await layer.send("later", {"type": "x", "v": 1})
    assert (await waiting)["v"] == 1


async def test_messages_arrive_in_the_order_sent(layer: BaseChannelLayer) -> None:
    for n in range(10):
        await layer.send("ordered", {"type": "n", "n": n})
    assert [(await receive(layer, "ordered"))["n"] for _ in range(10)] == list(range(10))


async def test_sender_changing_its_dict_after_send_does_not_change_the_message(
    layer: BaseChannelLayer,
) -> None:
    message = {"type": "m", "items": [1]}
    await layer.send("isolated", message)
    message["items"].append(2)
    message["type"] = "changed"
    assert await receive(layer, "isolated") == {"type": "m", "items": [1]}


async def test_send_to_full_channel_raises_channel_full(layer: BaseChannelLayer) -> None:
    for n in range(10):  # the fixture's capacity
        await layer.send("full", {"type": "n", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send("full", {"type": "n", "n": 10})
    # What was queued is intact, and room frees up as messages are received.
    assert (await receive(layer, "full"))["n"] == 0
    await layer.send("full", {"type": "n", "n": 11})


async def test_channel_capacity_patterns_override_the_default(make_layer: LayerFactory) -> None:
    layer = make_layer(capacity=10, channel_capacity={"small.*": 2, re.compile(r"^big\."): 20})
    for n in range(2):
        await layer.send("small.one", {"type": "n", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send("small.one", {"type": "n"})
    for n in range(20):
        await layer.send("big.one", {"type": "n", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send("big.one", {"type": "n"})
    assert layer.get_capacity("other") == 10


async def test_messages_expire_after_expiry_seconds(make_layer: LayerFactory) -> None:
    layer = make_layer(expiry=1)
    await layer.send("expiring", {"type": "old"})
    await asyncio.sleep(2.1)
    await layer.send("expiring", {"type": "new"})
    assert (await receive(layer, "expiring"))["type"] == "new"
    await assert_nothing_for(layer, "expiring")


async def test_expired_messages_free_capacity(make_layer: LayerFactory) -> None:
    layer = make_layer(expiry=1, capacity=2)
    await layer.send("cap", {"type": "a"})
    await layer.send("cap", {"type": "b"})
    await asyncio.sleep(2.1)
    await layer.send("cap", {"type": "c"})
    assert (await receive(layer, "cap"))["type"] == "c"


async def test_new_channel_names_are_unique_valid_and_receivable(layer: BaseChannelLayer) -> None:
    names = {await layer.new_channel() for _ in range(50)}
    assert len(names) == 50
    name = names.pop()
    assert "!" in name
    assert layer.require_valid_channel_name(name)
    await layer.send(name, {"type": "hello"})
    assert (await receive(layer, name))["type"] == "hello"


async def test_new_channel_keeps_the_given_prefix(layer: BaseChannelLayer) -> None:
    name = await layer.new_channel(prefix="worker.")
    assert name.startswith("worker.")


async def test_concurrent_receivers_each_get_distinct_messages(layer: BaseChannelLayer) -> None:
    receivers = [asyncio.ensure_future(receive(layer, "shared")) for _ in range(5)]
    await asyncio.sleep(0.05)
    for n in range(5):
        await layer.send("shared", {"type": "n", "n": n})
    got = sorted(message["n"] for message in await asyncio.gather(*receivers))
    assert got == [0, 1, 2, 3, 4]


async def test_cancelled_receive_loses_no_message(layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    for round_ in range(20):
        pending = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.01 if round_ % 2 else 0)
        await layer.send(channel, {"type": "n", "n": round_})
        pending.cancel()
        try:
            message = await pending
        except asyncio.CancelledError:
            message = await receive(layer, channel)  # it must still be there
        assert message["n"] == round_
    await assert_nothing_for(layer, channel)


async def test_cancelled_receivers_give_messages_back_in_order(layer: BaseChannelLayer) -> None:
    # Two receivers wait on one channel; two messages arrive; both receivers are
    # cancelled (in either order) before they run. Nothing is lost, and what they
    # give back is received in the order it was sent.
    channel = await layer.new_channel()
    for later_first in (False, True):
        first, second = (asyncio.ensure_future(layer.receive(channel)) for _ in range(2))
        await asyncio.sleep(0.01)
        await layer.send(channel, {"type": "n", "n": 0})
        await layer.send(channel, {"type": "n", "n": 1})
        for task in (second, first) if later_first else (first, second):
            task.cancel()
        taken = []
        for task in (first, second):
            with contextlib.suppress(asyncio.CancelledError):
                taken.append((await task)["n"])
        given_back = [(await receive(layer, channel))["n"] for _ in range(2 - len(taken))]
        assert sorted(taken + given_back) == [0, 1]
        assert given_back == sorted(given_back)
    await assert_nothing_for(layer, channel)


async def test_cancelled_receive_loses_no_message_on_a_named_channel(
    layer: BaseChannelLayer,
) -> None:
    for round_ in range(10):
        pending = asyncio.ensure_future(layer.receive("named"))
        await asyncio.sleep(0.01)
        await layer.send("named", {"type": "n", "n": round_})
        pending.cancel()
        try:
            message = await pending
        except asyncio.CancelledError:
            message = await receive(layer, "named")
        assert message["n"] == round_


async def test_flush_empties_channels_and_groups(layer: BaseChannelLayer) -> None:
    await layer.send("flushed", {"type": "x"})
    await layer.group_add("flush-group", "flushed")
    await layer.flush()
    await layer.group_send("flush-group", {"type": "y"})
    await assert_nothing_for(layer, "flushed")


# -- groups --------------------------------------------------------------------------


async def test_group_send_reaches_every_member_once(layer: BaseChannelLayer) -> None:
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("room", channel)
    await layer.group_add("room", members[0])  # adding twice is one membership
    await layer.group_send("room", {"type": "chat.message", "text": "hi"})
    for channel in members:
        assert await receive(layer, channel) == {"type": "chat.message", "text": "hi"}
        await assert_nothing_for(layer, channel, 0.05)


async def test_group_discard_stops_delivery(layer: BaseChannelLayer) -> None:
    stay, leave = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", stay)
    await layer.group_add("g", leave)
    await layer.group_discard("g", leave)
    await layer.group_discard("g", "never-a-member")
    await layer.group_send("g", {"type": "x"})
    assert (await receive(layer, stay))["type"] == "x"
    await assert_nothing_for(layer, leave)


async def test_group_send_works_for_named_channels_too(layer: BaseChannelLayer) -> None:
    await layer.group_add("mixed", "plain-channel")
    await layer.group_send("mixed", {"type": "x"})
    assert (await receive(layer, "plain-channel"))["type"] == "x"


async def test_group_send_skips_a_full_member_without_raising(layer: BaseChannelLayer) -> None:
    full, fine = await layer.new_channel(), await layer.new_channel()
    for n in range(10):
        await layer.send(full, {"type": "fill", "n": n})
    await layer.group_add("g", full)
    await layer.group_add("g", fine)
    await layer.group_send("g", {"type": "news"})
    assert (await receive(layer, fine))["type"] == "news"
    assert [(await receive(layer, full))["type"] for _ in range(10)] == ["fill"] * 10
    await assert_nothing_for(layer, full)


async def test_group_send_to_an_empty_group_is_a_no_op(layer: BaseChannelLayer) -> None:
    await layer.group_send("nobody-here", {"type": "x"})


async def test_group_members_expire_after_group_expiry(make_layer: LayerFactory) -> None:
    layer = make_layer(group_expiry=1)
    channel = await layer.new_channel()
    await layer.group_add("short", channel)
    await asyncio.sleep(2.1)
    await layer.group_send("short", {"type": "x"})
    await assert_nothing_for(layer, channel)


async def test_group_add_refreshes_membership(make_layer: LayerFactory) -> None:
    layer = make_layer(group_expiry=2)
    channel = await layer.new_channel()
    await layer.group_add("refresh", channel)
    await asyncio.sleep(1.2)
    await layer.group_add("refresh", channel)
    await asyncio.sleep(1.2)
    await layer.group_send("refresh", {"type": "x"})
    assert (await receive(layer, channel))["type"] == "x"


async def test_group_channels_lists_live_members(make_layer: LayerFactory) -> None:
    layer = make_layer(group_expiry=1)
    old = await layer.new_channel()
    await layer.group_add("listed", old)
    await asyncio.sleep(2.1)
    new = [await layer.new_channel() for _ in range(2)]
    for channel in new:
        await layer.group_add("listed", channel)
    assert sorted(await layer.group_channels("listed")) == sorted(new)
    assert await layer.group_channels("empty-group") == []


async def test_group_messages_keep_order_per_member(layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("ordered-group", channel)
    for n in range(8):
        await layer.group_send("ordered-group", {"type": "n", "n": n})
    assert [(await receive(layer, channel))["n"] for _ in range(8)] == list(range(8))


# -- senders that never yield (backpressure) --------------------------------------------


async def _consume(layer: BaseChannelLayer, channel: str, count: int, got: list[int]) -> None:
    """A receiver as a consumer is: a few event-loop steps per message."""
    for _ in range(count):
        got.append((await layer.receive(channel))["n"])
        for _ in range(3):
            await asyncio.sleep(0)


async def test_a_receiver_that_keeps_up_gets_every_message_of_a_group_send_loop(
    make_layer: LayerFactory,
) -> None:
    layer = make_layer(capacity=100)
    channel = await layer.new_channel()
    await layer.group_add("loop", channel)
    got: list[int] = []
    receiver = asyncio.ensure_future(_consume(layer, channel, 1000, got))
    await asyncio.sleep(0.05)
    for n in range(1000):  # a handler's loop: nothing in it yields
        await layer.group_send("loop", {"type": "n", "n": n})
    await asyncio.wait_for(receiver, TIMEOUT)
    assert got == list(range(1000))
    assert layer.stats.dropped_full == 0


async def test_a_receiver_that_keeps_up_gets_every_message_of_a_send_loop(
    make_layer: LayerFactory,
) -> None:
    layer = make_layer(capacity=100)
    channel = await layer.new_channel()
    got: list[int] = []
    receiver = asyncio.ensure_future(_consume(layer, channel, 1000, got))
    await asyncio.sleep(0.05)
    for n in range(1000):  # raised ChannelFull at the 101st before pacing
        await layer.send(channel, {"type": "n", "n": n})
    await asyncio.wait_for(receiver, TIMEOUT)
    assert got == list(range(1000))


async def test_a_member_that_stops_reading_delays_a_send_loop_once_then_drops(
    make_layer: LayerFactory,
) -> None:
    layer = make_layer(capacity=10, backpressure_timeout=0.2)
    stuck, fine = await layer.new_channel(), await layer.new_channel()
    for channel in (stuck, fine):
        await layer.group_add("some-stuck", channel)
    first = asyncio.ensure_future(layer.receive(stuck))  # it read once, then stopped
    got: list[int] = []
    reader = asyncio.ensure_future(_consume(layer, fine, 200, got))
    await asyncio.sleep(0.05)
    for n in range(200):
        await asyncio.wait_for(layer.group_send("some-stuck", {"type": "n", "n": n}), TIMEOUT)
    await asyncio.wait_for(reader, TIMEOUT)
    assert (await first)["n"] == 0
    assert got == list(range(200))  # the stuck member never held the others back for good
    assert layer.stats.extra["backpressure_timeouts"] == 1  # waited for it once
    assert layer.stats.dropped_full == 200 - 1 - 10  # then dropped past its capacity, counted


async def test_backpressure_timeout_zero_turns_pacing_off(make_layer: LayerFactory) -> None:
    layer = make_layer(capacity=10, backpressure_timeout=0)
    channel = await layer.new_channel()
    await layer.group_add("unpaced", channel)
    receiver = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    for n in range(20):
        await layer.group_send("unpaced", {"type": "n", "n": n})
    assert (await receiver)["n"] == 0
    assert layer.stats.dropped_full == 20 - 1 - 10


@pytest.mark.parametrize("seconds", [-1, float("inf"), "1", None])
async def test_a_bad_backpressure_timeout_is_refused(make_layer: LayerFactory, seconds) -> None:
    with pytest.raises(InvalidChannelLayerError, match="backpressure_timeout must be"):
        make_layer(backpressure_timeout=seconds)


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "x" * 100, "ünïcode", 123, None, b"bytes"])
async def test_bad_channel_names_raise_invalid_name_error(layer: BaseChannelLayer, name) -> None:
    with pytest.raises(InvalidNameError):
        await layer.send(name, {"type": "x"})
    with pytest.raises(TypeError):  # Channels code catches TypeError
        await layer.send(name, {"type": "x"})


async def test_bad_name_errors_start_with_channels_wording(layer: BaseChannelLayer) -> None:
    with pytest.raises(TypeError, match=layer.invalid_name_error.format("Channel")):
        await layer.send("x" * 101, {"type": "x"})
    with pytest.raises(TypeError, match=layer.invalid_name_error.format("Group")):
        await layer.group_send("has space", {"type": "x"})


@pytest.mark.parametrize("name", ["", "has space", "a!b", "x" * 100, None])
async def test_bad_group_names_raise_invalid_name_error(layer: BaseChannelLayer, name) -> None:
    with pytest.raises(InvalidNameError):
        await layer.group_add(name, "channel")
    with pytest.raises(InvalidNameError):
        await layer.group_send(name, {"type": "x"})


async def test_non_dict_message_is_rejected(layer: BaseChannelLayer) -> None:
    with pytest.raises(TypeError):
        await layer.send("c", ["not", "a", "dict"])  # type: ignore[arg-type]
