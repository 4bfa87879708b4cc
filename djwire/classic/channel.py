"""``Channel`` and ``Group``: synchronous handles on the channel layer (classic API).

Usable from any synchronous code — function consumers, views, ``Model.save()``,
management commands. From async code, ``await`` the ``a``-prefixed variants. Inside a
classic consumer, sends are held until it finishes (:mod:`djwire.classic.held`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync

from djwire.exceptions import InvalidChannelLayerError
from djwire.layers import DEFAULT_CHANNEL_LAYER, BaseChannelLayer, get_channel_layer

from .held import current as current_held_sends


def _check_content(content: object) -> None:
    if not isinstance(content, dict):
        raise TypeError(f"You can only send dicts as content, not {type(content).__name__}")


def _layer(alias: str, layer: BaseChannelLayer | None) -> BaseChannelLayer:
    if layer is not None:
        return layer
    found = get_channel_layer(alias)
    if found is None:
        raise InvalidChannelLayerError(
            f"No channel layer {alias!r} is configured: add it to settings.CHANNEL_LAYERS"
        )
    return found


class _Named:
    """A name on a channel layer (by alias, or a given layer instance)."""

    def __init__(
        self,
        name: str,
        alias: str = DEFAULT_CHANNEL_LAYER,
        channel_layer: BaseChannelLayer | None = None,
    ) -> None:
        if isinstance(name, bytes):
            name = name.decode("ascii")
        self.name = name
        self.alias = alias
        self._layer = channel_layer

    @property
    def channel_layer(self) -> BaseChannelLayer:
        return _layer(self.alias, self._layer)


class Channel(_Named):
    """A named channel; ``send()`` puts a message on it."""

    def __init__(
        self,
        name: str,
        alias: str = DEFAULT_CHANNEL_LAYER,
        channel_layer: BaseChannelLayer | None = None,
    ) -> None:
        super().__init__(name, alias, channel_layer)
        # Set by the classic WebSocket app on a connection's reply channel, so groups
        # joined through Group.add() are left automatically at disconnect.
        self.on_group_add: Callable[[str], None] | None = None

    def send(
        self, content: dict[str, Any], immediately: bool = False, *, delay: float | None = None
    ) -> None:
        """Send ``content`` (a dict): ``Channel("thumbnails").send({"id": photo.id})``.

        Inside a classic consumer the send is held until the consumer finishes, unless
        ``immediately`` is true; outside one it is sent at once (see
        :mod:`djwire.classic.held`). ``delay`` (seconds) makes the message visible
        to the channel's workers only that much later (named channels only).
        """
        _check_content(content)
        send = self.asend if delay is None else functools.partial(self.asend, delay=delay)
        held = current_held_sends()
        if held is None or immediately:
            async_to_sync(send)(content)
        else:
            held.hold(send, f"Channel {self.name!r}", content)

    async def asend(self, content: dict[str, Any], *, delay: float | None = None) -> None:
        """Send ``content`` at once (async code is never inside a classic consumer);
        ``delay`` as for :meth:`send`."""
        _check_content(content)
        if delay is None:
            await self.channel_layer.send(self.name, content)
        else:
            await self.channel_layer.send_later(self.name, content, delay)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Channel {self.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Channel) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def _channel_name(channel: Channel | str) -> str:
    if isinstance(channel, Channel):
        return channel.name
    if isinstance(channel, bytes):
        return channel.decode("ascii")
    return channel


class Group(_Named):
    """A named group of channels; ``send()`` reaches every member."""

    def add(self, channel: Channel | str) -> None:
        async_to_sync(self.aadd)(channel)

    async def aadd(self, channel: Channel | str) -> None:
        await self.channel_layer.group_add(self.name, _channel_name(channel))
        if isinstance(channel, Channel) and channel.on_group_add is not None:
            channel.on_group_add(self.name)

    def discard(self, channel: Channel | str) -> None:
        async_to_sync(self.adiscard)(channel)

    async def adiscard(self, channel: Channel | str) -> None:
        await self.channel_layer.group_discard(self.name, _channel_name(channel))

    def send(self, content: dict[str, Any], immediately: bool = False) -> None:
        """Send ``content`` to every member. ``{"text": ...}`` goes to WebSockets.

        Held until the classic consumer making it finishes, as :meth:`Channel.send`.
        """
        _check_content(content)
        held = current_held_sends()
        if held is None or immediately:
            async_to_sync(self.asend)(content)
        else:
            held.hold(self.asend, f"Group {self.name!r}", content)

    async def asend(self, content: dict[str, Any]) -> None:
        """Send ``content`` to every member at once."""
        _check_content(content)
        await self.channel_layer.group_send(self.name, content)

    def channel_names(self) -> list[str]:
        """The group's current members (needs a layer with group listing)."""
        return async_to_sync(self.channel_layer.group_channels)(self.name)

    def __repr__(self) -> str:
        return f"<Group {self.name}>"
