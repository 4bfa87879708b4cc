"""Django sessions for ASGI connections.

ASGI middleware (as in Django Channels 4):

* :class:`CookieMiddleware` parses the ``Cookie`` header into ``scope["cookies"]``;
* :class:`SessionMiddleware` puts a Django session store in ``scope["session"]``.
  Nothing is read from the session backend until the session is used. On HTTP, a
  modified session is saved and its cookie set on ``http.response.start``; on a
  WebSocket there is no response to carry a cookie, so save it yourself
  (``await scope["session"].asave()``).
* :func:`SessionMiddlewareStack` is the two together.

The classic (Channels 1) decorators ``channel_session``, ``http_session``,
``channel_and_http_session`` and ``enforce_ordering`` live in
:mod:`djwire.classic.sessions`; they can be imported from here too, as Channels 1
code does.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse
from django.utils.http import http_date

from djwire.session_lookup import cookies_from_headers, session_store_class
from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope

if TYPE_CHECKING:
    from djwire.classic.sessions import (
        channel_and_http_session,
        channel_session,
        enforce_ordering,
        http_session,
        session_for_reply_channel,
    )

__all__ = [
    "CookieMiddleware",
    "InstanceSessionWrapper",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "channel_and_http_session",
    "channel_session",
    "enforce_ordering",
    "http_session",
    "session_for_reply_channel",
]

#: Separates the fields of a comma-separated header such as Vary (RFC 9110 5.6.1).
_LIST_SEPARATOR = re.compile(r"\s*,\s*")


class CookieMiddleware:
    """Parse the request's cookies into ``scope["cookies"]`` (a ``{name: value}`` dict)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Any:
        if "headers" not in scope:
            raise ValueError(
                "CookieMiddleware was passed a scope that did not have a headers key "
                "(make sure it is only passed HTTP or WebSocket connections)"
            )
        return await self.inner(
            dict(scope, cookies=cookies_from_headers(scope["headers"])), receive, send
        )

    @classmethod
    def set_cookie(
        cls,
        message: dict[str, Any],
        key: str,
        value: str = "",
        max_age: int | float | datetime.timedelta | None = None,
        expires: str | datetime.datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = False,
        httponly: bool | None = False,
        samesite: str | bool | None = "lax",
    ) -> None:
        """Add a ``set-cookie`` header to an ``http.response.start`` message.

        Arguments mean what they mean for Django's ``HttpResponse.set_cookie``
        (``expires`` may be a string or a datetime); only ``samesite`` defaults to
        ``"lax"``, as in Django Channels.
        """
        # Django's response class formats cookies exactly as Django's views do.
        response = HttpResponse()
        response.set_cookie(
            key,
            str(value),
            max_age=max_age,  # type: ignore[arg-type]
            expires=expires,
            path=path,  # type: ignore[arg-type]
            domain=domain,
            secure=bool(secure),
            httponly=bool(httponly),
            # Django's SESSION_COOKIE_SAMESITE = False means no attribute.
            samesite=samesite or None,  # type: ignore[arg-type]
        )
        header = response.cookies[key].output(header="").strip()
        # ASGI response headers may arrive as a tuple; build a new list.
        message["headers"] = [*message.get("headers", ()), (b"set-cookie", header.encode())]

    @classmethod
    def delete_cookie(
        cls, message: dict[str, Any], key: str, path: str = "/", domain: str | None = None
    ) -> None:
        """Add a ``set-cookie`` header that makes the browser forget cookie ``key``."""
        cls.set_cookie(
            message,
            key,
            max_age=0,
            path=path,
            domain=domain,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
        )


def _add_vary_cookie(message: dict[str, Any]) -> None:
    """Mark the response as depending on the Cookie header, as Django does for
    responses that read the session, so shared caches keep users apart."""
    headers = list(message.get("headers", ()))
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            fields = [f.strip().lower() for f in _LIST_SEPARATOR.split(value.decode("latin1"))]
            if "cookie" not in fields and "*" not in fields:
                headers[index] = (name, value + b", Cookie")
            break
    else:
        headers.append((b"vary", b"Cookie"))
    message["headers"] = headers


class InstanceSessionWrapper:
    """The session of one connection: puts it in the scope and saves it on response."""

    #: Messages on which a modified session is saved.
    save_message_types: ClassVar[list[str]] = ["http.response.start"]
    #: Messages that can carry the session cookie back to the browser.
    cookie_response_message_types: ClassVar[list[str]] = ["http.response.start"]

    def __init__(self, scope: Scope, send: ASGISend) -> None:
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.session_store = session_store_class()
        self.scope = dict(scope)
        self.real_send = send
        # With a session middleware further out, that one owns saving.
        self.activated = "session" not in self.scope
        if self.activated and "cookies" not in self.scope:
            raise ValueError(
                "No cookies in scope - SessionMiddleware needs to run inside of CookieMiddleware."
            )

    async def resolve_session(self) -> None:
        """Attach the session store; its data is loaded only when first used."""
        if self.activated:
            self.scope["session"] = self.session_store(self.scope["cookies"].get(self.cookie_name))

    def send_for_scope(self) -> ASGISend:
        """The send to give the application: ours only where it can save something.

        A WebSocket has no message that saves the session, so its sends go straight
        to the server, without an extra call per frame.
        """
        protocol = self.scope.get("type", "")
        if self.activated and any(
            kind.startswith(protocol + ".") for kind in self.save_message_types
        ):
            return self.send
        return self.real_send

    async def send(self, message: dict[str, Any]) -> None:
        if self.activated and message["type"] in self.save_message_types:
            await self._save_and_set_cookie(message)
        await self.real_send(message)

    async def _save_and_set_cookie(self, message: dict[str, Any]) -> None:
        # As Django's SessionMiddleware.process_response.
        session: SessionBase = self.scope["session"]
        if session.accessed:
            _add_vary_cookie(message)
        if message.get("status", 200) >= 500:
            return
        sets_cookie = message["type"] in self.cookie_response_message_types
        if session.is_empty():
            if sets_cookie and self.cookie_name in self.scope["cookies"]:
                CookieMiddleware.delete_cookie(
                    message,
                    self.cookie_name,
                    path=settings.SESSION_COOKIE_PATH,
                    domain=settings.SESSION_COOKIE_DOMAIN,
                )
            return
        if not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return
        await self.save_session()
        if not sets_cookie:
            return
        if session.get_expire_at_browser_close():
            max_age: int | None = None
            expires: str | None = None
        else:
            max_age = session.get_expiry_age()
            expires = http_date(time.time() + max_age)
        CookieMiddleware.set_cookie(
            message,
            self.cookie_name,
            session.session_key or "",
            max_age=max_age,
            expires=expires,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE or None,
            httponly=settings.SESSION_COOKIE_HTTPONLY or None,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )

    async def save_session(self) -> None:
        try:
            await self.scope["session"].asave()
        except UpdateError:
            raise SuspiciousOperation(
                "The request's session was deleted before the request completed. The user "
                "may have logged out in a concurrent request, for example."
            ) from None


class SessionMiddleware:
    """Put the Django session named by the session cookie in ``scope["session"]``.

    Needs :class:`CookieMiddleware` outside it (or use :func:`SessionMiddlewareStack`).
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Any:
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, wrapper.send_for_scope())


def SessionMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # Channels' name
    """``CookieMiddleware(SessionMiddleware(inner))``."""
    return CookieMiddleware(SessionMiddleware(inner))


#: Classic (Channels 1) names that Channels 1 code imports from this module.
_CLASSIC_NAMES = frozenset(
    {
        "channel_and_http_session",
        "channel_session",
        "enforce_ordering",
        "http_session",
        "session_for_reply_channel",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CLASSIC_NAMES:
        from djwire.classic import sessions

        return getattr(sessions, name)
    raise AttributeError(f"module 'djwire.sessions' has no attribute {name!r}")
