"""Classic (Channels 1) session decorators for function consumers.

* :func:`channel_session` gives ``message.channel_session``, a session that lives as
  long as the connection (keyed by its reply channel) and is saved when modified;
* :func:`http_session` gives ``message.http_session``, the browser's Django session
  found through the session cookie in the message's headers (or None);
* :func:`channel_and_http_session` gives both, remembering the HTTP session key from
  ``websocket.connect`` for the later messages of the connection;
* :func:`enforce_ordering` is kept for Channels 1 code: djwire already hands a
  connection's messages to consumers one at a time, in order.

Channels 1 code imports them from :mod:`djwire.sessions`, which hands them out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.utils.crypto import salted_hmac

from djwire.session_lookup import Headers, cookies_from_headers, session_store_class

__all__ = [
    "HTTP_SESSION_KEY_FIELD",
    "channel_and_http_session",
    "channel_session",
    "enforce_ordering",
    "http_session",
    "session_for_reply_channel",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Where channel_and_http_session keeps the HTTP session key in the channel session.
HTTP_SESSION_KEY_FIELD = "_djwire_http_session_key"


def session_for_reply_channel(reply_channel: str) -> SessionBase:
    """The (not yet loaded) session store tied to a reply channel.

    The key is an HMAC of the channel name under SECRET_KEY: the same channel always
    finds its session, but knowing a channel name does not reveal a usable session
    cookie. Uses ``settings.CHANNEL_SESSION_ENGINE``, default ``SESSION_ENGINE``.
    """
    engine = getattr(settings, "CHANNEL_SESSION_ENGINE", None) or settings.SESSION_ENGINE
    if engine == "django.contrib.sessions.backends.signed_cookies":
        raise ValueError(
            "channel sessions cannot use the signed_cookies session engine (there is no "
            "cookie to keep them in): set CHANNEL_SESSION_ENGINE to a server-side engine"
        )
    # The salt names the decorator's first home; kept so existing sessions are found.
    digest = salted_hmac(
        "djwire.sessions.channel_session", reply_channel, algorithm="sha256"
    ).hexdigest()
    return session_store_class(engine)("chn" + digest[:29])


def _persist_channel_session(session: SessionBase, key: str) -> None:
    """Save a modified channel session under its fixed key.

    Loading a key the store does not have makes Django forget the key (so a plain
    save would invent a random one); put it back and create the record instead.
    """
    if session.session_key is None:
        session._session_key = key
        try:
            session.save(must_create=True)
            return
        except CreateError:
            pass  # created meanwhile by another process: update it
    try:
        session.save()
    except UpdateError:
        session._session_key = key
        session.save(must_create=True)


def channel_session(func: F) -> F:
    """Give a classic consumer ``message.channel_session``, saved if modified.

    The session belongs to the connection (its reply channel): what ``websocket.connect``
    stores is there for ``websocket.receive`` and ``websocket.disconnect``. Nothing is
    read from the store unless the consumer uses the session, and the session is
    deleted after ``websocket.disconnect`` has been handled.
    """

    @functools.wraps(func)
    def with_channel_session(message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.channel_session is not None:
            # An outer decorator already opened it and will save it.
            return func(message, *args, **kwargs)
        if message.reply_channel is None:
            raise ValueError(
                "No reply_channel in the message; @channel_session can only be used on "
                "messages that have one"
            )
        session = session_for_reply_channel(message.reply_channel.name)
        key = cast(str, session.session_key)
        message.channel_session = session
        try:
            return func(message, *args, **kwargs)
        finally:
            # Saved even when the consumer raised, as in Channels 1.
            if message.channel.name == "websocket.disconnect":
                session.delete(key)  # the connection is gone; so is its session
            elif session.modified:
                _persist_channel_session(session, key)

    return cast(F, with_channel_session)


def _header_list(message: Any) -> Headers:
    headers = message.get("headers") or ()
    if isinstance(headers, dict):  # some old clients sent a mapping
        return [(k.encode("latin1") if isinstance(k, str) else k, v) for k, v in headers.items()]
    return cast(Headers, headers)


def http_session_from_message(message: Any) -> SessionBase | None:
    """The Django session named by the session cookie in a message's headers."""
    key = cookies_from_headers(_header_list(message)).get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    return session_store_class()(key)


def http_session(func: F) -> F:
    """Give a classic consumer ``message.http_session``: the browser's Django session
    from the session cookie in the message's ``headers`` (``websocket.connect``, HTTP
    messages), or None without a cookie. Saved after the consumer if modified."""

    @functools.wraps(func)
    def with_http_session(message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.http_session is not None:
            return func(message, *args, **kwargs)
        session = http_session_from_message(message)
        message.http_session = session
        result = func(message, *args, **kwargs)
        # Not saved when the consumer raised, as in Channels 1.
        if session is not None and session.modified:
            session.save()
        return result

    return cast(F, with_http_session)


def channel_and_http_session(func: F) -> F:
    """Both :func:`channel_session` and :func:`http_session` on every message.

    ``websocket.connect`` carries the cookie; its session key is kept in the channel
    session so later messages (which have no headers) find the same HTTP session.
    """

    @functools.wraps(func)
    def with_both(message: Any, *args: Any, **kwargs: Any) -> Any:
        loaded_here = False
        if message.http_session is None:
            if message.get("headers"):
                message.http_session = http_session_from_message(message)
            else:
                stored = message.channel_session.get(HTTP_SESSION_KEY_FIELD)
                if stored:
                    message.http_session = session_store_class()(stored)
            loaded_here = message.http_session is not None
        # Remember the key whoever loaded the session (an outer http_session may have).
        http_key = message.http_session.session_key if message.http_session else None
        if http_key and message.channel_session.get(HTTP_SESSION_KEY_FIELD) != http_key:
            message.channel_session[HTTP_SESSION_KEY_FIELD] = http_key
        result = func(message, *args, **kwargs)
        session = message.http_session
        if loaded_here and session is not None and session.modified:
            session.save()
        return result

    return channel_session(cast(F, with_both))


@overload
def enforce_ordering(func: F, *, slight: bool = False) -> F: ...
@overload
def enforce_ordering(func: None = None, *, slight: bool = False) -> Callable[[F], F]: ...
def enforce_ordering(func: F | None = None, *, slight: bool = False) -> F | Callable[[F], F]:
    """Channels 1's strict ordering for a connection's messages; with or without ().

    Channels 1 workers could run one socket's messages out of order; this decorator
    made them wait their turn. djwire runs them one at a time, in order, so it only
    does the rest of what Channels 1's did: it opens the channel session and requires
    the message's ``order`` key. ``slight=True`` is refused, as in Channels 1.1.
    """
    if slight:
        raise ValueError(
            "Slight ordering is now always on due to Channels changes. "
            "Please remove the decorator."
        )

    def decorator(consumer: F) -> F:
        @functools.wraps(consumer)
        def in_order(message: Any, *args: Any, **kwargs: Any) -> Any:
            if "order" not in message.content:
                raise ValueError(
                    "No `order` value in message; @enforce_ordering can only be used on "
                    "messages containing it."
                )
            return consumer(message, *args, **kwargs)

        return channel_session(cast(F, in_order))

    return decorator if func is None else decorator(func)
