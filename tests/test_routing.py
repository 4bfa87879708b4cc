"""Routers: by protocol type, by URL path (path()/re_path(), nesting), by channel name."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path, re_path

from djwire.classic.app import ClassicWebsocketApp
from djwire.consumer import AsyncConsumer
from djwire.exceptions import RouteNotFound
from djwire.generic.http import AsyncHttpConsumer
from djwire.generic.websocket import AsyncJsonWebsocketConsumer
from djwire.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
    get_default_application,
    route,
)
from djwire.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


@pytest.fixture(autouse=True)
def fresh_layers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}}


class Where(AsyncJsonWebsocketConsumer):
    """Tells the client which route it got and what the router put in the scope."""

    name = "?"

    async def connect(self) -> None:
        await self.accept()
        route = self.scope["url_route"]
        await self.send_json(
            {"name": self.name, "args": list(route["args"]), "kwargs": route["kwargs"]}
        )


class HttpWhere(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        await self.send_response(200, b"http")


def where(name: str) -> Any:
    return Where.as_asgi(name=name)


async def route_of(app: Any, url: str, **scope: Any) -> Any:
    communicator = WebsocketCommunicator(app, url)
    communicator.scope.update(scope)
    connected, _ = await communicator.connect()
    assert connected
    reply = await communicator.receive_json_from()
    await communicator.disconnect()
    return reply


async def test_path_kwargs_and_converters_land_in_url_route() -> None:
    app = URLRouter([path("rooms/<int:number>/<slug:title>/", where("room"))])
    reply = await route_of(app, "/rooms/12/tea-time/")
    assert reply == {"name": "room", "args": [], "kwargs": {"number": 12, "title": "tea-time"}}


async def test_re_path_named_and_positional_groups() -> None:
    app = URLRouter(
        [
            re_path(r"^named/(?P<slug>[a-z]+)/$", where("named")),
            re_path(r"^positional/(\d+)/$", where("positional")),
        ]
    )
    assert (await route_of(app, "/named/abc/"))["kwargs"] == {"slug": "abc"}
    assert (await route_of(app, "/positional/42/"))["args"] == ["42"]


async def test_the_first_matching_route_wins() -> None:
    app = URLRouter([path("a/", where("first")), path("a/", where("second"))])
    assert (await route_of(app, "/a/"))["name"] == "first"


async def test_extra_kwargs_of_path_are_passed() -> None:
    app = URLRouter([path("x/", where("x"), {"flavour": "mint"})])
    assert (await route_of(app, "/x/"))["kwargs"] == {"flavour": "mint"}


async def test_nested_routers_merge_kwargs_and_fall_through() -> None:
    inner = URLRouter([path("room/<str:room>/", where("room"))])
    app = URLRouter(
        [
            path("org/<str:org>/", inner),
            path("org/<str:org>/lobby/", where("lobby")),
        ]
    )
    reply = await route_of(app, "/org/acme/room/red/")
    assert reply == {"name": "room", "args": [], "kwargs": {"org": "acme", "room": "red"}}
    # Nothing matches inside the first router: the outer one tries its next route.
    assert (await route_of(app, "/org/acme/lobby/"))["name"] == "lobby"


async def test_root_path_is_stripped_before_matching() -> None:
    app = URLRouter([path("chat/", where("chat"))])
    reply = await route_of(app, "/mounted/chat/", root_path="/mounted")
    assert reply["name"] == "chat"


async def test_a_path_outside_root_path_is_not_found() -> None:
    app = URLRouter([path("chat/", where("chat"))])
    communicator = WebsocketCommunicator(app, "/elsewhere/chat/")
    communicator.scope["root_path"] = "/mounted"
    with pytest.raises(RouteNotFound):
        await communicator.connect()


async def test_no_matching_route_raises_route_not_found_a_value_error() -> None:
    app = URLRouter([path("chat/", where("chat"))])
    communicator = WebsocketCommunicator(app, "/nope/")
    with pytest.raises(RouteNotFound) as caught:
        await communicator.connect()
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == "/nope/"


def test_include_is_refused_with_advice() -> None:
    with pytest.raises(ImproperlyConfigured, match="nested URLRouter"):
        URLRouter([path("api/", include("tests.urls"))])


async def test_protocol_type_router_picks_the_application_by_scope_type() -> None:
    app = ProtocolTypeRouter(
        {"http": HttpWhere.as_asgi(), "websocket": URLRouter([path("ws/", where("ws"))])}
    )
    assert (await route_of(app, "/ws/"))["name"] == "ws"
    response = await HttpCommunicator(app, "GET", "/anything").get_response()
    assert response["body"] == b"http"


async def test_protocol_type_router_rejects_an_unknown_type() -> None:
    communicator = ApplicationCommunicator(ProtocolTypeRouter({}), {"type": "carrier-pigeon"})
    with pytest.raises(ValueError, match="carrier-pigeon"):
        await communicator.send_input({"type": "x"})
        await communicator.receive_output()


async def test_protocol_type_router_answers_lifespan_itself() -> None:
    communicator = ApplicationCommunicator(ProtocolTypeRouter({}), {"type": "lifespan"})
    await communicator.send_input({"type": "lifespan.startup"})
    assert await communicator.receive_output() == {"type": "lifespan.startup.complete"}
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert await communicator.receive_output() == {"type": "lifespan.shutdown.complete"}
    await communicator.wait()


class Thumbnailer(AsyncConsumer):
    async def thumbnail_make(self, message: dict[str, Any]) -> None:
        await self.send({"type": "made", "channel": self.scope["channel"], "id": message["id"]})


async def test_channel_name_router_routes_by_channel() -> None:
    app = ChannelNameRouter({"thumbnails": Thumbnailer.as_asgi()})
    communicator = ApplicationCommunicator(app, {"type": "channel", "channel": "thumbnails"})
    await communicator.send_input({"type": "thumbnail.make", "id": 3})
    assert await communicator.receive_output() == {
        "type": "made",
        "channel": "thumbnails",
        "id": 3,
    }
    communicator.stop()


async def test_channel_name_router_errors() -> None:
    app = ChannelNameRouter({"thumbnails": Thumbnailer.as_asgi()})
    with pytest.raises(RouteNotFound, match="mail"):
        await ApplicationCommunicator(app, {"type": "channel", "channel": "mail"}).receive_output()
    with pytest.raises(ValueError, match="'channel' key"):
        await ApplicationCommunicator(app, {"type": "channel"}).receive_output()


#: What ASGI_APPLICATION points at in the tests below.
application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", where("settings"))])})


def connect_consumer(message: Any) -> None:
    message.reply_channel.send({"accept": True})


channel_routing = [route("websocket.connect", connect_consumer, path=r"^/classic/$")]


def test_default_application_comes_from_asgi_application(settings: Any) -> None:
    settings.ASGI_APPLICATION = "tests.test_routing.application"
    assert get_default_application() is application


def test_default_application_explains_a_bad_asgi_application(settings: Any) -> None:
    settings.ASGI_APPLICATION = "tests.test_routing.missing"
    with pytest.raises(ImproperlyConfigured, match=r"tests\.test_routing\.missing"):
        get_default_application()


def test_default_application_needs_something_to_serve(settings: Any) -> None:
    settings.ASGI_APPLICATION = None
    with pytest.raises(ImproperlyConfigured, match="ASGI_APPLICATION"):
        get_default_application()


async def test_default_application_serves_classic_routing(settings: Any) -> None:
    settings.ASGI_APPLICATION = None
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "djwire.layers.InMemoryChannelLayer",
            "ROUTING": "tests.test_routing.channel_routing",
        }
    }
    app = get_default_application()
    assert isinstance(app, ProtocolTypeRouter)
    assert isinstance(app.application_mapping["websocket"], ClassicWebsocketApp)
    communicator = WebsocketCommunicator(app, "/classic/")
    assert (await communicator.connect())[0] is True
    await communicator.disconnect()


# -- routers hand back what the routed application returned, as Channels' do ----------


def returning(value: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> Any:
        return value

    return app


def middleware(inner: Any) -> Any:
    """A plain wrapper: URLRouter cannot see through it, so it awaits it."""

    async def app(scope: Any, receive: Any, send: Any) -> Any:
        return await inner(scope, receive, send)

    return app


async def noop_receive() -> dict[str, Any]:
    raise AssertionError("not called")


async def noop_send(message: dict[str, Any]) -> None:
    raise AssertionError("not called")


async def call(app: Any, **scope: Any) -> Any:
    return await app(scope, noop_receive, noop_send)


async def test_protocol_type_router_returns_the_applications_value() -> None:
    router = ProtocolTypeRouter({"websocket": returning("ws"), "http": returning(7)})
    assert await call(router, type="websocket", path="/") == "ws"
    assert await call(router, type="http", path="/") == 7


async def test_url_router_returns_the_applications_value_nested_and_after_a_fall_through() -> None:
    router = URLRouter(
        [
            path("a/", returning("a")),
            path("nested/", URLRouter([path("b/", returning("b"))])),
            # Middleware around a router that matches nothing: the next route is tried.
            re_path(r"^wrapped/", middleware(URLRouter([path("x/", returning("x"))]))),
            re_path(r"^wrapped/", middleware(URLRouter([path("y/", returning("y"))]))),
        ]
    )
    assert await call(router, type="websocket", path="/a/") == "a"
    assert await call(router, type="websocket", path="/nested/b/") == "b"
    assert await call(router, type="websocket", path="/wrapped/x/") == "x"
    assert await call(router, type="websocket", path="/wrapped/y/") == "y"


async def test_channel_name_router_returns_the_applications_value() -> None:
    router = ChannelNameRouter({"thumbnails": returning({"done": True})})
    assert await call(router, type="channel", channel="thumbnails") == {"done": True}


def test_default_application_sources_are_asked_in_order_once_each(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from djwire import routing

    monkeypatch.setattr(routing, "_fallback_applications", [])
    settings.ASGI_APPLICATION = None
    asked: list[str] = []

    def nothing() -> None:
        asked.append("nothing")

    def something() -> Any:
        asked.append("something")
        return application

    for source in (nothing, something, nothing):
        routing.add_default_application_source(source)
    assert get_default_application() is application
    assert asked == ["nothing", "something"]
