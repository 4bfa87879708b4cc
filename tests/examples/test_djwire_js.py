"""djwire.js in a real browser, against a scripted fake WebSocket.

The fake (in FAKE_SOCKET below) opens or fails each connection as the test says, so
backoff, the send queue and rejoin are checked exactly and quickly, without a
server. The demo's browser tests cover the same code against the real server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DJWIRE_JS = Path(__file__).resolve().parents[2] / "djwire" / "static" / "djwire" / "djwire.js"
ORIGIN = "http://djwire.test"

# Each new FakeSocket takes the next scripted outcome: "open" or "fail" (the
# default when the script runs out).
FAKE_SOCKET = """
window.outcomes = [];
window.sockets = [];
window.FakeSocket = class {
  constructor(url, protocols) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    sockets.push(this);
    const outcome = outcomes.shift() || "fail";
    setTimeout(() => outcome === "open" ? this.serverOpen() : this.serverClose(1006), 0);
  }
  serverOpen() { this.readyState = 1; this.onopen && this.onopen({}); }
  serverClose(code) {
    this.readyState = 3;
    this.onclose && this.onclose({code: code, reason: "", wasClean: code !== 1006});
  }
  serverSend(data) { this.onmessage && this.onmessage({data: data}); }
  send(data) { this.sent.push(data); }
  close(code) { if (this.readyState < 2) this.serverClose(code || 1000); }
};
"""


@pytest.fixture
def js_page(new_page: Callable[..., Any]) -> Any:
    page = new_page()
    page.route(
        ORIGIN + "/**",
        lambda route: route.fulfill(
            content_type="text/html", body="<!doctype html><title>t</title><p id=s></p>"
        ),
    )
    page.goto(ORIGIN + "/room/")
    page.add_script_tag(path=str(DJWIRE_JS))
    page.add_script_tag(content=FAKE_SOCKET)
    return page


def test_backoff_delay_is_exponential_capped_and_jittered(js_page: Any) -> None:
    delays = js_page.evaluate(
        """() => {
        const options = {minDelay: 100, maxDelay: 1000, factor: 2, jitter: 0.5};
        const at = (r) => [1, 2, 3, 4, 5, 6, 9].map(
            (n) => djwire.backoffDelay(n, options, () => r));
        return {none: at(0), most: at(1)};
    }"""
    )
    assert delays["none"] == [100, 200, 400, 800, 1000, 1000, 1000]
    assert delays["most"] == [50, 100, 200, 400, 500, 500, 500]


def test_failed_connections_are_retried_with_growing_waits(js_page: Any) -> None:
    events = js_page.evaluate(
        """() => new Promise((resolve) => {
        const seen = [];
        const socket = djwire.connect("/ws/x/", {
            WebSocket: FakeSocket, minDelay: 10, maxDelay: 80, factor: 2, jitter: 0.5,
        });
        djwire.showStatus(socket, document.getElementById("s"));
        socket.on("reconnecting", (info) => {
            seen.push([info.attempt, info.delay, document.getElementById("s").dataset.state]);
            if (info.attempt === 6) { socket.close(); resolve({seen, sockets: sockets.length,
                                                              state: socket.state}); }
        });
    })"""
    )
    attempts = [attempt for attempt, _, _ in events["seen"]]
    assert attempts == [1, 2, 3, 4, 5, 6]
    for attempt, delay, state in events["seen"]:
        base = min(80, 10 * 2 ** (attempt - 1))
        assert base / 2 <= delay <= base, (attempt, delay)
        assert state == "reconnecting"
    assert events["sockets"] == 6
    assert events["state"] == "closed"


def test_relative_url_is_resolved_against_the_page_for_each_attempt(js_page: Any) -> None:
    urls = js_page.evaluate(
        """() => new Promise((resolve) => {
        let n = 0;
        const socket = djwire.connect(() => "stream/?n=" + (n++),
                                      {WebSocket: FakeSocket, minDelay: 1, maxDelay: 1});
        socket.on("reconnecting", (info) => {
            if (info.attempt === 2) { socket.close(); resolve(sockets.map((s) => s.url)); }
        });
    })"""
    )
    assert urls == ["ws://djwire.test/room/stream/?n=0", "ws://djwire.test/room/stream/?n=1"]


def test_messages_sent_while_offline_are_queued_and_sent_after_rejoin(js_page: Any) -> None:
    result = js_page.evaluate(
        """() => new Promise((resolve) => {
        outcomes.push("open", "fail", "open");
        const opens = [];
        const socket = djwire.connect("/ws/", {
            WebSocket: FakeSocket, minDelay: 5, maxDelay: 5, maxQueue: 3,
            rejoin: (s) => s.send({type: "join"}),
        });
        const accepted = [socket.send({n: 0})];       // queued: still connecting
        socket.on("open", (info) => {
            opens.push(info.reconnected);
            if (opens.length === 1) {
                accepted.push(socket.send({n: 1}));   // sent at once
                sockets[0].serverClose(1001);         // the server goes away
                for (let n = 2; n <= 5; n++) accepted.push(socket.send({n: n}));
            } else {
                resolve({opens, accepted, first: sockets[0].sent, last: sockets[2].sent,
                         queued: socket.queue.length});
            }
        });
    })"""
    )
    assert result["opens"] == [False, True]
    # Queue of 3: {n: 2..4} fit, {n: 5} is refused and send() says so.
    assert result["accepted"] == [True, True, True, True, True, False]
    assert result["first"] == ['{"n":0}', '{"n":1}']
    assert result["last"] == ['{"type":"join"}', '{"n":2}', '{"n":3}', '{"n":4}']
    assert result["queued"] == 0


def test_json_messages_are_parsed_and_bad_json_is_an_error_event(js_page: Any) -> None:
    result = js_page.evaluate(
        """() => new Promise((resolve) => {
        outcomes.push("open");
        const messages = [], errors = [];
        const socket = djwire.connect("/ws/", {WebSocket: FakeSocket});
        socket.on("message", (data) => messages.push(data));
        socket.on("error", (error) => errors.push(String(error.message)));
        socket.on("open", () => {
            sockets[0].serverSend('{"type": "hello", "n": 1}');
            sockets[0].serverSend("{not json");
            socket.close();
            resolve({messages, errors, sent: socket.send({late: true})});
        });
    })"""
    )
    assert result["messages"] == [{"type": "hello", "n": 1}]
    assert len(result["errors"]) == 1
    assert "not valid JSON" in result["errors"][0]
    assert result["sent"] is False  # closed for good: nothing is queued any more


def test_should_reconnect_can_refuse_and_the_socket_then_closes(js_page: Any) -> None:
    result = js_page.evaluate(
        """() => new Promise((resolve) => {
        outcomes.push("open");
        const closes = [];
        const socket = djwire.connect("/ws/", {
            WebSocket: FakeSocket, shouldReconnect: (event) => event.code !== 4403,
        });
        socket.on("close", (info) => {
            closes.push([info.code, info.willReconnect]);
            setTimeout(() => resolve({closes, state: socket.state, sockets: sockets.length}), 50);
        });
        socket.on("open", () => sockets[0].serverClose(4403));
    })"""
    )
    assert result == {"closes": [[4403, False]], "state": "closed", "sockets": 1}


def test_a_throwing_listener_does_not_stop_the_others(js_page: Any) -> None:
    result = js_page.evaluate(
        """() => new Promise((resolve) => {
        outcomes.push("open");
        const socket = djwire.connect("/ws/", {WebSocket: FakeSocket});
        socket.on("open", () => { throw new Error("listener bug"); });
        socket.on("open", () => { socket.close(); resolve("second listener ran"); });
    })"""
    )
    assert result == "second listener ran"
    assert any("listener bug" in text for text in js_page.console_messages)
