"""Smaller Channels 1.1 behaviours of the classic API: Message as a mutable mapping,
DenyConnection, and the class-based consumers' options."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import AsyncClient

from djwire.classic.app import ClassicWebsocketApp
from djwire.classic.channel import Channel
from djwire.classic.message import Message
from djwire.exceptions import DenyConnection
from djwire.generic.websockets import WebsocketConsumer
from djwire.routing import route, route_class
from djwire.testing import WebsocketCommunicator
from tests.classic.test_api import open_socket


def test_message_content_can_be_set_and_copies_are_deep() -> None:
    message = Message({"text": "a", "nested": {"n": 1}}, "websocket.receive")
    message["text"] = "b"
    assert message["text"] == "b"
    copy = message.copy()
    copy["nested"]["n"] = 2
    assert message["nested"] == {"n": 1}
    assert copy.channel.name == "websocket.receive"


async def test_deny_connection_from_a_connect_consumer_rejects_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(message: Any) -> None:
        raise DenyConnection()

    app = ClassicWebsocketApp([route("websocket.connect", refuse)])
    communicator = WebsocketCommunicator(app, "/")
    with caplog.at_level(logging.ERROR, logger="djwire.classic"):
        connected, _ = await communicator.connect()
    assert connected is False
    assert "DenyConnection" not in caplog.text
    await communicator.disconnect()


class Ordered(WebsocketConsumer):
    strict_ordering = True

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        self.send(text=f"{self.path} {self.message.channel_session is not None}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("cache_channel_sessions")
async def test_strict_ordering_gives_the_channel_session_and_path_is_set() -> None:
    communicator = await open_socket([route_class(Ordered, path=r"^/o/$")], "/o/")
    await communicator.send_to(text_data="x")
    assert await communicator.receive_from() == "/o/ True"
    await communicator.disconnect()


def test_slight_ordering_is_refused_as_in_channels_1() -> None:
    class Slight(WebsocketConsumer):
        slight_ordering = True

    message = Message({"path": "/", "reply_channel": "websocket.send.x!y"}, "websocket.connect")
    with pytest.raises(ValueError, match="Slight ordering"):
        Slight(message)


def test_as_route_makes_a_route_class_with_attributes_and_filters() -> None:
    entry = WebsocketConsumer.as_route(attrs={"groups": ["g"]}, path=r"^/r/$")
    assert entry.consumer.groups == ["g"]
    assert entry.consumer.__name__ == "WebsocketConsumer"
    assert issubclass(entry.consumer, WebsocketConsumer)
    assert entry.match("websocket.connect", {"path": "/r/"}) is not None
    assert WebsocketConsumer.as_route(path=r"^/r/$").consumer is WebsocketConsumer


class WhoWithSession(WebsocketConsumer):
    http_user_and_session = True

    def connect(self, message: Any, **kwargs: Any) -> None:
        message.reply_channel.send({"accept": True})

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        session = self.message.http_session
        self.send(text=f"{self.message.user.username} {session is not None and session['k']}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("cache_channel_sessions")
async def test_http_user_and_session_keeps_user_and_http_session_on_later_messages() -> None:
    user = await User.objects.acreate_user("ada", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value

    def remember() -> None:
        from django.contrib.sessions.backends.db import SessionStore

        store = SessionStore(key)
        store["k"] = "v"
        store.save()

    await sync_to_async(remember)()
    headers = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]
    communicator = await open_socket([route_class(WhoWithSession)], "/", headers=headers)
    await communicator.send_to(text_data="who")
    assert await communicator.receive_from() == "ada v"
    await communicator.disconnect()


def test_channel_reply_names_are_kept_on_the_message() -> None:
    message = Message({"reply_channel": "websocket.send.a!b"}, "websocket.connect")
    assert message.reply_channel == Channel("websocket.send.a!b")
