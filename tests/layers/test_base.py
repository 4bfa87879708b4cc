"""The contract's own parts: what every layer inherits from BaseChannelLayer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from djwire.consumer import AsyncConsumer
from djwire.exceptions import StopConsumer
from djwire.layers import BaseChannelLayer, LayerStats, channel_layers
from djwire.layers.base import LOG_EVERY, count_loss
from djwire.testing import ApplicationCommunicator


class QueueLayer(BaseChannelLayer):
    """A third-party layer: send, receive and new_channel only, no claim_receive."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.received = 0

    def _queue(self, channel: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(channel, asyncio.Queue())

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self._queue(channel).put_nowait(message)

    async def receive(self, channel: str) -> dict[str, Any]:
        message = await self._queue(channel).get()
        self.received += 1
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}queue!{self.random_token()}"


class Echo(AsyncConsumer):
    async def chat_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "echo", "text": message["text"], "channel": self.channel_name})

    async def chat_stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


async def test_claim_receive_defaults_to_receive() -> None:
    layer = QueueLayer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "x"})
    assert await layer.claim_receive(channel) == {"type": "x"}
    assert layer.received == 1


async def test_a_layer_without_its_own_claim_receive_still_feeds_consumers() -> None:
    layer = QueueLayer()
    old = channel_layers.set("default", layer)
    try:
        communicator = ApplicationCommunicator(Echo.as_asgi(), {"type": "testing"})
        await communicator.send_input({"type": "chat.message", "text": "hello"})
        channel = (await communicator.receive_output())["channel"]
        await layer.send(channel, {"type": "chat.message", "text": "via the layer"})
        assert (await communicator.receive_output())["text"] == "via the layer"
        assert layer.received == 1
        await communicator.send_input({"type": "chat.stop"})
        await communicator.wait()
    finally:
        channel_layers.set("default", old)


def test_losses_are_counted_every_time_and_logged_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = LayerStats()
    log = logging.getLogger("djwire.layers.test")
    with caplog.at_level(logging.WARNING, logger="djwire.layers.test"):
        for _ in range(2 * LOG_EVERY):
            count_loss(stats, "dropped_full", log, "Dropped one for %s; %d so far", "ch")
        for _ in range(3):
            count_loss(stats, "malformed", log, "Skipped one; %d so far")
    assert stats.dropped_full == 2 * LOG_EVERY
    assert stats.extra == {"malformed": 3}
    assert [record.getMessage() for record in caplog.records] == [
        "Dropped one for ch; 1 so far",
        f"Dropped one for ch; {LOG_EVERY} so far",
        f"Dropped one for ch; {2 * LOG_EVERY} so far",
        "Skipped one; 1 so far",
    ]


# -- names: Channels 4.2+'s API -------------------------------------------------------


@pytest.mark.parametrize(
    "check, kind",
    [
        (BaseChannelLayer().require_valid_channel_name, "Channel"),
        (BaseChannelLayer().require_valid_group_name, "Group"),
    ],
)
@pytest.mark.parametrize("name", ["a" * 101, "¯\\_(ツ)_/¯", 42])
def test_a_bad_names_error_carries_invalid_name_error(check: Any, kind: str, name: Any) -> None:
    expected = BaseChannelLayer.invalid_name_error.format(kind)
    with pytest.raises(TypeError, match=expected) as raised:  # as projects' tests match it
        check(name)
    assert str(raised.value).startswith(expected)


def test_invalid_name_error_is_channels_text() -> None:
    assert BaseChannelLayer.invalid_name_error.format("Group") == (
        "Group name must be a valid unicode string with length < 100 containing only "
        "ASCII alphanumerics, hyphens, underscores, or periods."
    )


def test_a_subclass_may_reword_invalid_name_error() -> None:
    class Terse(BaseChannelLayer):
        invalid_name_error = "bad {} name."

    with pytest.raises(TypeError, match=r"^bad Channel name"):
        Terse().require_valid_channel_name("no spaces allowed")


@pytest.mark.parametrize(
    "method, good, replacement",
    [
        ("valid_channel_name", "valid-channel", "require_valid_channel_name"),
        ("valid_group_name", "valid-group", "require_valid_group_name"),
    ],
)
def test_deprecated_name_checks_still_work_and_warn(
    method: str, good: str, replacement: str
) -> None:
    check = getattr(BaseChannelLayer(), method)
    with pytest.warns(DeprecationWarning, match=f"{method} is deprecated") as warned:
        assert check(good) is True
    assert f"use {replacement} instead" in str(warned[0].message)
    assert warned[0].filename == __file__  # points at the caller, not at djwire
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        check("¯\\_(ツ)_/¯")


def test_require_valid_names_do_not_warn() -> None:
    import warnings

    layer = BaseChannelLayer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layer.require_valid_channel_name("fine.channel!abc")
        assert layer.require_valid_group_name("fine-group")
