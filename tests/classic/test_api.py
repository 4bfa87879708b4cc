"""The classic (Channels 1) API end to end through WebsocketCommunicator: the issue's
liveblog/chat example, routing, reply keys, connect message keys, threads, sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import AsyncClient

from djwire import Channel, Group
from djwire.auth import channel_session_user, channel_session_user_from_http
from djwire.classic.app import ClassicWebsocketApp
from djwire.generic.websockets import WebsocketConsumer
from djwire.layers import get_channel_layer
from djwire.routing import include, route, route_class
from djwire.sessions import channel_session
from djwire.testing import WebsocketCommunicator

# -- the example from the issue: tests/classic/example.py ---------------------------------
from tests.classic.example import channel_routing


async def open_socket(
    routing: Any, path: str, headers: Any = None, **scope: Any
) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ClassicWebsocketApp(routing), path, headers=headers)
    communicator.scope.update(scope)
    connected, detail = await communicator.connect()
    assert connected, detail
    return communicator


async def members(group: str, count: int) -> None:
    """Wait until ``group`` has ``count`` members: a consumer that accepts before it
    joins a group (as connect_blog does) is still running when connect() returns."""
    layer = get_channel_layer()
    assert layer is not None
    async with asyncio.timeout(5):
        while len(await layer.group_channels(group)) != count:  # noqa: ASYNC110 (no event to await)
            await asyncio.sleep(0.005)


def publish_post(slug: str, payload: dict[str, Any]) -> None:
    """What Post.save() would do, in plain synchronous Django code."""
    Group("liveblog-" + slug).send({"text": json.dumps(payload)})


async def test_liveblog_group_send_from_sync_code_reaches_the_stream() -> None:
    reader = await open_socket(channel_routing, "/liveblog/django/stream/")
    other = await open_socket(channel_routing, "/liveblog/python/stream/")
    await members("liveblog-django", 1)
    await members("liveblog-python", 1)
    await sync_to_async(publish_post)("django", {"title": "4.0 released"})
    assert json.loads(await reader.receive_from()) == {"title": "4.0 released"}
    assert await other.receive_nothing()
    await reader.disconnect()
    await other.disconnect()


async def test_chat_messages_reach_every_member_and_groups_are_left_at_disconnect() -> None:
    alice = await open_socket(channel_routing, "/chat/")
    bob = await open_socket(channel_routing, "/chat/")
    await alice.send_to(text_data="hello all")
    assert await alice.receive_from() == "hello all"
    assert await bob.receive_from() == "hello all"
    layer = get_channel_layer()
    assert layer is not None
    assert len(await layer.group_channels("chat")) == 2
    await alice.disconnect()
    await bob.disconnect()
    assert await layer.group_channels("chat") == []


def room_receive(message: Any) -> None:
    if message["text"] == "leave":
        Group("room").discard(message.reply_channel)
        message.reply_channel.send({"text": "left"})


async def test_group_discard_stops_group_messages() -> None:
    def join_room(message: Any) -> None:
        Group("room").add(message.reply_channel)
        message.reply_channel.send({"accept": True})

    routing = [
        route("websocket.connect", join_room, path=r"^/room/$"),
        route("websocket.receive", room_receive, path=r"^/room/$"),
    ]
    stays, leaves = await open_socket(routing, "/room/"), await open_socket(routing, "/room/")
    await leaves.send_to(text_data="leave")
    assert await leaves.receive_from() == "left"
    await sync_to_async(Group("room").send)({"text": "still here?"})
    assert await stays.receive_from() == "still here?"
    assert await leaves.receive_nothing()
    await stays.disconnect()
    await leaves.disconnect()


async def test_a_path_with_no_route_is_rejected() -> None:
    communicator = WebsocketCommunicator(ClassicWebsocketApp(channel_routing), "/nowhere/")
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()


# -- routing ---------------------------------------------------------------------------


def report(message: Any, **kwargs: Any) -> None:
    """Accept and tell the client the kwargs and what the message looked like."""
    content = message.content
    message.reply_channel.send(
        {
            "text": json.dumps(
                {
                    "channel": message.channel.name,
                    "kwargs": kwargs,
                    "path": content.get("path"),
                    "order": content.get("order"),
                }
            )
        }
    )


async def first_report(routing: Any, path: str) -> Any:
    communicator = await open_socket(routing, path)
    reply = json.loads(await communicator.receive_from())
    await communicator.disconnect()
    return reply


async def test_route_filters_give_named_groups_as_kwargs() -> None:
    routing = [route("websocket.connect", report, path=r"^/rooms/(?P<room>\w+)/(?P<n>\d+)/$")]
    reply = await first_report(routing, "/rooms/red/7/")
    assert reply["kwargs"] == {"room": "red", "n": "7"}
    assert reply["channel"] == "websocket.connect"


async def test_include_strips_the_matched_prefix_for_its_children() -> None:
    inner = [route("websocket.connect", report, path=r"^/room/(?P<room>\w+)/$")]
    routing = [include(inner, path=r"^/chat(?P<version>/v\d)?")]
    reply = await first_report(routing, "/chat/v2/room/blue/")
    assert reply["kwargs"] == {"version": "/v2", "room": "blue"}
    assert reply["path"] == "/chat/v2/room/blue/"  # the consumer sees the full path
    assert (await first_report(routing, "/chat/room/green/"))["kwargs"] == {"room": "green"}


async def test_include_takes_a_dotted_path() -> None:
    routing = [include("tests.classic.example.channel_routing", path=r"^/mounted")]
    reader = await open_socket(routing, "/mounted/liveblog/x/stream/")
    await members("liveblog-x", 1)
    await sync_to_async(publish_post)("x", {"ok": True})
    assert json.loads(await reader.receive_from()) == {"ok": True}
    await reader.disconnect()


async def test_the_dict_form_maps_channels_to_dotted_consumer_paths() -> None:
    routing = {"websocket.connect": "tests.classic.test_api.report"}
    reply = await first_report(routing, "/any/path/")
    assert reply == {
        "channel": "websocket.connect",
        "kwargs": {},
        "path": "/any/path/",
        "order": 0,
    }


# -- reply keys and message keys ---------------------------------------------------------


def replier(message: Any) -> None:
    """The client's text says what to send to the reply channel (as JSON)."""
    reply = json.loads(message["text"])
    if "bytes" in reply:
        reply["bytes"] = reply["bytes"].encode()
    message.reply_channel.send(reply)


replies = [route("websocket.receive", replier)]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"text": "hi"}, [{"type": "websocket.send", "text": "hi"}]),
        ({"bytes": "raw"}, [{"type": "websocket.send", "bytes": b"raw"}]),
        ({"close": True}, [{"type": "websocket.close", "code": 1000}]),
        ({"close": 4010}, [{"type": "websocket.close", "code": 4010}]),
        (
            {"text": "last", "close": 4011},
            [
                {"type": "websocket.send", "text": "last"},
                {"type": "websocket.close", "code": 4011},
            ],
        ),
    ],
)
async def test_reply_keys(reply: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    communicator = await open_socket(replies, "/")  # no connect route: accepted
    await communicator.send_to(text_data=json.dumps(reply))
    assert [await communicator.receive_output() for _ in expected] == expected
    await communicator.disconnect()


@pytest.mark.parametrize("reply", [{"accept": False}, {"close": True}, {"close": 4403}])
async def test_rejecting_replies_to_connect(reply: dict[str, Any]) -> None:
    def refuse(message: Any) -> None:
        message.reply_channel.send(reply)

    communicator = WebsocketCommunicator(
        ClassicWebsocketApp([route("websocket.connect", refuse)]), "/"
    )
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()


async def test_text_before_accept_accepts_first() -> None:
    def greet(message: Any) -> None:
        message.reply_channel.send({"text": "welcome"})

    communicator = await open_socket([route("websocket.connect", greet)], "/")
    assert await communicator.receive_from() == "welcome"
    await communicator.disconnect()


async def test_channel_send_to_a_reply_channel_by_name() -> None:
    names: list[str] = []

    def remember(message: Any) -> None:
        names.append(message.reply_channel.name)
        message.reply_channel.send({"accept": True})

    communicator = await open_socket([route("websocket.connect", remember)], "/")
    await sync_to_async(Channel(names[0]).send)({"text": "by name"})
    assert await communicator.receive_from() == "by name"
    await communicator.disconnect()


async def test_connect_receive_and_disconnect_message_keys() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(message: Any) -> None:
        seen.append((message.channel.name, dict(message.content)))
        if message.channel.name == "websocket.connect":
            message.reply_channel.send({"accept": True})

    routing = [route(["websocket.connect", "websocket.receive", "websocket.disconnect"], record)]
    communicator = await open_socket(
        routing,
        "/room/?x=1",
        headers=[(b"cookie", b"a=b")],
        client=("127.0.0.1", 5000),
        server=("127.0.0.1", 8000),
    )
    await communicator.send_to(text_data="t")
    await communicator.send_to(bytes_data=b"b")
    await communicator.disconnect(code=4001)
    (c_name, connect), (_, text), (_, data), (d_name, disconnect) = seen
    assert c_name == "websocket.connect" and d_name == "websocket.disconnect"
    assert connect["path"] == "/room/"
    assert connect["query_string"] == b"x=1"
    assert connect["headers"] == [[b"cookie", b"a=b"]]
    assert connect["client"] == ["127.0.0.1", 5000]
    assert connect["server"] == ["127.0.0.1", 8000]
    assert connect["reply_channel"]
    assert text["text"] == "t" and data["bytes"] == b"b"
    assert disconnect["code"] == 4001
    assert [m["order"] for m in (connect, text, data, disconnect)] == [0, 1, 2, 3]


async def test_function_consumers_run_in_a_thread_not_on_the_loop() -> None:
    where: list[tuple[int, bool]] = []

    def locate(message: Any) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        where.append((threading.get_ident(), on_loop))
        message.reply_channel.send({"accept": True})

    communicator = await open_socket([route("websocket.connect", locate)], "/")
    await communicator.disconnect()
    assert where and where[0][0] != threading.get_ident()
    assert where[0][1] is False


async def test_a_consumer_that_raises_is_logged_and_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(message: Any) -> None:
        raise RuntimeError("classic bug")

    communicator = await open_socket([route("websocket.receive", broken)], "/")
    with caplog.at_level(logging.ERROR, logger="djwire.classic"):
        await communicator.send_to(text_data="x")
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 1011}
    assert "classic bug" in caplog.text
    await communicator.disconnect(code=1011)


# -- class-based classic consumers -------------------------------------------------------


class RoomConsumer(WebsocketConsumer):
    channel_session = True

    def connection_groups(self, **kwargs: Any) -> list[str]:
        return ["room-" + kwargs["room"]]

    def connect(self, message: Any, **kwargs: Any) -> None:
        message.channel_session["room"] = kwargs["room"]
        message.reply_channel.send({"accept": True})

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        self.group_send("room-" + self.message.channel_session["room"], text=text)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("cache_channel_sessions")
async def test_route_class_consumer_with_groups_and_channel_session() -> None:
    routing = [route_class(RoomConsumer, path=r"^/rooms/(?P<room>\w+)/$")]
    first = await open_socket(routing, "/rooms/red/")
    second = await open_socket(routing, "/rooms/red/")
    await first.send_to(text_data="hello red")
    assert await first.receive_from() == "hello red"
    assert await second.receive_from() == "hello red"
    await first.disconnect()
    await second.disconnect()
    layer = get_channel_layer()
    assert layer is not None and await layer.group_channels("room-red") == []


# -- sessions and users ------------------------------------------------------------------


@channel_session_user_from_http
def user_connect(message: Any, room: str) -> None:
    message.channel_session["room"] = room
    message.reply_channel.send({"accept": True})


@channel_session_user
def user_receive(message: Any, room: str) -> None:
    message.reply_channel.send(
        {"text": f"{message.user.username or 'anonymous'}@{message.channel_session['room']}"}
    )


@channel_session
def count_receive(message: Any, room: str) -> None:
    message.channel_session["count"] = message.channel_session.get("count", 0) + 1
    message.reply_channel.send({"text": str(message.channel_session["count"])})


user_routing = [
    route("websocket.connect", user_connect, path=r"^/u/(?P<room>\w+)/$"),
    route("websocket.receive", user_receive, path=r"^/u/(?P<room>\w+)/$"),
    route("websocket.receive", count_receive, path=r"^/count/(?P<room>\w+)/$"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("cache_channel_sessions")
async def test_channel_session_user_from_http_carries_the_login_to_later_messages() -> None:
    user = await User.objects.acreate_user("ada", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    logged_in = await open_socket(
        user_routing, "/u/lobby/", headers=[(b"cookie", cookie.encode())]
    )
    anonymous = await open_socket(user_routing, "/u/lobby/")
    await logged_in.send_to(text_data="who")
    await anonymous.send_to(text_data="who")
    assert await logged_in.receive_from() == "ada@lobby"
    assert await anonymous.receive_from() == "anonymous@lobby"
    await logged_in.disconnect()
    await anonymous.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("cache_channel_sessions")
async def test_channel_session_keeps_state_per_connection() -> None:
    first = await open_socket(user_routing, "/count/a/")
    second = await open_socket(user_routing, "/count/a/")
    for expected in ("1", "2", "3"):
        await first.send_to(text_data="+")
        assert await first.receive_from() == expected
    await second.send_to(text_data="+")
    assert await second.receive_from() == "1"
    await first.disconnect()
    await second.disconnect()


# -- replies while a consumer is still running ----------------------------------------


async def test_an_immediate_reply_reaches_the_client_while_the_consumer_still_runs() -> None:
    # Other sends are held until the consumer finishes (tests/classic/test_held.py).
    release, finished = threading.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(message: Any) -> None:
        try:
            message.reply_channel.send({"text": "working"}, immediately=True)
            release.wait(5)
            message.reply_channel.send({"text": "done"})
        finally:
            loop.call_soon_threadsafe(finished.set)

    communicator = await open_socket([route("websocket.receive", slow)], "/")
    await communicator.send_to(text_data="go")
    try:
        assert await communicator.receive_from(timeout=1) == "working"
        release.set()
        assert await communicator.receive_from() == "done"
        await communicator.disconnect()
    finally:
        release.set()
        # Keep this loop running until the consumer thread is done: its last send
        # needs the loop, and a closed loop would leave the thread hanging.
        await asyncio.wait_for(finished.wait(), 5)


async def test_a_consumer_may_send_more_replies_than_the_channel_capacity() -> None:
    def chatty(message: Any) -> None:
        for n in range(150):
            message.reply_channel.send({"text": str(n)})

    communicator = await open_socket([route("websocket.receive", chatty)], "/")
    await communicator.send_to(text_data="go")
    assert [await communicator.receive_from() for _ in range(150)] == [str(n) for n in range(150)]
    await communicator.disconnect()
