"""Django sessions for ASGI connections, and for classic function consumers.

ASGI middleware (as in Django Channels 4):

* :class:`CookieMiddleware` parses the ``Cookie`` header into ``scope["cookies"]``;
* :class:`SessionMiddleware` puts a Django session store in ``scope["session"]``.
  Nothing is read from the session backend until the session is used. On HTTP, a
  modified session is saved and its cookie set on ``http.response.start``; on a
  WebSocket there is no response to carry a cookie, so save it yourself
  (``await scope["session"].asave()``).
* :func:`SessionMiddlewareStack` is the two together.

Classic decorators (as in Django Channels 1) for function consumers:

* :func:`channel_session` gives ``message.channel_session``, a session that lives as
  long as the connection (keyed by its reply channel) and is saved when modified;
* :func:`http_session` gives ``message.http_session``, the browser's Django session
  found through the session cookie in the message's headers (or None);
* :func:`channel_and_http_session` gives both, remembering the HTTP session key from
  ``websocket.connect`` for the later messages of the connection.
"""

from __future__ import annotations

import datetime
import functools
import re
import time
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any, ClassVar, TypeVar, cast

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse, parse_cookie
from django.utils.crypto import salted_hmac
from django.utils.http import http_date

from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope

__all__ = [
    "CookieMiddleware",
    "InstanceSessionWrapper",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "channel_and_http_session",
    "channel_session",
    "http_session",
    "session_for_reply_channel",
]

F = TypeVar("F", bound=Callable[..., Any])

Headers = Iterable[tuple[bytes, bytes] | list[bytes]]

#: Separates the fields of a comma-separated header such as Vary (RFC 9110 5.6.1).
_LIST_SEPARATOR = re.compile(r"\s*,\s*")


def cookies_from_headers(headers: Headers) -> dict[str, str]:
    """Cookies from ASGI headers, as Django's ``request.COOKIES``.

    HTTP/2 and HTTP/3 may split cookies over several ``cookie`` fields, which are
    joined with ``"; "`` before parsing (RFC 9113 section 8.2.3).
    """
    values = [value.decode("latin1") for name, value in headers if name.lower() == b"cookie"]
    if not values:
        return {}
    return parse_cookie("; ".join(values))


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


def session_store_class(engine: str | None = None) -> type[SessionBase]:
    """The ``SessionStore`` of ``engine`` (default ``settings.SESSION_ENGINE``)."""
    module = import_module(engine or settings.SESSION_ENGINE)
    return cast(type[SessionBase], module.SessionStore)


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


# -- classic (Channels 1) decorators ------------------------------------------------------

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
        if message.http_session is None:
            if message.get("headers"):
                message.http_session = http_session_from_message(message)
                if message.http_session is not None:
                    message.channel_session[HTTP_SESSION_KEY_FIELD] = (
                        message.http_session.session_key
                    )
            else:
                stored = message.channel_session.get(HTTP_SESSION_KEY_FIELD)
                if stored:
                    message.http_session = session_store_class()(stored)
        result = func(message, *args, **kwargs)
        if message.http_session is not None and message.http_session.modified:
            message.http_session.save()
        return result

    return channel_session(cast(F, with_both))
