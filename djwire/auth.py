"""Django authentication for ASGI connections.

ASGI (as in Django Channels 4): :class:`AuthMiddleware` puts the session's user in
``scope["user"]``; :func:`get_user`, :func:`login` and :func:`logout` are coroutines
that do their database work in a thread, so they are safe to await from consumers.
After ``login()``/``logout()`` on a WebSocket, save the session yourself
(``await scope["session"].asave()``): there is no HTTP response to do it.

The classic (Channels 1) decorators ``http_session_user``, ``channel_session_user``,
``channel_session_user_from_http`` and ``channel_and_http_session_user_from_http``
live in :mod:`djwire.classic.auth`; they can be imported from here too, as Channels 1
code does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    user_logged_in,
    user_logged_out,
)
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject

from djwire.db import database_sync_to_async
from djwire.middleware import BaseMiddleware
from djwire.session_lookup import user_from_session
from djwire.sessions import CookieMiddleware, SessionMiddleware
from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope

if TYPE_CHECKING:
    from djwire.classic.auth import (
        channel_and_http_session_user_from_http,
        channel_session_user,
        channel_session_user_from_http,
        http_session_user,
        transfer_user,
    )

__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "channel_and_http_session_user_from_http",
    "channel_session_user",
    "channel_session_user_from_http",
    "get_user",
    "http_session_user",
    "login",
    "logout",
    "transfer_user",
]

_NO_SESSION = "Cannot find session in scope. You should wrap your consumer in SessionMiddleware."


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


#: Classic (Channels 1) names that Channels 1 code imports from this module.
_CLASSIC_NAMES = frozenset(
    {
        "channel_and_http_session_user_from_http",
        "channel_session_user",
        "channel_session_user_from_http",
        "http_session_user",
        "transfer_user",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CLASSIC_NAMES:
        from djwire.classic import auth

        return getattr(auth, name)
    raise AttributeError(f"module 'djwire.auth' has no attribute {name!r}")
