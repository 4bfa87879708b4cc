"""``Message``: what a classic function consumer receives."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from djwire.layers import DEFAULT_CHANNEL_LAYER

from .channel import Channel


class Message:
    """A message's ``content`` plus the ``channel`` it arrived on and its ``reply_channel``.

    Decorators from :mod:`djwire.classic.sessions` and :mod:`djwire.classic.auth` add
    ``channel_session``, ``http_session`` and ``user``.
    """

    def __init__(
        self,
        content: dict[str, Any],
        channel_name: str,
        alias: str = DEFAULT_CHANNEL_LAYER,
        reply_channel: Channel | None = None,
    ) -> None:
        self.content = content
        self.channel = Channel(channel_name, alias=alias)
        self.channel_layer_alias = alias
        if reply_channel is None and content.get("reply_channel"):
            reply_channel = Channel(content["reply_channel"], alias=alias)
        self.reply_channel = reply_channel
        self.channel_session: Any = None
        self.http_session: Any = None
        self.user: Any = None

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.content[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.content

    def __iter__(self) -> Iterator[str]:
        return iter(self.content)

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def keys(self) -> Any:
        return self.content.keys()

    def items(self) -> Any:
        return self.content.items()

    def values(self) -> Any:
        return self.content.values()

    def copy(self) -> Message:
        """A copy whose content can be changed without touching this one's."""
        return Message(
            copy.deepcopy(self.content),
            self.channel.name,
            self.channel_layer_alias,
            self.reply_channel,
        )

    def __repr__(self) -> str:
        return f"<Message on {self.channel.name}>"
