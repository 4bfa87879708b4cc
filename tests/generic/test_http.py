"""AsyncHttpConsumer: whole and streamed responses, long-poll, bounded request bodies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.urls import path

from djwire.generic.http import DEFAULT_MAX_BODY_SIZE, AsyncHttpConsumer
from djwire.layers import get_channel_layer
from djwire.routing import ProtocolTypeRouter, URLRouter
from djwire.sessions import SessionMiddlewareStack
from djwire.testing import ApplicationCommunicator, HttpCommunicator
from tests.support.awaitables import KINDS, with_awaitable_callables


class Echo(AsyncHttpConsumer):
    disconnects = 0

    async def handle(self, body: bytes) -> None:
        await self.send_response(
            201, body[::-1], headers={b"content-type": b"text/plain", b"x-greeting": self.greeting}
        )

    async def disconnect(self) -> None:
        type(self).disconnects += 1

    greeting = b"hi"


def http_scope(headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": headers or [],
    }


async def test_handle_gets_the_whole_body_and_its_response_is_sent() -> None:
    Echo.disconnects = 0
    response = await HttpCommunicator(Echo.as_asgi(), "POST", "/", body=b"abc").get_response()
    assert response["status"] == 201
    assert response["body"] == b"cba"
    assert (b"content-type", b"text/plain") in response["headers"]
    assert Echo.disconnects == 1


async def test_a_body_in_several_chunks_is_joined() -> None:
    communicator = ApplicationCommunicator(Echo.as_asgi(), http_scope())
    await communicator.send_input({"type": "http.request", "body": b"ab", "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b"cd", "more_body": True})
    await communicator.send_input({"type": "http.request"})
    start = await communicator.receive_output()
    body = await communicator.receive_output()
    assert start["status"] == 201
    assert body == {"type": "http.response.body", "body": b"dcba", "more_body": False}
    await communicator.wait()


async def test_as_asgi_initkwargs_become_attributes() -> None:
    app = Echo.as_asgi(greeting=b"hello")
    response = await HttpCommunicator(app, "POST", "/", body=b"").get_response()
    assert (b"x-greeting", b"hello") in response["headers"]


class EventStream(AsyncHttpConsumer):
    """Server-Sent Events: three events, then the end of the stream."""

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        for n in range(3):
            await self.send_body(f"data: {n}\n\n".encode(), more_body=True)
        await self.send_body(b"")


async def test_server_sent_events_arrive_as_separate_body_chunks() -> None:
    communicator = HttpCommunicator(EventStream.as_asgi(), "GET", "/events")
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output()
    assert start["headers"] == [(b"content-type", b"text/event-stream")]
    chunks = [await communicator.receive_output() for _ in range(4)]
    assert [c["body"] for c in chunks] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [c["more_body"] for c in chunks] == [True, True, True, False]
    await communicator.wait()


class LongPoll(AsyncHttpConsumer):
    """Opens the response in handle(); a group message finishes it later."""

    ended: list[str] = []

    async def handle(self, body: bytes) -> None:
        await self.channel_layer.group_add("news", self.channel_name)
        await self.send_headers(headers=[(b"content-type", b"application/json")])
        await self.send_body(b"", more_body=True)

    async def news_item(self, event: dict[str, Any]) -> None:
        await self.send_body(json.dumps(event["item"]).encode())

    async def disconnect(self) -> None:
        await self.channel_layer.group_discard("news", self.channel_name)
        self.ended.append("disconnect")


async def test_long_poll_response_is_finished_by_a_later_group_message() -> None:
    LongPoll.ended = []
    communicator = HttpCommunicator(LongPoll.as_asgi(), "GET", "/poll")
    await communicator.send_input({"type": "http.request", "body": b""})
    assert (await communicator.receive_output())["type"] == "http.response.start"
    assert (await communicator.receive_output())["more_body"] is True
    assert await communicator.receive_nothing()
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send("news", {"type": "news.item", "item": {"title": "hello"}})
    final = await communicator.receive_output()
    assert final == {
        "type": "http.response.body",
        "body": b'{"title": "hello"}',
        "more_body": False,
    }
    await communicator.wait()  # the consumer ended by itself
    assert LongPoll.ended == ["disconnect"]
    assert await layer.group_channels("news") == []


async def test_a_client_leaving_a_long_poll_ends_the_consumer_once() -> None:
    LongPoll.ended = []
    communicator = HttpCommunicator(LongPoll.as_asgi(), "GET", "/poll")
    await communicator.send_input({"type": "http.request", "body": b""})
    await communicator.receive_output()
    await communicator.receive_output()
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait()
    assert LongPoll.ended == ["disconnect"]
    layer = get_channel_layer()
    assert layer is not None and await layer.group_channels("news") == []


class Silent(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        pass


async def test_a_consumer_that_sends_nothing_still_ends() -> None:
    communicator = HttpCommunicator(Silent.as_asgi(), "GET", "/")
    await communicator.send_input({"type": "http.request", "body": b""})
    await communicator.wait()
    assert await communicator.receive_nothing()


class Broken(AsyncHttpConsumer):
    disconnected = False

    async def handle(self, body: bytes) -> None:
        raise RuntimeError("boom")

    async def disconnect(self) -> None:
        type(self).disconnected = True


async def test_an_error_in_handle_propagates_after_disconnect() -> None:
    communicator = HttpCommunicator(Broken.as_asgi(), "GET", "/")
    with pytest.raises(RuntimeError, match="boom"):
        await communicator.get_response()
    assert Broken.disconnected


async def test_handle_must_be_overridden() -> None:
    communicator = HttpCommunicator(AsyncHttpConsumer.as_asgi(), "GET", "/")
    with pytest.raises(NotImplementedError):
        await communicator.get_response()


async def test_send_body_insists_on_bytes() -> None:
    class Texty(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body("text")  # type: ignore[arg-type]

    communicator = HttpCommunicator(Texty.as_asgi(), "GET", "/")
    with pytest.raises(TypeError, match="bytes"):
        await communicator.get_response()


# -- request body limit ----------------------------------------------------------------


class Small(Echo):
    max_body_size = 10


async def test_a_declared_oversized_body_gets_413_without_handle() -> None:
    Echo.disconnects = 0
    headers = [(b"content-length", b"11")]
    communicator = ApplicationCommunicator(Small.as_asgi(), http_scope(headers))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": True})
    start = await communicator.receive_output()
    assert start["status"] == 413
    assert (await communicator.receive_output())["more_body"] is False
    await communicator.wait()
    assert Echo.disconnects == 0


async def test_a_streamed_body_over_the_limit_gets_413() -> None:
    communicator = ApplicationCommunicator(Small.as_asgi(), http_scope())
    await communicator.send_input({"type": "http.request", "body": b"123456", "more_body": True})
    assert await communicator.receive_nothing()
    await communicator.send_input({"type": "http.request", "body": b"78901", "more_body": True})
    assert (await communicator.receive_output())["status"] == 413
    await communicator.wait()


async def test_a_body_at_the_limit_is_accepted() -> None:
    response = await HttpCommunicator(Small.as_asgi(), "POST", "/", body=b"x" * 10).get_response()
    assert response["status"] == 201


async def test_the_default_limit_comes_from_the_setting(settings: Any) -> None:
    assert Echo().get_max_body_size() == DEFAULT_MAX_BODY_SIZE
    settings.DJWIRE_HTTP_MAX_BODY_SIZE = 4
    response = await HttpCommunicator(Echo.as_asgi(), "POST", "/", body=b"12345").get_response()
    assert response["status"] == 413
    settings.DJWIRE_HTTP_MAX_BODY_SIZE = None
    body = b"x" * (DEFAULT_MAX_BODY_SIZE + 1)
    response = await HttpCommunicator(Echo.as_asgi(), "POST", "/", body=body).get_response()
    assert response["status"] == 201


async def test_one_instance_used_directly_as_the_app_serves_every_request() -> None:
    # Packages mount a consumer instance (no as_asgi()) in tests and middleware
    # stacks; Channels answers each request, so must djwire, with fresh state.
    Echo.disconnects = 0
    app = Echo()
    for body in (b"first", b"second", b"third"):
        response = await HttpCommunicator(app, "POST", "/", body=body).get_response()
        assert (response["status"], response["body"]) == (201, body[::-1])
    assert Echo.disconnects == 3


async def test_an_instance_serves_a_request_after_rejecting_a_too_large_one() -> None:
    class Small(Echo):
        max_body_size = 4

    app = Small()
    response = await HttpCommunicator(app, "POST", "/", body=b"too large").get_response()
    assert response["status"] == 413
    response = await HttpCommunicator(app, "POST", "/", body=b"ok").get_response()
    assert (response["status"], response["body"]) == (201, b"ko")


# -- ASGI awaitable callables (issue 10 item 4) -------------------------------------------


class Answer(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        await self.send_response(200, b"42", headers={b"Content-Type": b"text/plain"})


@pytest.mark.parametrize("kind", KINDS)
async def test_receive_and_send_may_return_futures(kind: str) -> None:
    # Channels' own regression test: one instance, called first with coroutine
    # functions, then with plain functions returning Futures (the second request
    # used to get no answer).
    app = Answer()

    async def with_coroutines(scope: Any, receive: Any, send: Any) -> None:
        async def receive_coroutine() -> Any:
            return await asyncio.ensure_future(receive())

        async def send_coroutine(message: Any) -> Any:
            return await asyncio.ensure_future(send(message))

        await app(scope, receive_coroutine, send_coroutine)

    for application in (with_coroutines, with_awaitable_callables(app, kind)):
        response = await HttpCommunicator(application, "GET", "/").get_response()
        assert (response["status"], response["body"]) == (200, b"42")
        assert response["headers"] == [(b"Content-Type", b"text/plain")]


@pytest.mark.parametrize("kind", KINDS)
async def test_futures_through_routers_and_session_middleware(kind: str) -> None:
    app = ProtocolTypeRouter(
        {"http": SessionMiddlewareStack(URLRouter([path("answer/", Answer.as_asgi())]))}
    )
    for _ in range(2):
        communicator = HttpCommunicator(with_awaitable_callables(app, kind), "GET", "/answer/")
        response = await communicator.get_response()
        assert (response["status"], response["body"]) == (200, b"42")
