"""The live-server test case serves the project through djwire's server over real
sockets, with the test database and the in-memory channel layer shared."""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from djwire import Group
from djwire.layers import get_channel_layer
from djwire.testing import ChannelsLiveServerTestCase, DjwireLiveServerTestCase, LiveServer

TIMEOUT = 5


def wait_for(condition: Callable[[], Any]) -> None:
    """Poll ``condition`` until it is true; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_channels_name_is_an_alias() -> None:
    assert ChannelsLiveServerTestCase is DjwireLiveServerTestCase


@override_settings(ASGI_APPLICATION="tests.testing.live_app.application")
class ChatOverRealSockets(DjwireLiveServerTestCase):
    def open(self, path: str = "/ws/chat/", **kwargs: Any) -> ClientConnection:
        kwargs.setdefault("origin", self.live_server_url)
        return connect(self.live_server_ws_url + path, open_timeout=TIMEOUT, **kwargs)

    def receive_json(self, socket: ClientConnection) -> Any:
        return json.loads(socket.recv(timeout=TIMEOUT))

    def test_urls_point_at_the_loopback_server(self) -> None:
        assert self.live_server_url.startswith("http://localhost:")
        assert self.live_server_ws_url == "ws" + self.live_server_url[4:]

    def test_django_views_are_served(self) -> None:
        with urllib.request.urlopen(self.live_server_url + "/hello/", timeout=TIMEOUT) as page:
            assert page.read() == b"Hello, world"

    def test_server_sent_events_stream_over_http(self) -> None:
        with urllib.request.urlopen(self.live_server_url + "/events/", timeout=TIMEOUT) as page:
            assert page.headers["content-type"] == "text/event-stream"
            assert page.read() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"

    def test_a_long_poll_is_answered_by_a_later_group_message(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(self.fetch, "/poll/")
            wait_for(lambda: async_to_sync(layer.group_channels)("news"))
            async_to_sync(layer.group_send)("news", {"type": "news.item", "body": '{"n": 1}'})
            assert answer.result(timeout=TIMEOUT) == b'{"n": 1}'
        wait_for(lambda: not async_to_sync(layer.group_channels)("news"))

    def test_a_request_body_over_the_consumers_limit_gets_413(self) -> None:
        assert self.fetch("/upload/", data=b"x" * 1000) == b"1000"
        with pytest.raises(urllib.error.HTTPError) as caught:
            self.fetch("/upload/", data=b"x" * 1001)
        assert caught.value.code == 413

    def fetch(self, path: str, data: bytes | None = None) -> bytes:
        with urllib.request.urlopen(self.live_server_url + path, data, timeout=TIMEOUT) as page:
            return bytes(page.read())

    def test_a_chat_between_two_sockets(self) -> None:
        with self.open() as alice, self.open() as bob:
            self.receive_json(alice), self.receive_json(bob)
            alice.send(json.dumps({"text": "hello bob"}))
            assert self.receive_json(bob) == {"text": "hello bob"}
            assert self.receive_json(alice) == {"text": "hello bob"}

    def test_the_server_sees_the_test_database_and_the_login(self) -> None:
        user = User.objects.create_user("ada", password="pw")
        self.client.force_login(user)
        session_key = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        cookie = f"{settings.SESSION_COOKIE_NAME}={session_key}"
        with self.open(additional_headers={"Cookie": cookie}) as socket:
            assert self.receive_json(socket) == {"user": "ada", "users": 1}

    def test_the_test_can_group_send_to_served_sockets(self) -> None:
        with self.open() as socket:
            self.receive_json(socket)
            layer = get_channel_layer()
            assert layer is not None
            async_to_sync(layer.group_send)("live-chat", {"type": "chat.message", "text": "x"})
            assert self.receive_json(socket) == {"text": "x"}

    def test_a_foreign_origin_gets_403(self) -> None:
        with pytest.raises(InvalidStatus) as caught:
            self.open(origin="http://evil.example")
        assert caught.value.response.status_code == 403

    def test_a_path_without_a_route_is_refused_not_left_hanging(self) -> None:
        with pytest.raises(InvalidStatus) as caught:
            self.open("/ws/nowhere/")
        assert caught.value.response.status_code in (403, 404)

    def test_a_consumer_that_raises_is_logged_and_closes_the_socket_with_1011(self) -> None:
        with self.assertLogs("djwire", level="ERROR") as logs, self.open() as socket:
            self.receive_json(socket)
            socket.send(json.dumps({"crash": True}))
            with pytest.raises(ConnectionClosed) as caught:
                socket.recv(timeout=TIMEOUT)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011
        assert "consumer crashed on purpose" in "\n".join(logs.output)


# The classic example of the foundation issue (tests/classic/example.py).


@override_settings(
    ASGI_APPLICATION=None,
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "djwire.layers.InMemoryChannelLayer",
            "ROUTING": "tests.classic.example.channel_routing",
        }
    },
)
class ClassicOverRealSockets(DjwireLiveServerTestCase):
    def test_the_classic_liveblog_example(self) -> None:
        url = self.live_server_ws_url + "/liveblog/release/stream/"
        with connect(url, open_timeout=TIMEOUT) as socket:
            # The consumer accepts, then joins the group (in a thread): wait for that.
            layer = get_channel_layer()
            assert layer is not None
            wait_for(lambda: async_to_sync(layer.group_channels)("liveblog-release"))
            Group("liveblog-release").send({"text": json.dumps({"title": "5.0"})})
            assert json.loads(socket.recv(timeout=TIMEOUT)) == {"title": "5.0"}

    def test_the_classic_chat_example(self) -> None:
        url = self.live_server_ws_url + "/chat/"
        with (
            connect(url, open_timeout=TIMEOUT) as alice,
            connect(url, open_timeout=TIMEOUT) as bob,
        ):
            alice.send("hello from alice")
            assert bob.recv(timeout=TIMEOUT) == "hello from alice"
            assert alice.recv(timeout=TIMEOUT) == "hello from alice"

    def test_a_path_without_a_classic_route_is_refused(self) -> None:
        with pytest.raises(InvalidStatus) as caught:
            connect(self.live_server_ws_url + "/nowhere/", open_timeout=TIMEOUT)
        assert caught.value.response.status_code == 403


@override_settings(
    ASGI_APPLICATION=None,
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "tests.testing.live_app.SlowGroupAddLayer",
            "ROUTING": "tests.classic.example.channel_routing",
        }
    },
)
class ClassicChatOnASlowLayer(DjwireLiveServerTestCase):
    def test_the_talks_chat_loses_no_message_sent_as_soon_as_a_member_is_open(self) -> None:
        # chat_connect accepts, then joins the group (the talk's code). The accept is
        # held until it returns, so a client is in the group once its socket is open.
        # Were the accept sent at once, the first message here would be lost every
        # time: the join takes 50 ms on this layer (a busy machine loses 1 in 6).
        url = self.live_server_ws_url + "/chat/"
        with connect(url, open_timeout=TIMEOUT) as alice:
            for n in range(5):
                with connect(url, open_timeout=TIMEOUT) as newcomer:
                    alice.send(f"welcome {n}")
                    assert newcomer.recv(timeout=TIMEOUT) == f"welcome {n}"
                assert alice.recv(timeout=TIMEOUT) == f"welcome {n}"


def test_live_server_context_manager_serves_any_application() -> None:
    async def hello(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"plain asgi"})
        elif scope["type"] == "lifespan":
            while True:
                event = await receive()
                await send({"type": event["type"] + ".complete"})
                if event["type"] == "lifespan.shutdown":
                    return

    with LiveServer(hello) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/", timeout=TIMEOUT) as page:
            assert page.read() == b"plain asgi"
