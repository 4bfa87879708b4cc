"""State tables: ASGI message order is enforced with errors that name what was expected."""

from __future__ import annotations

import pytest

from djwire.exceptions import UnexpectedMessage
from djwire.server.protocols.states import (
    HTTP_APP,
    HTTP_PHASES,
    WEBSOCKET_APP,
    HttpAppState,
    HttpPhase,
    WebSocketAppState,
)


def test_websocket_send_before_accept_names_accept_and_close():
    with pytest.raises(UnexpectedMessage) as info:
        WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "websocket.send")
    assert str(info.value).startswith(
        "Expected 'websocket.accept' or 'websocket.close', got 'websocket.send'"
    )
    assert info.value.got == "websocket.send"
    assert isinstance(info.value, RuntimeError)


def test_websocket_order():
    s = WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "websocket.accept")
    assert s is WebSocketAppState.OPEN
    assert WEBSOCKET_APP.next(s, "websocket.send") is WebSocketAppState.OPEN
    assert WEBSOCKET_APP.next(s, "websocket.close") is WebSocketAppState.CLOSED
    with pytest.raises(UnexpectedMessage, match=r"got 'websocket\.accept'"):
        WEBSOCKET_APP.next(s, "websocket.accept")


def test_websocket_denial_response_extension():
    s = WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "websocket.http.response.start")
    assert s is WebSocketAppState.RESPONDING
    s = WEBSOCKET_APP.next(s, "websocket.http.response.body")
    assert WEBSOCKET_APP.next(s, "websocket.http.response.body:last") is WebSocketAppState.CLOSED
    with pytest.raises(UnexpectedMessage, match=r"Expected 'websocket\.http\.response\.body'"):
        WEBSOCKET_APP.next(s, "websocket.send")


def test_http_body_before_start_is_refused():
    with pytest.raises(UnexpectedMessage) as info:
        HTTP_APP.next(HttpAppState.START, "http.response.body")
    assert str(info.value).startswith("Expected 'http.response.start', got 'http.response.body'")


def test_http_nothing_after_last_body():
    s = HTTP_APP.next(HttpAppState.START, "http.response.start")
    s = HTTP_APP.next(s, "http.response.body")
    s = HTTP_APP.next(s, "http.response.body:last")
    assert s is HttpAppState.DONE
    with pytest.raises(UnexpectedMessage, match="Expected nothing"):
        HTTP_APP.next(s, "http.response.body")


def test_http_connection_phases():
    s = HTTP_PHASES.next(HttpPhase.IDLE, "bytes")
    assert s is HttpPhase.HEAD
    s = HTTP_PHASES.next(s, "request")
    assert s is HttpPhase.BUSY
    assert HTTP_PHASES.next(s, "done-idle") is HttpPhase.IDLE
    assert HTTP_PHASES.next(s, "done-partial") is HttpPhase.HEAD
    with pytest.raises(UnexpectedMessage):
        HTTP_PHASES.next(HttpPhase.IDLE, "done-idle")
