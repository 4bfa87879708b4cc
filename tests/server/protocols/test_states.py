"""State tables: ASGI message order is enforced with errors that name what was expected,
and every state change of the server goes through a table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from djwire.exceptions import UnexpectedMessage
from djwire.server.protocols import states
from djwire.server.protocols.states import (
    HTTP_APP,
    HTTP_PHASES,
    LIFESPAN,
    WEBSOCKET_APP,
    HttpAppState,
    HttpPhase,
    LifespanState,
    StateError,
    WebSocketAppState,
)

SERVER = Path(states.__file__).resolve().parents[1]
TABLES = {"HTTP_PHASES", "HTTP_APP", "WEBSOCKET_APP", "LIFESPAN"}
#: The attributes that hold a machine's state in the server's sessions.
STATE_ATTRIBUTES = {"phase", "app_state"}


def test_websocket_send_before_accept_names_accept_and_close() -> None:
    with pytest.raises(UnexpectedMessage) as info:
        WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "websocket.send")
    assert str(info.value).startswith(
        "Expected 'websocket.accept' or 'websocket.close', got 'websocket.send'"
    )
    assert info.value.got == "websocket.send"
    assert isinstance(info.value, RuntimeError)


def test_websocket_order() -> None:
    s = WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "websocket.accept")
    assert s is WebSocketAppState.OPEN
    assert WEBSOCKET_APP.next(s, "websocket.close") is WebSocketAppState.CLOSED
    with pytest.raises(UnexpectedMessage, match=r"got 'websocket\.accept'"):
        WEBSOCKET_APP.next(s, "websocket.accept")


def test_websocket_denial_response_extension() -> None:
    s = WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "websocket.http.response.start")
    assert s is WebSocketAppState.RESPONDING
    s = WEBSOCKET_APP.next(s, "websocket.http.response.body")
    assert WEBSOCKET_APP.after(s, "end") is WebSocketAppState.CLOSED
    with pytest.raises(UnexpectedMessage, match=r"Expected 'websocket\.http\.response\.body'"):
        WEBSOCKET_APP.next(s, "websocket.send")


def test_http_body_before_start_is_refused() -> None:
    with pytest.raises(UnexpectedMessage) as info:
        HTTP_APP.next(HttpAppState.START, "http.response.body")
    assert str(info.value).startswith("Expected 'http.response.start', got 'http.response.body'")


def test_http_nothing_after_last_body() -> None:
    s = HTTP_APP.next(HttpAppState.START, "http.response.start")
    s = HTTP_APP.after(s, "end")
    assert s is HttpAppState.DONE
    with pytest.raises(UnexpectedMessage, match="Expected nothing"):
        HTTP_APP.next(s, "http.response.body")


def test_the_inline_hot_path_checks_agree_with_the_tables() -> None:
    # The sessions check these self-loops inline instead of looking them up.
    open_ = WebSocketAppState.OPEN
    assert WEBSOCKET_APP.next(open_, "websocket.send") is open_
    assert HTTP_APP.next(HttpAppState.BODY, "http.response.body") is HttpAppState.BODY


def test_an_application_cannot_send_a_server_event() -> None:
    """Server events and app messages are separate: an app naming one gets an error."""
    with pytest.raises(UnexpectedMessage):
        HTTP_APP.next(HttpAppState.BODY, "end")
    with pytest.raises(UnexpectedMessage):
        WEBSOCKET_APP.next(WebSocketAppState.CONNECTING, "refuse")
    with pytest.raises(UnexpectedMessage):
        HTTP_APP.next(HttpAppState.BODY, "http.response.body:last")


def test_a_server_event_the_table_does_not_allow_is_a_state_error() -> None:
    with pytest.raises(StateError, match="http-connection: no 'done-idle' in state IDLE"):
        HTTP_PHASES.after(HttpPhase.IDLE, "done-idle")


def test_http_connection_phases() -> None:
    s = HTTP_PHASES.after(HttpPhase.IDLE, "bytes")
    assert s is HttpPhase.HEAD
    s = HTTP_PHASES.after(s, "request")
    assert s is HttpPhase.BUSY
    assert HTTP_PHASES.after(s, "done-idle") is HttpPhase.IDLE
    assert HTTP_PHASES.after(s, "done-partial") is HttpPhase.HEAD
    for phase in HttpPhase:
        assert HTTP_PHASES.after(phase, "close") is HttpPhase.CLOSED


def test_lifespan_order() -> None:
    s = LIFESPAN.after(LifespanState.IDLE, "startup")
    with pytest.raises(UnexpectedMessage, match=r"got 'lifespan\.shutdown\.complete'"):
        LIFESPAN.next(s, "lifespan.shutdown.complete")
    s = LIFESPAN.next(s, "lifespan.startup.complete")
    assert s is LifespanState.STARTED
    with pytest.raises(UnexpectedMessage, match="Expected nothing"):
        LIFESPAN.next(s, "lifespan.startup.complete")
    s = LIFESPAN.after(s, "shutdown")
    assert LIFESPAN.next(s, "lifespan.shutdown.failed") is LifespanState.STOPPED


def _table_calls(node: ast.AST) -> bool:
    """``TABLE.next(...)`` or ``TABLE.after(...)`` for one of the state tables."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("next", "after")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in TABLES
    )


def _state_assignments(path: Path) -> list[str]:
    """Assignments to a state attribute whose value does not come from a table."""
    offenders = []
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        from_tables: set[str] = set()  # local names bound to a table's answer
        for node in ast.walk(function):
            if not isinstance(node, ast.Assign | ast.AnnAssign):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            for target in targets:
                if isinstance(target, ast.Name) and value is not None and _table_calls(value):
                    from_tables.add(target.id)
                if not (isinstance(target, ast.Attribute) and target.attr in STATE_ATTRIBUTES):
                    continue
                if value is not None and _table_calls(value):
                    continue
                if isinstance(value, ast.Name) and value.id in from_tables:
                    continue
                if function.name == "__init__":
                    continue  # the initial state
                offenders.append(f"{path.name}:{node.lineno} in {function.name}()")
    return offenders


def test_every_state_change_goes_through_a_table() -> None:
    modules = sorted(SERVER.rglob("*.py"))
    assert any(m.name == "websocket_session.py" for m in modules)
    offenders = [line for module in modules for line in _state_assignments(module)]
    assert offenders == []


def test_the_check_of_state_changes_finds_a_direct_assignment(tmp_path: Path) -> None:
    module = tmp_path / "session.py"
    module.write_text(
        "class S:\n"
        "    def __init__(self):\n"
        "        self.phase = 1\n"
        "    def close(self):\n"
        "        self.phase = HttpPhase.CLOSED\n"
        "    def move(self):\n"
        "        new = HTTP_PHASES.after(self.phase, 'close')\n"
        "        self.phase = new\n"
    )
    assert _state_assignments(module) == ["session.py:5 in close()"]
