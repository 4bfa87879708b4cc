"""The classic example of the foundation issue (issue 2, item 4), shared by the
communicator tests and the real-socket tests."""

from __future__ import annotations

from typing import Any

from djwire import Group
from djwire.routing import route


def connect_blog(message: Any, slug: str) -> None:
    message.reply_channel.send({"accept": True})
    Group("liveblog-" + slug).add(message.reply_channel)


def chat_connect(message: Any) -> None:
    # The talk's order: accept, then join. The accept is held until the consumer
    # returns (Channels 1 semantics), so the client is in the group once it is open.
    message.reply_channel.send({"accept": True})
    Group("chat").add(message.reply_channel)


def chat_receive(message: Any) -> None:
    Group("chat").send({"text": message.content["text"]})


channel_routing = [
    route("websocket.connect", connect_blog, path=r"^/liveblog/(?P<slug>[^/]+)/stream/$"),
    route("websocket.connect", chat_connect, path=r"^/chat/$"),
    route("websocket.receive", chat_receive, path=r"^/chat/$"),
]
