"""Classic (Channels 1) session decorators: channel_session, http_session,
channel_and_http_session, enforce_ordering; also importable from djwire.sessions."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

import djwire.sessions
from djwire.classic import sessions as classic_sessions
from djwire.classic.channel import Channel
from djwire.classic.message import Message
from djwire.classic.sessions import (
    channel_and_http_session,
    channel_session,
    enforce_ordering,
    http_session,
    session_for_reply_channel,
)


def test_channels_1_import_paths_give_the_classic_decorators() -> None:
    # Channels 1 code imports them from channels.sessions.
    for name in (
        "channel_session",
        "http_session",
        "channel_and_http_session",
        "enforce_ordering",
        "session_for_reply_channel",
    ):
        assert getattr(djwire.sessions, name) is getattr(classic_sessions, name)
    from djwire.sessions import channel_session as from_the_old_path

    assert from_the_old_path is channel_session
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        djwire.sessions.nonexistent  # noqa: B018


def classic_message(channel: str, reply: str = "websocket.send.test!abc", **content: Any) -> Any:
    return Message({"reply_channel": reply, **content}, channel, reply_channel=Channel(reply))


@pytest.mark.django_db
def test_channel_session_lives_as_long_as_the_reply_channel() -> None:
    seen = []

    @channel_session
    def consumer(message: Any) -> None:
        if message.channel.name == "websocket.connect":
            message.channel_session["room"] = "lobby"
        seen.append(message.channel_session.get("room"))

    consumer(classic_message("websocket.connect"))
    consumer(classic_message("websocket.receive", text="hi"))
    consumer(classic_message("websocket.receive", reply="websocket.send.other!xyz", text="hi"))
    assert seen == ["lobby", "lobby", None]


@pytest.mark.django_db
def test_channel_session_is_deleted_after_disconnect() -> None:
    @channel_session
    def consumer(message: Any) -> None:
        message.channel_session["here"] = True

    consumer(classic_message("websocket.connect"))
    key = session_for_reply_channel("websocket.send.test!abc").session_key
    assert SessionStore().exists(key)
    consumer(classic_message("websocket.disconnect", code=1000))
    assert not SessionStore().exists(key)


@pytest.mark.django_db
def test_channel_session_touches_no_storage_when_unused(
    django_assert_num_queries: Any,
) -> None:
    @channel_session
    def consumer(message: Any) -> None:
        assert message.channel_session is not None

    with django_assert_num_queries(0):
        consumer(classic_message("websocket.receive", text="x"))


def test_channel_session_key_is_not_derivable_without_the_secret_key(settings: Any) -> None:
    name = "websocket.send.test!abc"
    key = session_for_reply_channel(name).session_key
    assert key == session_for_reply_channel(name).session_key
    settings.SECRET_KEY = "another-secret"
    assert session_for_reply_channel(name).session_key != key


def test_channel_session_needs_a_reply_channel() -> None:
    @channel_session
    def consumer(message: Any) -> None:
        pass

    with pytest.raises(ValueError, match="reply_channel"):
        consumer(Message({}, "thumbnails"))


def test_channel_session_refuses_signed_cookie_sessions(settings: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    with pytest.raises(ValueError, match="signed_cookies"):
        session_for_reply_channel("websocket.send.x!y")


@pytest.mark.django_db
def test_http_session_comes_from_the_session_cookie_in_the_headers() -> None:
    store = SessionStore()
    store["colour"] = "teal"
    store.save()
    cookie = f"other=1; {settings.SESSION_COOKIE_NAME}={store.session_key}".encode()
    seen = []

    @http_session
    def consumer(message: Any) -> None:
        seen.append(message.http_session["colour"] if message.http_session else None)
        if message.http_session:
            message.http_session["colour"] = "plum"

    consumer(classic_message("websocket.connect", headers=[[b"cookie", cookie]]))
    consumer(classic_message("websocket.connect", headers=[]))
    assert seen == ["teal", None]
    assert SessionStore(store.session_key)["colour"] == "plum"


@pytest.mark.django_db
def test_channel_and_http_session_finds_the_http_session_after_connect() -> None:
    store = SessionStore()
    store["colour"] = "teal"
    store.save()
    cookie = f"{settings.SESSION_COOKIE_NAME}={store.session_key}".encode()
    seen = []

    @channel_and_http_session
    def consumer(message: Any) -> None:
        seen.append(message.http_session["colour"])

    consumer(classic_message("websocket.connect", headers=[[b"cookie", cookie]]))
    consumer(classic_message("websocket.receive", text="hi"))
    assert seen == ["teal", "teal"]


@pytest.mark.django_db
def test_channel_session_is_saved_even_when_the_consumer_raises() -> None:
    @channel_session
    def consumer(message: Any) -> None:
        message.channel_session["step"] = message["text"]
        if message["text"] == "boom":
            raise RuntimeError("consumer bug")

    with pytest.raises(RuntimeError):
        consumer(classic_message("websocket.receive", text="boom"))
    key = session_for_reply_channel("websocket.send.test!abc").session_key
    assert SessionStore(key)["step"] == "boom"


@pytest.mark.django_db
def test_enforce_ordering_gives_a_channel_session_and_needs_an_order() -> None:
    # djwire hands a connection's messages to consumers one at a time, in order, so
    # there is nothing to reorder; the decorator still opens the channel session.
    seen = []

    @enforce_ordering
    def consumer(message: Any) -> None:
        seen.append(message.channel_session is not None)

    consumer(classic_message("websocket.receive", text="x", order=1))
    assert seen == [True]
    with pytest.raises(ValueError, match="order"):
        consumer(classic_message("websocket.receive", text="x"))


def test_enforce_ordering_takes_parentheses_and_refuses_slight_as_channels_1() -> None:
    @enforce_ordering()
    def consumer(message: Any) -> None:
        pass

    assert callable(consumer)
    with pytest.raises(ValueError, match="Slight ordering"):
        enforce_ordering(slight=True)
