"""Version guards: what the server uses of other libraries beyond their documented API.

Each test fails with a message naming the member and the installed version, so a
new release of websockets that changes one is caught here rather than as a silent
loss of a feature (the idle-parser release) or a conformance failure.
"""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import websockets
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

import djwire.server
from djwire.server.protocols.http import Request
from djwire.server.protocols.websocket import (
    WEBSOCKETS_INTERNALS,
    WebSocketLimits,
    WebSocketProtocol,
    _waiting_for_a_frame,
)

from .test_hostile import client_frame

VERSION = f"websockets {websockets.__version__}"
SERVER = Path(djwire.server.__file__).resolve().parent


def handshake() -> Request:
    return Request(
        method="GET",
        raw_path=b"/ws",
        query_string=b"",
        http_version="1.1",
        headers=[
            (b"host", b"t"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"sec-websocket-version", b"13"),
        ],
        keep_alive=True,
        expect_continue=False,
        content_length=None,
        has_body=False,
    )


def protocol() -> WebSocketProtocol:
    return WebSocketProtocol(handshake(), WebSocketLimits())


def test_every_internal_member_exists() -> None:
    ws = protocol().ws
    for name, use in WEBSOCKETS_INTERNALS.items():
        assert hasattr(ws, name), f"{VERSION}: ServerProtocol.{name} is gone (djwire: {use})"


def test_internal_attributes_have_the_types_djwire_reads() -> None:
    ws = protocol().ws
    expected = {
        "current_size": type(None),
        "expect_continuation_frame": bool,
        "writes": list,
        "events": list,
        "parser": types.GeneratorType,
        "eof_sent": bool,
        "close_rcvd": type(None),
        "close_sent": type(None),
        "extensions": list,
    }
    for name, kind in expected.items():
        value = getattr(ws, name)
        assert isinstance(value, kind), (
            f"{VERSION}: ServerProtocol.{name} is a {type(value).__name__}, "
            f"not a {kind.__name__} (djwire: {WEBSOCKETS_INTERNALS[name]})"
        )
    assert isinstance(ws.reader, StreamReader), f"{VERSION}: ServerProtocol.reader changed"
    assert isinstance(ws.reader.buffer, bytearray), (
        f"{VERSION}: StreamReader.buffer is no longer a bytearray (djwire: idle release)"
    )


def test_process_request_still_answers_key_extensions_and_protocol() -> None:
    parameters = list(inspect.signature(ServerProtocol.process_request).parameters)
    assert parameters == ["self", "request"], (
        f"{VERSION}: ServerProtocol.process_request takes {parameters[1:]}, not (request)"
    )
    # djwire unpacks three values (accept key, extensions header, protocol header).
    assert protocol().accept(None, []).startswith(b"HTTP/1.1 101 "), (
        f"{VERSION}: ServerProtocol.process_request no longer returns three values"
    )


def test_recv_frame_is_still_the_hook_for_every_received_frame() -> None:
    """Overridden so a close frame inside a fragmented message gets a clean close."""
    assert "recv_frame" in vars(Protocol), (
        f"{VERSION}: Protocol.recv_frame is gone (djwire: {WEBSOCKETS_INTERNALS['recv_frame']})"
    )
    proto = protocol()
    first_fragment = Frame(Opcode.TEXT, b"half", fin=False).serialize(mask=True)
    close = Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True)
    proto.receive_data(first_fragment + close)
    # The server echoes the client's close (1000) instead of failing with 1002.
    assert proto.data_to_send()[:1] == [b"\x88\x02\x03\xe8"], (
        f"{VERSION}: a close frame inside a fragmented message no longer reaches "
        "djwire's recv_frame override (the connection fails with 1002)"
    )


def test_the_parser_can_still_be_seen_waiting_between_frames() -> None:
    """The idle release needs to see that the parser sits at a frame boundary."""
    proto = protocol()
    message = (
        f"{VERSION}: the frame parser no longer waits in StreamReader.at_eof() between "
        "frames (ServerProtocol.parser); djwire's ws_parser_idle_release cannot tell "
        "a frame boundary and keeps every parser"
    )
    assert _waiting_for_a_frame(proto.ws.parser), message
    frame = client_frame(1, b"hello")
    proto.receive_data(frame[:3])
    assert not _waiting_for_a_frame(proto.ws.parser), message
    assert not proto.release_if_idle()
    proto.receive_data(frame[3:])
    assert _waiting_for_a_frame(proto.ws.parser), message
    assert proto.release_if_idle(), message
    assert proto.ws.state is OPEN  # rebuilt on use


def test_the_server_reads_no_private_attribute_of_another_object() -> None:
    """Underscore names belong to their object: the server uses only its own."""
    found = []
    for path in sorted(SERVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert found == []
