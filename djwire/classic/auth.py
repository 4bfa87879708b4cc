"""Classic (Channels 1) auth decorators for function consumers.

:func:`http_session_user` (user from the browser's session cookie),
:func:`channel_session_user` (user kept in the connection's channel session),
:func:`channel_session_user_from_http` (on ``websocket.connect``: copy the user from
the browser session into the channel session) and
:func:`channel_and_http_session_user_from_http` (the same, keeping the HTTP session for
the connection's later messages too). Each sets ``message.user``.

Channels 1 code imports them from :mod:`djwire.auth`, which hands them out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase

from djwire.session_lookup import user_from_session

from .sessions import channel_and_http_session, channel_session, http_session

__all__ = [
    "channel_and_http_session_user_from_http",
    "channel_session_user",
    "channel_session_user_from_http",
    "http_session_user",
    "transfer_user",
]

F = TypeVar("F", bound=Callable[..., Any])

_AUTH_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)


def transfer_user(from_session: SessionBase, to_session: SessionBase) -> None:
    """Copy the logged-in user (id, backend, hash) from one session to another."""
    if all(key in from_session for key in _AUTH_KEYS):
        for key in _AUTH_KEYS:
            to_session[key] = from_session[key]


def http_session_user(func: F) -> F:
    """Give a classic consumer ``message.http_session`` and ``message.user``
    (``AnonymousUser`` without a session cookie)."""

    @functools.wraps(func)
    def with_user(message: Any, *args: Any, **kwargs: Any) -> Any:
        message.user = user_from_session(message.http_session)
        return func(message, *args, **kwargs)

    return http_session(cast(F, with_user))


def channel_session_user(func: F) -> F:
    """Give a classic consumer ``message.channel_session`` and ``message.user``, the
    user kept in the channel session (see :func:`channel_session_user_from_http`)."""

    @functools.wraps(func)
    def with_user(message: Any, *args: Any, **kwargs: Any) -> Any:
        message.user = user_from_session(message.channel_session)
        return func(message, *args, **kwargs)

    return channel_session(cast(F, with_user))


def channel_session_user_from_http(func: F) -> F:
    """For ``websocket.connect``: take the user from the browser's session cookie,
    keep it in the channel session for the connection's later messages (read them
    with :func:`channel_session_user`), and set ``message.user``."""

    @functools.wraps(func)
    def with_transfer(message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(message, *args, **kwargs)

    return http_session_user(channel_session(cast(F, with_transfer)))


def channel_and_http_session_user_from_http(func: F) -> F:
    """As :func:`channel_session_user_from_http`, and ``message.http_session`` on every
    message of the connection (see
    :func:`~djwire.classic.sessions.channel_and_http_session`)."""

    @functools.wraps(func)
    def with_transfer(message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(message, *args, **kwargs)

    return http_session_user(channel_and_http_session(cast(F, with_transfer)))
