"""Find the Django session and user that a connection carries.

Shared by the ASGI middleware (:mod:`djwire.sessions`, :mod:`djwire.auth`) and the
classic decorators (:mod:`djwire.classic.sessions`, :mod:`djwire.classic.auth`), which
import it rather than each other, so the classic API stays on top of the core.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user as django_get_user
from django.contrib.sessions.backends.base import SessionBase
from django.http import parse_cookie

__all__ = ["Headers", "cookies_from_headers", "session_store_class", "user_from_session"]

#: ASGI headers, or a classic message's ``[name, value]`` lists.
Headers = Iterable[tuple[bytes, bytes] | list[bytes]]


def cookies_from_headers(headers: Headers) -> dict[str, str]:
    """Cookies from ASGI headers, as Django's ``request.COOKIES``.

    HTTP/2 and HTTP/3 may split cookies over several ``cookie`` fields, which are
    joined with ``"; "`` before parsing (RFC 9113 section 8.2.3).
    """
    values = [value.decode("latin1") for name, value in headers if name.lower() == b"cookie"]
    if not values:
        return {}
    return parse_cookie("; ".join(values))


def session_store_class(engine: str | None = None) -> type[SessionBase]:
    """The ``SessionStore`` of ``engine`` (default ``settings.SESSION_ENGINE``)."""
    module = import_module(engine or settings.SESSION_ENGINE)
    return cast(type[SessionBase], module.SessionStore)


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
