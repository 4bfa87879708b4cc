"""The sans-I/O WebSocket layer, byte by byte: no sockets.

Client frames are produced by websockets' own client protocol (masked, and
compressed when permessage-deflate is negotiated), so what goes in is exactly
what a real client would send.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import BINARY as OP_BINARY
from websockets.frames import TEXT as OP_TEXT
from websockets.frames import Frame
from websockets.frames import Opcode as Op

from djwire.server.protocols.http import HttpLimits, HttpRequestReader, WebSocketRequest
from djwire.server.protocols.websocket import (
    Closed,
    HandshakeRejected,
    WebSocketLimits,
    WebSocketProtocol,
    encode_frame,
)

KEY = base64.b64encode(b"0123456789abcdef").decode()


def upgrade_request(*extra: str, method: str = "GET", version: str = "13", key: str = KEY):
    lines = [
        f"{method} /chat?room=1 HTTP/1.1",
        "Host: h",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
        *extra,
    ]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    (event,) = HttpRequestReader(HttpLimits()).feed(raw)
    assert isinstance(event, WebSocketRequest)
    return event.request


def opened(*extra: str, **limits: object) -> tuple[WebSocketProtocol, bytes]:
    proto = WebSocketProtocol(upgrade_request(*extra), WebSocketLimits(**limits))  # type: ignore[arg-type]
    return proto, proto.accept(None, [])


def mask(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A client frame: masked as RFC 6455 section 5.3 requires."""
    key = os.urandom(4)
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", head, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", head, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, length)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


# -- handshake -------------------------------------------------------------------


def test_accept_answers_101_with_the_rfc_accept_key():
    proto, response = opened()
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    # RFC 6455 section 1.3's example key/answer pair.
    sample = WebSocketProtocol(upgrade_request(key="dGhlIHNhbXBsZSBub25jZQ=="), WebSocketLimits())
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in sample.accept(None, [])
    assert response.endswith(b"\r\n\r\n")
    assert proto.is_open


def test_accept_echoes_chosen_subprotocol_and_app_headers():
    proto = WebSocketProtocol(upgrade_request("Sec-WebSocket-Protocol: a, b"), WebSocketLimits())
    response = proto.accept("b", [(b"x-extra", b"1")])
    assert b"sec-websocket-protocol: b\r\n" in response
    assert b"x-extra: 1\r\n" in response


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [({"version": "8"}, 400), ({"key": "short"}, 400), ({"method": "POST"}, 405)],
)
def test_invalid_handshakes_are_rejected(kwargs, status):
    with pytest.raises(HandshakeRejected) as info:
        WebSocketProtocol(upgrade_request(**kwargs), WebSocketLimits())
    assert info.value.response.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in info.value.response


def test_deflate_is_negotiated_without_context_takeover_by_default():
    proto, response = opened(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    )
    assert proto.compressed
    line = next(
        line for line in response.split(b"\r\n") if line.startswith(b"sec-websocket-extensions")
    )
    assert b"server_no_context_takeover" in line and b"client_no_context_takeover" in line


def test_deflate_off_means_no_extension():
    proto, response = opened(
        "Sec-WebSocket-Extensions: permessage-deflate", per_message_deflate=False
    )
    assert not proto.compressed and b"sec-websocket-extensions" not in response


# -- messages ------------------------------------------------------------------------


def test_text_and_binary_messages_become_asgi_events():
    proto, _ = opened()
    events = proto.receive_data(mask(1, "héllo".encode()) + mask(2, b"\x00\x01"))
    assert events == [
        {"type": "websocket.receive", "text": "héllo"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
    ]


def test_empty_messages_are_delivered():
    proto, _ = opened()
    assert proto.receive_data(mask(1, b"") + mask(2, b"")) == [
        {"type": "websocket.receive", "text": ""},
        {"type": "websocket.receive", "bytes": b""},
    ]


def test_fragmented_text_is_reassembled_even_when_a_character_is_split():
    proto, _ = opened()
    data = "€uro".encode()  # the euro sign is 3 bytes; split it across frames
    wire = (
        mask(1, data[:1], fin=False) + mask(0, data[1:2], fin=False) + mask(0, data[2:], fin=True)
    )
    assert proto.receive_data(wire) == [{"type": "websocket.receive", "text": "€uro"}]


def test_fragmented_binary_with_ping_in_between():
    proto, _ = opened()
    wire = mask(2, b"ab", fin=False) + mask(9, b"p") + mask(0, b"cd", fin=True)
    assert proto.receive_data(wire) == [{"type": "websocket.receive", "bytes": b"abcd"}]
    # The ping was answered with a pong carrying its payload.
    assert proto.data_to_send() == [b"\x8a\x01p"]


def test_invalid_utf8_fails_fast_with_1007():
    proto, _ = opened()
    events = proto.receive_data(mask(1, b"ok", fin=False) + mask(0, b"\xff", fin=False))
    assert events == [Closed(1007, events[0].reason)]  # type: ignore[union-attr]
    sent = b"".join(proto.data_to_send())
    assert sent[:2] == b"\x88" + bytes([len(sent) - 2]) and sent[2:4] == b"\x03\xef"


def test_frame_over_limit_closes_1009():
    proto, _ = opened(max_message_size=100)
    (closed,) = proto.receive_data(mask(2, b"x" * 101))
    assert isinstance(closed, Closed) and closed.code == 1009
    assert b"".join(proto.data_to_send())[2:4] == struct.pack("!H", 1009)


def test_fragments_adding_up_over_limit_close_1009():
    proto, _ = opened(max_message_size=100)
    events = proto.receive_data(mask(2, b"x" * 60, fin=False) + mask(0, b"x" * 60, fin=True))
    assert events[-1] == Closed(1009, events[-1].reason)  # type: ignore[union-attr]


def test_frame_limit_below_message_limit():
    proto, _ = opened(max_message_size=1000, max_frame_size=10)
    (closed,) = proto.receive_data(mask(2, b"x" * 11))
    assert isinstance(closed, Closed) and closed.code == 1009


def test_decompression_bomb_is_stopped_at_the_message_limit():
    proto, _ = opened("Sec-WebSocket-Extensions: permessage-deflate", max_message_size=64 * 1024)
    compressor = zlib.compressobj(wbits=-15)
    bomb = compressor.compress(b"\x00" * (16 * 1024 * 1024)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692 7.2.1: strip the trailing empty block
    assert len(bomb) < 20_000
    (closed,) = proto.receive_data(mask(2, bomb, rsv1=True))
    assert isinstance(closed, Closed) and closed.code == 1009


def test_compressed_messages_round_trip():
    proto, _ = opened("Sec-WebSocket-Extensions: permessage-deflate")
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"hello hello hello") + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert proto.receive_data(mask(1, payload[:-4], rsv1=True)) == [
        {"type": "websocket.receive", "text": "hello hello hello"}
    ]
    frame = proto.encode("x" * 1000, None)
    assert frame[0] == 0xC1  # FIN + RSV1 (compressed) + text
    assert len(frame) < 100


def test_unmasked_client_frame_is_a_protocol_error():
    proto, _ = opened()
    (closed,) = proto.receive_data(b"\x81\x02hi")
    assert closed == Closed(1002, closed.reason)


def test_rsv1_without_deflate_is_a_protocol_error():
    proto, _ = opened()
    (closed,) = proto.receive_data(mask(1, b"hi", rsv1=True))
    assert closed.code == 1002  # type: ignore[union-attr]


def test_client_close_is_echoed_and_reported():
    proto, _ = opened()
    (closed,) = proto.receive_data(mask(8, close_payload(4001, "bye")))
    assert closed == Closed(4001, "bye")
    assert proto.data_to_send() == [b"\x88\x05\x0f\xa1bye", b""]  # echo, then EOF
    assert not proto.is_open


def test_close_without_code_reports_1005():
    proto, _ = opened()
    (closed,) = proto.receive_data(mask(8, b""))
    assert closed.code == 1005  # type: ignore[union-attr]


def test_server_close_then_client_echo():
    proto, _ = opened()
    proto.send_close(1000, "done")
    assert proto.data_to_send() == [b"\x88\x06\x03\xe8done"]
    assert not proto.is_open
    assert proto.receive_data(mask(1, b"late")) == [{"type": "websocket.receive", "text": "late"}]
    (closed,) = proto.receive_data(mask(8, close_payload(1000)))
    assert closed.code == 1000  # type: ignore[union-attr]


def test_eof_without_close_is_1006():
    proto, _ = opened()
    assert proto.receive_eof().code == 1006


def test_long_close_reason_is_trimmed_to_fit_a_control_frame():
    proto, _ = opened()
    proto.send_close(1000, "é" * 200)
    (frame,) = proto.data_to_send()
    assert len(frame) - 2 <= 125


# -- the shared frame encoder -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=70_000), st.binary(max_size=70_000)))
def test_shared_encoder_matches_websockets_serializer(payload):
    if isinstance(payload, str):
        ours = encode_frame(payload, None)
        theirs = Frame(OP_TEXT, payload.encode()).serialize(mask=False)
    else:
        ours = encode_frame(None, payload)
        theirs = Frame(OP_BINARY, payload).serialize(mask=False)
    assert ours == theirs


def test_connections_without_deflate_use_the_shared_encoder():
    proto, _ = opened()
    assert proto.encode("hi", None) == encode_frame("hi", None) == b"\x81\x02hi"


# -- hypothesis: frames -----------------------------------------------------------------

messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(messages, st.integers(min_value=1, max_value=40), st.lists(st.integers(1, 50), max_size=4))
def test_any_messages_any_fragmentation_any_cuts(messages, fragment, cuts):
    proto, _ = opened()
    wire = b""
    for message in messages:
        data = message.encode() if isinstance(message, str) else message
        opcode = 1 if isinstance(message, str) else 2
        pieces = [data[i : i + fragment] for i in range(0, len(data), fragment)] or [b""]
        for index, piece in enumerate(pieces):
            wire += mask(opcode if index == 0 else 0, piece, fin=index == len(pieces) - 1)
    events: list[object] = []
    position = 0
    for cut in cuts:
        events += proto.receive_data(wire[position : position + cut])
        position += cut
    events += proto.receive_data(wire[position:])
    expected = [
        {"type": "websocket.receive", "text": m}
        if isinstance(m, str)
        else {"type": "websocket.receive", "bytes": m}
        for m in messages
    ]
    assert events == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_and_close_with_a_valid_code(data):
    proto, _ = opened(max_message_size=100)
    for event in proto.receive_data(data):
        if isinstance(event, Closed):
            assert event.code in (1002, 1005, 1007, 1009) or 1000 <= event.code < 5000
    proto.data_to_send()


def test_opcodes_are_the_rfc_ones():
    assert (Op.TEXT, Op.BINARY, Op.CLOSE) == (1, 2, 8)


# -- an idle connection holds no parser ---------------------------------------------------


def test_idle_connection_releases_its_parser_and_rebuilds_it_on_demand():
    proto, _ = opened()
    assert proto.receive_data(mask(1, b"one")) == [{"type": "websocket.receive", "text": "one"}]
    assert proto.release_if_idle() and proto._ws is None
    assert proto.is_open
    # The next frame, even split, arrives through a fresh parser.
    wire = mask(1, b"two")
    assert proto.receive_data(wire[:3]) == []
    assert not proto.release_if_idle()  # half a frame is in flight
    assert proto.receive_data(wire[3:]) == [{"type": "websocket.receive", "text": "two"}]
    proto.send_ping(b"p")
    assert not proto.release_if_idle()  # output not taken yet
    assert proto.data_to_send() == [b"\x89\x01p"]
    assert proto.release_if_idle()


def test_parser_is_kept_inside_a_fragmented_message():
    proto, _ = opened()
    assert proto.receive_data(mask(1, b"par", fin=False)) == []
    assert not proto.release_if_idle()
    assert proto.receive_data(mask(0, b"tial")) == [
        {"type": "websocket.receive", "text": "partial"}
    ]
    assert proto.release_if_idle()


def test_compression_survives_a_release():
    proto, _ = opened("Sec-WebSocket-Extensions: permessage-deflate")
    assert proto.release_if_idle()
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"after release") + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert proto.receive_data(mask(1, payload[:-4], rsv1=True)) == [
        {"type": "websocket.receive", "text": "after release"}
    ]
    assert proto.encode("x" * 500, None)[0] == 0xC1


def test_released_connection_still_closes_properly():
    proto, _ = opened()
    assert proto.release_if_idle()
    proto.send_close(1001, "bye")
    assert proto.data_to_send() == [b"\x88\x05\x03\xe9bye"]
    assert not proto.is_open
