"""The talk's chat, as written for Channels 1."""

from djwire import Group
from djwire.routing import route


def ws_connect(message):
    message.reply_channel.send({"accept": True})
    Group("chat").add(message.reply_channel)


def ws_message(message):
    Group("chat").send({"text": message.content["text"]})


def ws_disconnect(message):
    Group("chat").discard(message.reply_channel)


channel_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_message),
    route("websocket.disconnect", ws_disconnect),
]
