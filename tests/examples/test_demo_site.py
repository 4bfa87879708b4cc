"""The demo site over real sockets: pages, the chat protocol and the liveblog stream.

The server runs in a subprocess (``manage.py runserver``); the tests use urllib and
the ``websockets`` client, as any HTTP and WebSocket client would.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .demo import DemoServer

TIMEOUT = 10


def open_socket(server: DemoServer, path: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("origin", server.url)
    return connect(server.ws_url + path, open_timeout=TIMEOUT, close_timeout=2, **kwargs)


def receive(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=TIMEOUT))
    assert isinstance(message, dict)
    return message


def send(ws: ClientConnection, text: str, client_id: str | None = None) -> None:
    ws.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))


# -- pages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/", "Live pages with plain Django"),
        ("/liveblog/", "Launch day"),
        ("/liveblog/launch-day/", "Doors open"),
        ("/chat/", "Chat rooms"),
        ("/chat/lobby/", 'data-stream="/ws/chat/lobby/"'),
        ("/accounts/login/", "Log in"),
        ("/admin/login/", "Django administration"),
    ],
)
def test_pages_render(demo_server: DemoServer, path: str, expected: str) -> None:
    status, body = demo_server.get(path)
    assert status == 200
    assert expected in body


def test_unknown_blog_is_404(demo_server: DemoServer) -> None:
    assert demo_server.get("/liveblog/no-such-blog/")[0] == 404


def test_static_files_are_served_including_djwire_js(demo_server: DemoServer) -> None:
    status, body = demo_server.get("/static/djwire/djwire.js")
    assert status == 200
    assert "backoffDelay" in body
    assert demo_server.get("/static/demosite/site.css")[0] == 200


# -- chat --------------------------------------------------------------------------------


def test_chat_join_sends_name_limit_and_history(demo_server: DemoServer) -> None:
    with open_socket(demo_server, "/ws/chat/lobby/") as ws:
        welcome = receive(ws)
    assert welcome["type"] == "welcome"
    assert welcome["room"] == "lobby"
    assert welcome["max_length"] == 500
    assert welcome["authenticated"] is False
    assert welcome["name"]
    assert any("Welcome to #lobby" in m["text"] for m in welcome["messages"])


def test_chat_members_of_a_room_receive_each_others_messages(demo_server: DemoServer) -> None:
    with (
        open_socket(demo_server, "/ws/chat/pair/") as alice,
        open_socket(demo_server, "/ws/chat/pair/") as bob,
        open_socket(demo_server, "/ws/chat/elsewhere/") as carol,
    ):
        alice_name = receive(alice)["name"]
        receive(bob)
        receive(carol)
        send(alice, "  hello bob  ", client_id="a-1")
        for ws in (alice, bob):
            event = receive(ws)
            assert event["type"] == "message"
            assert event["client_id"] == "a-1"
            assert event["message"]["text"] == "hello bob"  # stripped
            assert event["message"]["author"] == alice_name
        send(carol, "only here")
        assert receive(carol)["message"]["text"] == "only here"
        # Alice's next message is the next thing Bob sees: nothing leaked from the
        # other room.
        send(alice, "second")
        assert receive(bob)["message"]["text"] == "second"


def test_chat_history_is_the_last_50_messages_in_order(demo_server: DemoServer) -> None:
    with open_socket(demo_server, "/ws/chat/history/") as ws:
        receive(ws)
        for number in range(55):
            send(ws, f"message {number}")
            receive(ws)
    with open_socket(demo_server, "/ws/chat/history/") as ws:
        welcome = receive(ws)
    texts = [m["text"] for m in welcome["messages"]]
    assert texts == [f"message {number}" for number in range(5, 55)]


def test_chat_rejects_a_too_long_message_and_keeps_the_socket(demo_server: DemoServer) -> None:
    with open_socket(demo_server, "/ws/chat/limits/") as ws:
        receive(ws)
        send(ws, "x" * 501, client_id="long")
        error = receive(ws)
        assert error["type"] == "error"
        assert "limited to 500 characters" in error["error"]
        assert error["client_id"] == "long"
        send(ws, "x" * 500)
        assert receive(ws)["message"]["text"] == "x" * 500
    with open_socket(demo_server, "/ws/chat/limits/") as ws:
        stored = [m["text"] for m in receive(ws)["messages"]]
    assert "x" * 501 not in stored


@pytest.mark.parametrize(
    "frame, expected",
    [
        ("not json", "not valid JSON"),
        (json.dumps(["a", "list"]), "Unknown request"),
        (json.dumps({"type": "message", "text": "   "}), "Type a message first"),
        (json.dumps({"type": "message", "text": 42}), "Type a message first"),
        (b"\x00binary", "Send JSON in text frames"),
    ],
)
def test_chat_answers_bad_input_with_an_error(
    demo_server: DemoServer, frame: str | bytes, expected: str
) -> None:
    with open_socket(demo_server, "/ws/chat/bad-input/") as ws:
        receive(ws)
        ws.send(frame)
        error = receive(ws)
        assert error["type"] == "error"
        assert expected in error["error"]
        send(ws, "still here")
        assert receive(ws)["message"]["text"] == "still here"


def test_chat_stores_markup_as_typed(demo_server: DemoServer) -> None:
    # Escaping happens on display (textContent in chat.js; see the browser tests).
    with open_socket(demo_server, "/ws/chat/markup/") as ws:
        receive(ws)
        send(ws, "<script>alert(1)</script>")
        assert receive(ws)["message"]["text"] == "<script>alert(1)</script>"


def test_chat_guest_name_comes_from_the_session(demo_server: DemoServer) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, page = demo_server.get("/chat/lobby/", opener)
    assert status == 200
    shown = re.search(r'id="you">([^<]+)<', page)
    assert shown is not None
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    with open_socket(demo_server, "/ws/chat/lobby/", additional_headers={"Cookie": cookie}) as ws:
        assert receive(ws)["name"] == shown.group(1)
    # The same session keeps the same name on the next page load.
    assert shown.group(1) in demo_server.get("/chat/lobby/", opener)[1]


def test_socket_from_a_foreign_origin_is_refused(demo_server: DemoServer) -> None:
    for path in ("/ws/chat/lobby/", "/liveblog/launch-day/stream/"):
        with pytest.raises(InvalidStatus) as refused:
            open_socket(demo_server, path, origin="http://evil.example")
        assert refused.value.response.status_code == 403


def test_socket_to_an_unknown_path_is_refused(demo_server: DemoServer) -> None:
    for path in ("/ws/nothing/", "/ws/chat/Bad Name/", "/liveblog/no-such-blog/stream/"):
        with pytest.raises(InvalidStatus):
            open_socket(demo_server, path.replace(" ", "%20"))


# -- liveblog ----------------------------------------------------------------------------


def test_liveblog_stream_replays_posts_changed_since_the_page_was_rendered(
    demo_server: DemoServer,
) -> None:
    path = "/liveblog/bake-off-final/stream/?since=2000-01-01T00%3A00%3A00%2B00%3A00"
    with open_socket(demo_server, path) as ws:
        replayed = [receive(ws), receive(ws)]
    assert [post["type"] for post in replayed] == ["post", "post"]
    assert "The brief" in replayed[0]["html"]
    assert "baking powder" in replayed[1]["html"]
