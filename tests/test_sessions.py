"""Cookies and Django sessions in the scope; classic channel and HTTP sessions."""

from __future__ import annotations

import datetime
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from djwire.generic.http import AsyncHttpConsumer
from djwire.generic.websocket import AsyncWebsocketConsumer
from djwire.sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack
from djwire.testing import HttpCommunicator, WebsocketCommunicator


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}


def set_cookies(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The cookies a browser would store from a response's headers, as morsels."""
    jar: SimpleCookie = SimpleCookie()
    for name, value in headers:
        if name.lower() == b"set-cookie":
            jar.load(value.decode("latin1"))
    return dict(jar)


async def echo_cookies(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send(
        {"type": "http.response.body", "body": repr(sorted(scope["cookies"].items())).encode()}
    )


# -- CookieMiddleware ----------------------------------------------------------------------


async def test_cookie_middleware_parses_the_cookie_header_into_scope() -> None:
    response = await HttpCommunicator(
        CookieMiddleware(echo_cookies), "GET", "/", headers=[(b"cookie", b"a=1; b=two")]
    ).get_response()
    assert response["body"] == repr([("a", "1"), ("b", "two")]).encode()


async def test_cookie_middleware_joins_several_cookie_headers() -> None:
    headers = [(b"cookie", b"a=1"), (b"host", b"x"), (b"cookie", b"b=2")]
    response = await HttpCommunicator(
        CookieMiddleware(echo_cookies), "GET", "/", headers=headers
    ).get_response()
    assert response["body"] == repr([("a", "1"), ("b", "2")]).encode()


async def test_cookie_middleware_gives_empty_cookies_without_a_header() -> None:
    response = await HttpCommunicator(CookieMiddleware(echo_cookies), "GET", "/").get_response()
    assert response["body"] == repr([]).encode()


async def test_cookie_middleware_rejects_a_scope_without_headers() -> None:
    with pytest.raises(ValueError, match="headers"):
        await CookieMiddleware(echo_cookies)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]


def test_set_cookie_writes_attributes_like_django() -> None:
    message: dict[str, Any] = {"type": "http.response.start", "headers": ((b"x", b"y"),)}
    CookieMiddleware.set_cookie(
        message, "flavour", "oat", max_age=60, domain="example.com", secure=True, httponly=True
    )
    assert message["headers"][0] == (b"x", b"y")
    morsel = set_cookies(message["headers"])["flavour"]
    assert morsel.value == "oat"
    assert morsel["max-age"] == "60"
    assert morsel["expires"]  # browsers without Max-Age support need Expires
    assert morsel["path"] == "/"
    assert morsel["domain"] == "example.com"
    assert morsel["secure"] and morsel["httponly"]
    assert morsel["samesite"] == "lax"


def test_set_cookie_turns_a_datetime_expiry_into_max_age() -> None:
    message: dict[str, Any] = {"type": "http.response.start"}
    in_an_hour = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    CookieMiddleware.set_cookie(message, "k", "v", expires=in_an_hour)
    assert 3590 <= int(set_cookies(message["headers"])["k"]["max-age"]) <= 3601


def test_set_cookie_rejects_a_bad_samesite() -> None:
    with pytest.raises(ValueError, match="samesite"):
        CookieMiddleware.set_cookie({}, "k", "v", samesite="sometimes")


def test_delete_cookie_expires_the_cookie_now() -> None:
    message: dict[str, Any] = {"type": "http.response.start"}
    CookieMiddleware.delete_cookie(message, "gone", path="/app")
    morsel = set_cookies(message["headers"])["gone"]
    assert morsel.value == ""
    assert morsel["max-age"] == "0"
    assert "1970" in morsel["expires"]
    assert morsel["path"] == "/app"


# -- SessionMiddleware over HTTP -----------------------------------------------------------


class SessionCounter(AsyncHttpConsumer):
    """Counts visits in the session; ?read only reads; ?flush empties it; ?fail is a 500."""

    async def handle(self, body: bytes) -> None:
        session = self.scope["session"]
        query = self.scope["query_string"]
        if query == b"read":
            visits = await session.aget("visits", 0)
        elif query == b"flush":
            await session.aflush()
            visits = 0
        else:
            visits = await session.aget("visits", 0) + 1
            await session.aset("visits", visits)
        status = 500 if query == b"fail" else 200
        await self.send_response(status, str(visits).encode())


class Untouched(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        self.scope["seen_session"] = self.scope["session"]
        await self.send_response(200, b"ok")


async def visit(query: str = "", cookie: str | None = None) -> dict[str, Any]:
    headers = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())] if cookie else []
    app = SessionMiddlewareStack(SessionCounter.as_asgi())
    return await HttpCommunicator(app, "GET", "/?" + query, headers=headers).get_response()


@pytest.mark.django_db(transaction=True)
async def test_a_modified_session_is_saved_and_its_cookie_set_on_the_response() -> None:
    first = await visit()
    assert first["body"] == b"1"
    morsel = set_cookies(first["headers"])[settings.SESSION_COOKIE_NAME]
    assert morsel["httponly"]
    assert int(morsel["max-age"]) == settings.SESSION_COOKIE_AGE
    stored = SessionStore(morsel.value)
    assert await stored.aget("visits") == 1
    second = await visit(cookie=morsel.value)
    assert second["body"] == b"2"
    assert (b"vary", b"Cookie") in second["headers"]


@pytest.mark.django_db(transaction=True)
async def test_a_session_only_read_sets_no_cookie() -> None:
    key = set_cookies((await visit())["headers"])[settings.SESSION_COOKIE_NAME].value
    response = await visit("read", cookie=key)
    assert response["body"] == b"1"
    assert set_cookies(response["headers"]) == {}


@pytest.mark.django_db(transaction=True)
async def test_a_session_is_not_saved_on_a_server_error() -> None:
    response = await visit("fail")
    assert response["status"] == 500
    assert set_cookies(response["headers"]) == {}


@pytest.mark.django_db(transaction=True)
async def test_an_emptied_session_deletes_the_cookie() -> None:
    key = set_cookies((await visit())["headers"])[settings.SESSION_COOKIE_NAME].value
    response = await visit("flush", cookie=key)
    morsel = set_cookies(response["headers"])[settings.SESSION_COOKIE_NAME]
    assert morsel.value == "" and morsel["max-age"] == "0"
    assert not await SessionStore().aexists(key)


@pytest.mark.django_db(transaction=True)
async def test_save_every_request_refreshes_an_unmodified_session(settings: Any) -> None:
    key = set_cookies((await visit())["headers"])[settings.SESSION_COOKIE_NAME].value
    settings.SESSION_SAVE_EVERY_REQUEST = True
    response = await visit("read", cookie=key)
    assert set_cookies(response["headers"])[settings.SESSION_COOKIE_NAME].value == key


async def test_an_unused_session_is_never_loaded() -> None:
    # No django_db mark: any database access would fail this test.
    app = SessionMiddlewareStack(Untouched.as_asgi())
    communicator = HttpCommunicator(
        app, "GET", "/", headers=[(b"cookie", b"sessionid=abcdefghijklmnopqrstuvwxyz012345")]
    )
    response = await communicator.get_response()
    assert response["status"] == 200
    assert set_cookies(response["headers"]) == {}
    assert (b"vary", b"Cookie") not in response["headers"]


async def test_session_middleware_needs_cookie_middleware() -> None:
    communicator = HttpCommunicator(SessionMiddleware(Untouched.as_asgi()), "GET", "/")
    with pytest.raises(ValueError, match="CookieMiddleware"):
        await communicator.get_response()


@pytest.mark.django_db(transaction=True)
async def test_nested_session_middleware_saves_once_through_the_outer_one() -> None:
    app = SessionMiddlewareStack(SessionMiddlewareStack(SessionCounter.as_asgi()))
    response = await HttpCommunicator(app, "GET", "/").get_response()
    cookies = [n for n, _ in response["headers"] if n == b"set-cookie"]
    assert len(cookies) == 1


# -- SessionMiddleware on a WebSocket ------------------------------------------------------


class RememberingSocket(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        session = self.scope["session"]
        await self.send(text_data=str(await session.aget("name")))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.scope["session"].aset("name", text_data)
        await self.scope["session"].asave()
        await self.send(text_data="saved")


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_sees_the_browser_session_and_can_save_it() -> None:
    store = SessionStore()
    await store.aset("name", "ada")
    await store.asave()
    cookie = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={store.session_key}".encode())]
    communicator = WebsocketCommunicator(
        SessionMiddlewareStack(RememberingSocket.as_asgi()), "/ws/", headers=cookie
    )
    assert (await communicator.connect())[0]
    assert await communicator.receive_from() == "ada"
    await communicator.send_to(text_data="grace")
    assert await communicator.receive_from() == "saved"
    await communicator.disconnect()
    assert await SessionStore(store.session_key).aget("name") == "grace"


async def test_a_websocket_sends_straight_to_the_server_without_a_session_wrapper() -> None:
    sends: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        sends.append(send)

    async def server_send(message: Any) -> None:
        pass

    scope = {"type": "websocket", "headers": [], "path": "/"}
    await SessionMiddlewareStack(app)(scope, None, server_send)  # type: ignore[arg-type]
    await SessionMiddlewareStack(app)(dict(scope, type="http"), None, server_send)  # type: ignore[arg-type]
    assert sends[0] is server_send
    assert sends[1] is not server_send
