"""The communicators build the scopes Channels' do and report application errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator as AsgirefCommunicator

import djwire.db
from djwire.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from djwire.testing.application import database_connections_kept


def recorder(sent: list[Any]) -> Any:
    """An app that keeps its scope, then replays the messages in ``sent``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        recorder.scope = scope  # type: ignore[attr-defined]
        await receive()
        for message in sent:
            await send(message)
        await receive()

    return app


async def test_websocket_scope_from_path_headers_and_subprotocols() -> None:
    communicator = WebsocketCommunicator(
        recorder([{"type": "websocket.accept", "subprotocol": "v1", "headers": [(b"a", b"b")]}]),
        "/room%20one/?x=1&y=2",
        headers=[(b"origin", b"http://x")],
        subprotocols=["v1", "v2"],
        spec_version="2.3",
    )
    assert await communicator.connect() == (True, "v1")
    assert communicator.response_headers == [(b"a", b"b")]
    assert recorder.scope == {  # type: ignore[attr-defined]
        "type": "websocket",
        "path": "/room one/",
        "query_string": b"x=1&y=2",
        "headers": [(b"origin", b"http://x")],
        "subprotocols": ["v1", "v2"],
        "spec_version": "2.3",
    }
    await communicator.disconnect()


async def test_connect_reports_a_rejection_with_its_code() -> None:
    closes = WebsocketCommunicator(recorder([{"type": "websocket.close", "code": 4403}]), "/")
    assert await closes.connect() == (False, 4403)
    plain = WebsocketCommunicator(recorder([{"type": "websocket.close"}]), "/")
    assert await plain.connect() == (False, 1000)


async def test_connect_insists_on_accept_or_close() -> None:
    communicator = WebsocketCommunicator(recorder([{"type": "websocket.send", "text": "x"}]), "/")
    with pytest.raises(AssertionError, match=r"websocket\.accept"):
        await communicator.connect()


def test_path_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        WebsocketCommunicator(recorder([]), b"/bytes/")  # type: ignore[arg-type]


async def echo(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000})
        elif message.get("text") == "both":
            await send({"type": "websocket.send", "text": "t", "bytes": b"b"})
        else:
            await send(
                {
                    "type": "websocket.send",
                    **{k: message[k] for k in ("text", "bytes") if k in message},
                }
            )


async def test_frames_round_trip_including_empty_ones() -> None:
    communicator = WebsocketCommunicator(echo, "/")
    await communicator.connect()
    await communicator.send_to(text_data="")
    assert await communicator.receive_from() == ""
    await communicator.send_to(bytes_data=b"\x00")
    assert await communicator.receive_from() == b"\x00"
    await communicator.send_json_to({"k": [1]})
    assert await communicator.receive_json_from() == {"k": [1]}
    await communicator.disconnect()


async def test_send_to_needs_exactly_one_payload_of_the_right_type() -> None:
    communicator = WebsocketCommunicator(echo, "/")
    with pytest.raises(ValueError, match="exactly one"):
        await communicator.send_to()
    with pytest.raises(ValueError, match="exactly one"):
        await communicator.send_to(text_data="a", bytes_data=b"b")
    with pytest.raises(TypeError):
        await communicator.send_to(text_data=b"bytes")  # type: ignore[arg-type]


async def test_receive_from_fails_on_anything_but_a_frame() -> None:
    communicator = WebsocketCommunicator(echo, "/")
    await communicator.connect()
    await communicator.send_to(text_data="both")
    with pytest.raises(AssertionError, match="exactly one"):
        await communicator.receive_from()
    await communicator.send_to(text_data="close")
    with pytest.raises(AssertionError, match=r"websocket\.close"):
        await communicator.receive_from()
    await communicator.send_to(bytes_data=b"{}")
    with pytest.raises(AssertionError, match="not a text frame"):
        await communicator.receive_json_from()
    await communicator.disconnect()


async def test_an_application_error_is_raised_without_waiting_for_the_timeout() -> None:
    async def crash(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise KeyError("app bug")

    communicator = ApplicationCommunicator(crash, {"type": "testing"})
    await communicator.send_input({"type": "go"})
    # The guard only trips if the communicator sat out its 60 s timeout.
    async with asyncio.timeout(10):
        with pytest.raises(KeyError, match="app bug"):
            await communicator.receive_output(timeout=60)


async def test_an_application_that_ended_silently_is_a_timeout_at_once() -> None:
    async def quiet(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    communicator = ApplicationCommunicator(quiet, {"type": "testing"})
    await communicator.send_input({"type": "go"})
    async with asyncio.timeout(10):
        with pytest.raises(TimeoutError, match="ended"):
            await communicator.receive_output(timeout=60)


async def test_a_silent_running_application_times_out_and_is_cancelled() -> None:
    communicator = ApplicationCommunicator(recorder([]), {"type": "testing"})
    with pytest.raises(TimeoutError):
        await communicator.receive_output(timeout=0.05)
    assert communicator.future.cancelled()


async def test_http_communicator_builds_the_scope_and_joins_the_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = await receive()
        await send({"type": "http.response.start", "status": 202, "headers": [(b"x", b"1")]})
        await send({"type": "http.response.body", "body": request["body"], "more_body": True})
        await send({"type": "http.response.body", "body": scope["query_string"]})

    communicator = HttpCommunicator(
        app, "post", "/a%2Fb?q=1", body=b"payload-", headers=[(b"host", b"x")]
    )
    response = await communicator.get_response()
    assert response == {"status": 202, "headers": [(b"x", b"1")], "body": b"payload-q=1"}
    assert communicator.scope["method"] == "POST"
    assert communicator.scope["path"] == "/a/b"
    assert communicator.scope["http_version"] == "1.1"


def test_http_communicator_wants_a_bytes_body() -> None:
    with pytest.raises(TypeError):
        HttpCommunicator(recorder([]), "GET", "/", body="text")  # type: ignore[arg-type]


def test_application_communicator_is_asgirefs() -> None:
    assert issubclass(ApplicationCommunicator, AsgirefCommunicator)


def test_connections_are_kept_while_communicators_overlap() -> None:
    original = djwire.db.close_old_connections  # type: ignore[attr-defined]
    with database_connections_kept():
        with database_connections_kept():
            assert djwire.db.close_old_connections is not original  # type: ignore[attr-defined]
        assert djwire.db.close_old_connections is not original  # type: ignore[attr-defined]
    assert djwire.db.close_old_connections is original  # type: ignore[attr-defined]
