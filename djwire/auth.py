"""Django authentication for ASGI connections, and for classic function consumers.

ASGI (as in Django Channels 4): :class:`AuthMiddleware` puts the session's user in
``scope["user"]``; :func:`get_user`, :func:`login` and :func:`logout` are coroutines
that do their database work in a thread, so they are safe to await from consumers.
After ``login()``/``logout()`` on a WebSocket, save the session yourself
(``await scope["session"].asave()``): there is no HTTP response to do it.

Classic decorators (as in Django Channels 1) for function consumers:
:func:`http_session_user` (user from the browser's session cookie),
:func:`channel_session_user` (user kept in the connection's channel session) and
:func:`channel_session_user_from_http` (on ``websocket.connect``: copy the user from
the browser session into the channel session).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    user_logged_in,
    user_logged_out,
)
from django.contrib.auth import get_user as django_get_user
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject

from djwire.db import database_sync_to_async
from djwire.middleware import BaseMiddleware
from djwire.sessions import CookieMiddleware, SessionMiddleware, channel_session, http_session
from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope

__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "channel_session_user",
    "channel_session_user_from_http",
    "get_user",
    "http_session_user",
    "login",
    "logout",
]

F = TypeVar("F", bound=Callable[..., Any])

_NO_SESSION = "Cannot find session in scope. You should wrap your consumer in SessionMiddleware."


class _SessionOnly:
    """What Django's auth functions need of a request here: its session."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session


def user_from_session(session: SessionBase | None) -> Any:
    """The user a session is logged in as, or ``AnonymousUser`` (blocking: DB access).

    Django's own ``get_user`` does the work, so session-hash checks, rotated
    SECRET_KEY_FALLBACKS and custom backends behave exactly as for views.
    """
    if session is None:
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return django_get_user(_SessionOnly(session))  # type: ignore[arg-type]


def _require_session(scope: Scope) -> SessionBase:
    if "session" not in scope:
        raise ValueError(_NO_SESSION)
    return cast(SessionBase, scope["session"])


async def get_user(scope: Scope) -> Any:
    """The user of ``scope["session"]``, or ``AnonymousUser``."""
    session = _require_session(scope)
    return await database_sync_to_async(user_from_session)(session)


def _backend_for(user: Any, backend: str | None) -> str:
    backend = backend or getattr(user, "backend", None)
    if backend is None:
        backends = list(settings.AUTHENTICATION_BACKENDS)
        if len(backends) != 1:
            raise ValueError(
                "You have multiple authentication backends configured and therefore must "
                "provide the `backend` argument or set the `backend` attribute on the user."
            )
        return backends[0]
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a dotted import path string (got {backend!r}).")
    return backend


def _login(scope: Scope, user: Any, backend: str | None) -> None:
    session = _require_session(scope)
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError("User must be passed as an argument or must be present in the scope.")
    session_auth_hash = ""
    if hasattr(user, "get_session_auth_hash"):
        session_auth_hash = user.get_session_auth_hash()
    if SESSION_KEY in session:
        stored_pk = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        if stored_pk != user.pk or (
            session_auth_hash
            and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), session_auth_hash)
        ):
            # Never carry another user's session data over: start an empty session.
            session.flush()
    else:
        # A new key on login defeats session fixation.
        session.cycle_key()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = _backend_for(user, backend)
    session[HASH_SESSION_KEY] = session_auth_hash
    scope["user"] = user
    # There is no request object on a socket; Channels sends None too.
    user_logged_in.send(sender=user.__class__, request=None, user=user)


async def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` in on ``scope["session"]`` and set ``scope["user"]``.

    Data of an anonymous session is kept; a session of a different user is
    emptied first. Does not save the session (HTTP responses save it for you).
    """
    await database_sync_to_async(_login)(scope, user, backend)


def _logout(scope: Scope) -> None:
    from django.contrib.auth.models import AnonymousUser

    session = _require_session(scope)
    user = scope.get("user")
    if getattr(user, "is_authenticated", True) is False:
        user = None
    if user is not None:
        # Sent before flushing so receivers can still see who logged out.
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        scope["user"] = AnonymousUser()


async def logout(scope: Scope) -> None:
    """Flush ``scope["session"]`` and make ``scope["user"]`` anonymous."""
    await database_sync_to_async(_logout)(scope)


if TYPE_CHECKING:
    _LazyUser = LazyObject[Any]
else:
    _LazyUser = LazyObject


class UserLazyObject(_LazyUser):
    """``scope["user"]`` until AuthMiddleware has resolved it."""

    def _setup(self) -> None:
        raise ValueError("Accessing scope user before it is ready.")


class AuthMiddleware(BaseMiddleware):
    """Put the session's user in ``scope["user"]``; needs SessionMiddleware outside it.

    The user is loaded (in a thread) before the inner application starts, so
    consumers can read ``self.scope["user"]`` without touching the database.
    """

    def populate_scope(self, scope: Scope) -> None:
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware cannot find session in scope. SessionMiddleware must be above it."
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        user = scope["user"]
        if isinstance(user, UserLazyObject):
            user._wrapped = await get_user(scope)

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Any:
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        return await self.inner(scope, receive, send)


def AuthMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # Channels' name
    """``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))


# -- classic (Channels 1) decorators ------------------------------------------------------

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
