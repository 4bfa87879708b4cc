"""HTTP/1.1 through real loopback sockets: keep-alive, pipelining, bodies both ways."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from djwire.exceptions import RouteNotFound

from .support import (
    GET,
    TIMEOUT,
    exchange,
    open_raw,
    parse_responses,
    read_all,
    read_response,
    serve,
)


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        if not message.get("more_body"):
            return body


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await read_body(receive)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-path", scope["path"].encode())],
        }
    )
    await send({"type": "http.response.body", "body": body or scope["path"].encode()})


async def test_keep_alive_serves_several_requests_on_one_connection():
    async with serve(echo_app) as running:
        reader, writer = await open_raw(running.port)
        for path in (b"/one", b"/two", b"/three"):
            writer.write(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
            response = await read_response(reader)
            assert response.status == 200 and response.body == path
        writer.close()


async def test_pipelined_requests_are_answered_in_order():
    async def slow_first(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with serve(slow_first) as running:
        raw = b"".join(b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in (b"slow", b"a", b"b"))
        raw += b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        responses = parse_responses(await exchange(running.port, raw))
        assert [r.body for r in responses] == [b"/slow", b"/a", b"/b", b"/c"]


async def test_half_closed_client_still_gets_answers_to_what_it_sent():
    async with serve(echo_app) as running:
        raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(3))
        responses = parse_responses(await exchange(running.port, raw, half_close=True))
        assert [r.body for r in responses] == [b"/0", b"/1", b"/2"]


async def test_chunked_request_body_reaches_the_app():
    async with serve(echo_app) as running:
        raw = (
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.body == b"hello world"


async def test_request_body_streams_in_pieces_as_it_arrives():
    seen: list[tuple[bytes, bool]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append((message["body"], message["more_body"]))
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with serve(app) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")
        await asyncio.sleep(0.1)
        writer.write(b"def")
        response = await read_response(reader)
        writer.close()
    assert response.status == 204
    assert seen[0] == (b"abc", True)
    assert b"".join(body for body, _ in seen) == b"abcdef" and seen[-1][1] is False


async def test_streamed_response_is_chunked_and_complete():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with serve(app) as running:
        data = await exchange(running.port, GET)
        (response,) = parse_responses(data)
        assert response.headers[b"transfer-encoding"] == b"chunked"
        assert response.body == b"part0;part1;part2;part3;part4;"


async def test_expect_100_continue_is_sent_when_the_app_reads():
    async with serve(echo_app) as running:
        reader, writer = await open_raw(running.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        response = await read_response(reader)
        writer.close()
        assert response.status == 200 and response.body == b"data"


async def test_no_100_continue_when_the_app_answers_without_reading():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 417})
        await send({"type": "http.response.body", "body": b"no"})

    async with serve(app) as running:
        raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        data = await exchange(running.port, raw)
        assert data.startswith(b"HTTP/1.1 417 ")
        assert b"100 Continue" not in data


async def test_head_gets_headers_without_body():
    async with serve(echo_app) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"HEAD /abc HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert b"content-length: 4\r\n" in head
        # The connection stays usable: the next response starts right away.
        writer.write(GET)
        response = await read_response(reader)
        writer.close()
        assert response.body == b"/"


async def test_http_disconnect_when_client_goes_away():
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        got.set_result(await receive())  # blocks until the client is gone

    async with serve(app) as running:
        _, writer = await open_raw(running.port)
        writer.write(GET)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        assert await asyncio.wait_for(got, TIMEOUT) == {"type": "http.disconnect"}


async def test_scope_has_client_server_root_path_and_raw_path():
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body"})

    async with serve(app, root_path="/mount") as running:
        await exchange(
            running.port, b"GET /a%2Fb?q=%20 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
    (scope,) = scopes
    assert scope["type"] == "http" and scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1" and scope["method"] == "GET"
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/a/b"
    assert scope["raw_path"] == b"/mount/a%2Fb"
    assert scope["query_string"] == b"q=%20"
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ("127.0.0.1", running.port)
    assert scope["scheme"] == "http"
    assert (b"host", b"t") in scope["headers"]


async def test_http10_request_gets_a_close_delimited_answer():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async with serve(app) as running:
        data = await exchange(running.port, b"GET / HTTP/1.0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding" not in data and data.endswith(b"\r\n\r\nab")


async def test_app_exception_gives_500_with_traceback_logged(caplog: pytest.LogCaptureFixture):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ZeroDivisionError("boom")

    async with serve(app) as running:
        (response,) = parse_responses(await exchange(running.port, GET))
    assert response.status == 500
    record = next(r for r in caplog.records if "Exception in ASGI application" in r.message)
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


async def test_route_not_found_gives_404_and_one_warning_line(caplog: pytest.LogCaptureFixture):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RouteNotFound("No route for path '/nope'", path="/nope")

    async with serve(app) as running:
        (response,) = parse_responses(
            await exchange(running.port, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", half_close=True)
        )
    assert response.status == 404
    records = [
        r
        for r in caplog.records
        if r.name.startswith("djwire.server") and r.levelno >= logging.WARNING
    ]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "/nope" in records[0].getMessage()


async def test_app_returning_without_a_response_gives_500(caplog: pytest.LogCaptureFixture):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    async with serve(app) as running:
        (response,) = parse_responses(await exchange(running.port, GET))
    assert response.status == 500
    assert any("without starting a response" in r.message for r in caplog.records)


async def test_exception_after_start_before_body_still_gives_500():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        raise RuntimeError("late")

    async with serve(app) as running:
        (response,) = parse_responses(await exchange(running.port, GET))
    assert response.status == 500


async def test_exception_mid_body_cuts_the_connection():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-stream")

    async with serve(app) as running:
        data = await exchange(running.port, GET)
    assert b"partial" in data and not data.endswith(b"0\r\n\r\n")


async def test_wrong_message_order_is_an_app_error(caplog: pytest.LogCaptureFixture):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    async with serve(app) as running:
        (response,) = parse_responses(await exchange(running.port, GET))
    assert response.status == 500
    assert any(
        "Expected 'http.response.start', got 'http.response.body'" in str(r.exc_info[1])
        for r in caplog.records
        if r.exc_info
    )


async def test_trusted_proxy_headers_set_client_and_scheme():
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body"})

    raw = (
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\n"
        b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    )
    async with serve(app) as running:
        await exchange(running.port, raw)
    async with serve(app, forwarded_allow_ips=("10.0.0.1",)) as running:
        await exchange(running.port, raw)
    async with serve(app, proxy_headers=False) as running:
        await exchange(running.port, raw)
    trusted, untrusted, off = scopes
    assert trusted["client"] == ("203.0.113.9", 0) and trusted["scheme"] == "https"
    assert untrusted["client"][0] == "127.0.0.1" and untrusted["scheme"] == "http"
    assert off["client"][0] == "127.0.0.1" and off["scheme"] == "http"


async def test_access_log_on_and_off(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="djwire.server.access")
    async with serve(echo_app, access_log=True) as running:
        await exchange(running.port, b"GET /logged HTTP/1.1\r\nHost: t\r\n\r\n", half_close=True)
    async with serve(echo_app, access_log=False) as running:
        await exchange(running.port, b"GET /silent HTTP/1.1\r\nHost: t\r\n\r\n", half_close=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "djwire.server.access"]
    assert any('"GET /logged HTTP/1.1" 200' in line for line in lines)
    assert not any("/silent" in line for line in lines)


async def test_unix_socket(tmp_path):
    path = str(tmp_path / "djwire.sock")
    async with serve(echo_app, uds=path) as running:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"GET /unix HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        (response,) = parse_responses(await read_all(reader))
        writer.close()
        assert response.body == b"/unix"
        assert running.server.sockets[0].getsockname() == path


async def test_slow_reader_gets_backpressure_not_unbounded_buffering():
    sent = 0
    blocked = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal sent
        await send({"type": "http.response.start", "status": 200})
        chunk = b"x" * 65536
        while sent < 64 * 1024 * 1024:
            task = asyncio.ensure_future(
                send({"type": "http.response.body", "body": chunk, "more_body": True})
            )
            done, _ = await asyncio.wait([task], timeout=0.5)
            if not done:
                blocked.set()
                await task
            sent += len(chunk)

    async with serve(app, send_timeout=1.0, write_high_water=64 * 1024) as running:
        _reader, writer = await open_raw(running.port)
        writer.write(GET)
        await asyncio.wait_for(blocked.wait(), TIMEOUT)
        # The app was made to wait long before sending everything: memory
        # stays bounded by the kernel buffers plus the high-water mark.
        assert sent < 32 * 1024 * 1024
        writer.close()


async def test_slow_reading_app_makes_the_server_stop_reading_the_body():
    release = asyncio.Event()
    buffered: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": str(total).encode()})

    size = 8 * 1024 * 1024
    async with serve(app, read_high_water=64 * 1024) as running:
        reader, writer = await open_raw(running.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        sender = asyncio.ensure_future(writer.drain())
        chunk = b"u" * 65536
        for _ in range(size // len(chunk)):
            writer.write(chunk)
        await asyncio.sleep(0.3)
        (session,) = running.state.sessions
        buffered.append(session.cycle.body_size)
        assert session.read_paused
        release.set()
        await writer.drain()
        await sender
        response = await read_response(reader)
        writer.close()
    assert response.body == str(size).encode()
    # Only about the high-water mark (plus one read) was held for the app.
    assert buffered[0] < 512 * 1024


async def test_many_pipelined_requests_beyond_the_queue_limit_are_all_answered():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.001)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with serve(app, max_pipelined_requests=4) as running:
        raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(49))
        raw += b"GET /49 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        responses = parse_responses(await exchange(running.port, raw))
    assert [r.body for r in responses] == [b"/%d" % i for i in range(50)]
