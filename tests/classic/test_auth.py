"""Classic (Channels 1) auth decorators: the user from the browser's session, kept in
the channel session; also importable from djwire.auth."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.test import AsyncClient

import djwire.auth
from djwire.classic import auth as classic_auth
from djwire.classic.auth import (
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
)
from djwire.classic.channel import Channel
from djwire.classic.message import Message

pytestmark = pytest.mark.django_db(transaction=True)


async def make_user(name: str = "ada", password: str = "pw") -> User:
    return await User.objects.acreate_user(name, password=password)


async def browser_session_for(user: User) -> str:
    """The session cookie value of a browser logged in as ``user``."""
    client = AsyncClient()
    await client.aforce_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def cookie_header(key: str) -> list[list[bytes]]:
    return [[b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()]]


def test_channels_1_import_paths_give_the_classic_decorators() -> None:
    # Channels 1 code imports them from channels.auth.
    for name in (
        "channel_session_user",
        "channel_session_user_from_http",
        "channel_and_http_session_user_from_http",
        "http_session_user",
        "transfer_user",
    ):
        assert getattr(djwire.auth, name) is getattr(classic_auth, name)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        djwire.auth.nonexistent  # noqa: B018


def classic_message(channel: str, headers: Any = None, **content: Any) -> Message:
    reply = "websocket.send.auth!abc"
    if headers is not None:
        content["headers"] = headers
    return Message({"reply_channel": reply, **content}, channel, reply_channel=Channel(reply))


async def test_classic_user_moves_from_the_http_session_to_the_channel_session() -> None:
    user = await make_user()
    key = await browser_session_for(user)
    seen: list[str] = []

    @channel_session_user_from_http
    def connect(message: Any) -> None:
        seen.append(message.user.username)

    @channel_session_user
    def receive(message: Any) -> None:
        seen.append(message.user.username)

    headers = cookie_header(key)
    await sync_to_async(connect)(classic_message("websocket.connect", headers))
    await sync_to_async(receive)(classic_message("websocket.receive", text="hi"))
    await sync_to_async(receive)(classic_message("websocket.disconnect", code=1000))
    # After disconnect the channel session is gone: a late message is anonymous.
    await sync_to_async(receive)(classic_message("websocket.receive", text="late"))
    assert seen == ["ada", "ada", "ada", ""]


async def test_classic_http_session_user_is_anonymous_without_a_cookie() -> None:
    users: list[Any] = []

    @http_session_user
    def consumer(message: Any) -> None:
        users.append((message.user, message.http_session))

    await sync_to_async(consumer)(classic_message("websocket.connect", headers=[]))
    assert isinstance(users[0][0], AnonymousUser)
    assert users[0][1] is None


async def test_channel_and_http_session_user_from_http_keeps_both_sessions() -> None:
    user = await make_user()
    key = await browser_session_for(user)
    seen: list[tuple[str, str | None]] = []

    @channel_and_http_session_user_from_http
    def connect(message: Any) -> None:
        seen.append((message.user.username, message.http_session.session_key))

    await sync_to_async(connect)(classic_message("websocket.connect", cookie_header(key)))
    assert seen == [("ada", key)]
