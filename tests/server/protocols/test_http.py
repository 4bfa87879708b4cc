"""The sans-I/O HTTP/1.1 layer, byte by byte: no sockets."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from djwire.server.protocols.http import (
    CONTINUE_RESPONSE,
    Body,
    EndOfMessage,
    HttpLimits,
    HttpRequestReader,
    InvalidResponse,
    Rejected,
    Request,
    ResponseFraming,
    WebSocketRequest,
    simple_response,
)


def feed(data: bytes, **limits: int | None) -> list[object]:
    return HttpRequestReader(HttpLimits(**limits)).feed(data)  # type: ignore[arg-type]


def test_simple_get_becomes_request_and_end():
    events = feed(b"GET /a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Thing: One\r\n\r\n")
    request, end = events
    assert isinstance(request, Request)
    assert isinstance(end, EndOfMessage)
    assert request.method == "GET"
    assert request.raw_path == b"/a%20b/c"
    assert request.path == "/a b/c"
    assert request.query_string == b"x=1&y=2"
    assert request.http_version == "1.1"
    assert request.headers == [(b"host", b"h"), (b"x-thing", b"One")]
    assert request.keep_alive is True
    assert request.has_body is False


def test_utf8_percent_encoded_path_is_decoded():
    (request, _) = feed(b"GET /caf%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert request.path == "/café"


def test_request_split_into_single_bytes_parses_the_same():
    raw = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    reader = HttpRequestReader(HttpLimits())
    events: list[object] = []
    for i in range(len(raw)):
        events += reader.feed(raw[i : i + 1])
    assert isinstance(events[0], Request)
    body = b"".join(e.data for e in events if isinstance(e, Body))
    assert body == b"hello"
    assert isinstance(events[-1], EndOfMessage)


def test_chunked_body_is_decoded():
    events = feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    request = events[0]
    assert isinstance(request, Request)
    assert request.has_body and request.content_length is None
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"abcde"
    assert isinstance(events[-1], EndOfMessage)


def test_pipelined_requests_come_out_in_order():
    events = feed(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    paths = [e.raw_path for e in events if isinstance(e, Request)]
    assert paths == [b"/1", b"/2"]
    assert sum(isinstance(e, EndOfMessage) for e in events) == 2


def test_http10_without_keep_alive_closes():
    (request, _) = feed(b"GET / HTTP/1.0\r\n\r\n")
    assert request.http_version == "1.0"
    assert request.keep_alive is False


def test_connection_close_turns_keep_alive_off():
    (request, _) = feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert request.keep_alive is False


def test_expect_100_continue_is_flagged():
    events = feed(
        b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    assert events[0].expect_continue is True  # type: ignore[attr-defined]
    assert CONTINUE_RESPONSE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_absolute_form_target_keeps_path_and_query():
    (request, _) = feed(b"GET http://example.com/x/y?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert request.raw_path == b"/x/y"
    assert request.query_string == b"q=1"


def test_malformed_request_is_rejected_with_400_and_nothing_after():
    reader = HttpRequestReader(HttpLimits())
    events = reader.feed(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert events == [Rejected(400, events[0].reason)]  # type: ignore[union-attr]
    assert reader.feed(b"GET / HTTP/1.1\r\n\r\n") == []


def test_http11_request_without_host_is_rejected_with_400():
    # RFC 9112 section 3.2: "A server MUST respond with a 400 (Bad Request) status
    # code to any HTTP/1.1 request message that lacks a Host header field".
    (rejected,) = feed(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert rejected == Rejected(400, "Missing Host header")


def test_http10_request_may_omit_host():
    request, end = feed(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(request, Request) and isinstance(end, EndOfMessage)


def test_several_host_headers_are_rejected_with_400_in_any_version():
    for version in (b"1.0", b"1.1"):
        raw = b"GET / HTTP/" + version + b"\r\nHost: a\r\nHost: b\r\n\r\n"
        assert feed(raw) == [Rejected(400, "Several Host headers")]


def test_websocket_upgrade_without_host_is_rejected_with_400():
    raw = (
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert feed(raw) == [Rejected(400, "Missing Host header")]


def test_garbage_is_rejected_with_400():
    (rejected,) = feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert isinstance(rejected, Rejected) and rejected.status == 400


def test_header_block_over_limit_is_431():
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    (rejected,) = feed(raw, max_header_size=1024)
    assert isinstance(rejected, Rejected) and rejected.status == 431


def test_trickled_header_over_limit_is_431_before_it_ends():
    reader = HttpRequestReader(HttpLimits(max_header_size=1024))
    assert reader.feed(b"GET / HTTP/1.1\r\nX-Big: ") == []
    events: list[object] = []
    for _ in range(20):
        events += reader.feed(b"a" * 100)
        if events:
            break
    assert events and isinstance(events[0], Rejected) and events[0].status == 431


def test_too_many_headers_is_431():
    raw = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(20)) + b"\r\n"
    (rejected,) = feed(raw, max_header_count=10)
    assert isinstance(rejected, Rejected) and rejected.status == 431


def test_announced_body_over_limit_is_413_before_any_body():
    (rejected,) = feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n", max_request_body_size=10
    )
    assert isinstance(rejected, Rejected) and rejected.status == 413


def test_chunked_body_over_limit_is_413_when_crossed():
    events = feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
        max_request_body_size=10,
    )
    assert isinstance(events[0], Request)
    assert isinstance(events[-1], Rejected) and events[-1].status == 413


def test_websocket_upgrade_carries_trailing_bytes():
    events = feed(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        b"\x81\x80abcd"
    )
    (upgrade,) = events
    assert isinstance(upgrade, WebSocketRequest)
    assert upgrade.request.raw_path == b"/ws"
    assert upgrade.trailing == b"\x81\x80abcd"


def test_other_upgrades_are_plain_requests_that_close():
    events = feed(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    request = events[0]
    assert isinstance(request, Request)
    assert request.keep_alive is False


# -- responses -------------------------------------------------------------------


def framing(**kwargs: bool) -> ResponseFraming:
    options = {"head_request": False, "keep_alive": True, "http11": True}
    options.update(kwargs)
    return ResponseFraming(**options)


def test_single_piece_response_gets_content_length():
    f = framing()
    out = f.head(200, [(b"content-type", b"text/plain")], b"hi", True, date=b"D", server=b"S")
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: D\r\nserver: S\r\n"
        b"content-length: 2\r\n\r\nhi"
    )
    assert f.keep_alive


def test_streamed_response_is_chunked():
    f = framing()
    out = f.head(200, [], b"ab", False, date=None, server=None)
    assert out == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n"
    assert f.body(b"", False) == b""
    assert f.body(b"cde", False) == b"3\r\ncde\r\n"
    assert f.body(b"", True) == b"0\r\n\r\n"


def test_chunked_response_parses_back_with_httptools():
    f = framing()
    wire = f.head(200, [], b"x" * 300, False, date=None, server=None)
    wire += f.body(b"y" * 20, True)
    received: list[bytes] = []

    class Sink:
        def on_body(self, body: bytes) -> None:
            received.append(body)

    httptools.HttpResponseParser(Sink()).feed_data(wire)
    assert b"".join(received) == b"x" * 300 + b"y" * 20


def test_http10_streamed_response_is_close_delimited():
    f = framing(http11=False, keep_alive=True)
    out = f.head(200, [], b"ab", False, date=None, server=None)
    assert b"transfer-encoding" not in out and b"connection: close" in out
    assert f.close_delimited and not f.keep_alive


def test_head_request_gets_headers_but_no_body():
    f = framing(head_request=True)
    out = f.head(200, [(b"content-length", b"5")], b"hello", True, date=None, server=None)
    assert out.endswith(b"content-length: 5\r\n\r\n")
    assert f.keep_alive


def test_204_and_304_carry_no_body_framing():
    for status in (204, 304):
        out = framing().head(status, [], b"", True, date=None, server=None)
        assert b"content-length" not in out and b"transfer-encoding" not in out


def test_app_content_length_is_honoured_and_overflow_refused():
    f = framing()
    f.head(200, [(b"Content-Length", b"3")], b"ab", False, date=None, server=None)
    with pytest.raises(InvalidResponse, match="longer"):
        f.body(b"cd", True)


def test_short_body_for_content_length_disables_keep_alive():
    f = framing()
    f.head(200, [(b"content-length", b"10")], b"ab", True, date=None, server=None)
    assert not f.keep_alive


def test_app_connection_close_header_ends_keep_alive():
    f = framing()
    out = f.head(200, [(b"Connection", b"close")], b"", True, date=None, server=None)
    assert not f.keep_alive and out.count(b"connection: close") == 1


def test_apps_own_date_and_server_win():
    out = framing().head(
        200, [(b"date", b"mine"), (b"server", b"me")], b"", True, date=b"D", server=b"S"
    )
    assert b"date: D" not in out and b"server: S" not in out


@pytest.mark.parametrize(
    "header",
    [(b"x-evil", b"a\r\nset-cookie: x"), (b"bad name", b"v"), (b"", b"v"), ("str", b"v")],
)
def test_header_injection_is_refused(header):
    with pytest.raises(InvalidResponse):
        framing().head(200, [header], b"", True, date=None, server=None)


def test_simple_response_closes():
    out = simple_response(413, b"too big\n")
    assert out.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n") or out.startswith(
        b"HTTP/1.1 413 Content Too Large\r\n"
    )
    assert b"connection: close\r\n" in out and out.endswith(b"\r\n\r\ntoo big\n")


# -- hypothesis ------------------------------------------------------------------

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.lists(token, max_size=4),
    headers=st.lists(st.tuples(token, value), max_size=8),
    body=st.binary(max_size=200),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=5),
)
def test_generated_requests_parse_back_whatever_the_cuts(
    method, path, headers, body, chunked, cuts
):
    headers = [
        (n, v)
        for n, v in headers
        if n
        not in ("content-length", "transfer-encoding", "upgrade", "connection", "expect", "host")
    ]
    target = "/" + "/".join(path)
    lines = [f"{method} {target} HTTP/1.1", "Host: h"] + [f"{n}: {v}" for n, v in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        encoded = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        encoded = body
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded
    reader = HttpRequestReader(HttpLimits())
    events: list[object] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += reader.feed(raw[start:cut])
        start = max(start, cut)
    events += reader.feed(raw[start:])
    request = events[0]
    assert isinstance(request, Request)
    assert request.method == method and request.path == target
    assert [(n.encode(), v.strip().encode()) for n, v in headers] == request.headers[
        1 : 1 + len(headers)
    ]
    assert b"".join(e.data for e in events if isinstance(e, Body)) == body
    assert isinstance(events[-1], EndOfMessage)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data):
    reader = HttpRequestReader(HttpLimits(max_header_size=256, max_header_count=5))
    for event in reader.feed(data) + reader.feed(data):
        if isinstance(event, Rejected):
            assert event.status in (400, 413, 431)
