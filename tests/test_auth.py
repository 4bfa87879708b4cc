"""scope["user"] from the session; login/logout/get_user; classic user decorators."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY, user_logged_in, user_logged_out
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.db import SessionStore
from django.test import AsyncClient

from djwire.auth import (
    AuthMiddleware,
    AuthMiddlewareStack,
    UserLazyObject,
    get_user,
    login,
    logout,
)
from djwire.generic.websocket import AsyncJsonWebsocketConsumer
from djwire.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}


async def make_user(name: str = "ada", password: str = "pw") -> User:
    return await User.objects.acreate_user(name, password=password)


async def browser_session_for(user: User) -> str:
    """The session cookie value of a browser logged in as ``user``."""
    client = AsyncClient()
    await client.aforce_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def cookie_header(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]


class WhoAmI(AsyncJsonWebsocketConsumer):
    """Says who the scope's user is; {"login": name} / {"logout": 1} change it."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": self.scope["user"].username})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if "login" in content:
            user = await User.objects.aget(username=content["login"])
            await login(self.scope, user)
        else:
            await logout(self.scope)
        await self.scope["session"].asave()
        await self.send_json(
            {"user": self.scope["user"].username, "session": self.scope["session"].session_key}
        )


async def connect_as(key: str | None) -> tuple[WebsocketCommunicator, Any]:
    headers = cookie_header(key) if key else []
    communicator = WebsocketCommunicator(AuthMiddlewareStack(WhoAmI.as_asgi()), "/", headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, (await communicator.receive_json_from())["user"]


async def test_scope_user_is_the_browser_sessions_user() -> None:
    user = await make_user()
    communicator, name = await connect_as(await browser_session_for(user))
    assert name == "ada"
    await communicator.disconnect()


async def test_scope_user_is_anonymous_without_a_session() -> None:
    communicator, name = await connect_as(None)
    assert name == ""
    await communicator.disconnect()


async def test_a_changed_password_logs_the_socket_out() -> None:
    user = await make_user()
    key = await browser_session_for(user)
    user.set_password("new")
    await user.asave()
    communicator, name = await connect_as(key)
    assert name == ""
    await communicator.disconnect()


async def test_login_on_a_socket_stores_the_user_and_fires_the_signal() -> None:
    await make_user("grace")
    logged_in: list[Any] = []

    def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        logged_in.append((request, user.username))

    user_logged_in.connect(on_login)
    try:
        communicator, name = await connect_as(None)
        assert name == ""
        await communicator.send_json_to({"login": "grace"})
        reply = await communicator.receive_json_from()
    finally:
        user_logged_in.disconnect(on_login)
    assert reply["user"] == "grace"
    assert logged_in == [(None, "grace")]
    stored = SessionStore(reply["session"])
    assert await stored.aget(SESSION_KEY) is not None
    # A browser presenting that session is now grace too.
    other, name = await connect_as(reply["session"])
    assert name == "grace"
    await communicator.disconnect()
    await other.disconnect()


async def test_logout_flushes_the_session_and_fires_the_signal() -> None:
    user = await make_user()
    key = await browser_session_for(user)
    logged_out: list[str] = []

    def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        logged_out.append(user.username)

    user_logged_out.connect(on_logout)
    try:
        communicator, name = await connect_as(key)
        assert name == "ada"
        await communicator.send_json_to({"logout": 1})
        reply = await communicator.receive_json_from()
    finally:
        user_logged_out.disconnect(on_logout)
    assert reply["user"] == ""
    assert logged_out == ["ada"]
    assert not await SessionStore().aexists(key)
    await communicator.disconnect()


async def test_login_keeps_anonymous_data_but_not_another_users() -> None:
    ada, grace = await make_user("ada"), await make_user("grace")
    session = SessionStore()
    await session.aset("cart", [1, 2])
    scope: dict[str, Any] = {"session": session}
    await login(scope, ada)
    assert await session.aget("cart") == [1, 2]
    assert scope["user"] == ada
    await login(scope, grace)
    assert await session.aget("cart") is None
    assert (await get_user(scope)) == grace


async def test_login_needs_a_backend_when_several_are_configured(settings: Any) -> None:
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "django.contrib.auth.backends.AllowAllUsersModelBackend",
    ]
    user = await make_user()
    scope: dict[str, Any] = {"session": SessionStore()}
    with pytest.raises(ValueError, match="multiple authentication backends"):
        await login(scope, user)
    await login(scope, user, backend="django.contrib.auth.backends.AllowAllUsersModelBackend")
    assert (await get_user(scope)) == user


async def test_login_takes_the_scope_user_when_none_is_given() -> None:
    user = await make_user()
    scope: dict[str, Any] = {"session": SessionStore(), "user": user}
    await login(scope, None)
    assert (await get_user(scope)) == user
    with pytest.raises(ValueError, match="User must be passed"):
        await login({"session": SessionStore()}, None)


async def test_functions_explain_a_missing_session() -> None:
    for call in (get_user({}), login({}, AnonymousUser()), logout({})):
        with pytest.raises(ValueError, match="SessionMiddleware"):
            await call


async def test_auth_middleware_needs_session_middleware() -> None:
    communicator = WebsocketCommunicator(AuthMiddleware(WhoAmI.as_asgi()), "/")
    with pytest.raises(ValueError, match="SessionMiddleware must be above it"):
        await communicator.connect()


def test_an_unresolved_scope_user_explains_itself() -> None:
    with pytest.raises(ValueError, match="before it is ready"):
        _ = UserLazyObject().username
