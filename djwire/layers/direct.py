"""Straight-to-socket delivery of ``websocket.send`` messages.

The usual path of a group message to a WebSocket is: layer queue -> consumer task
wakes -> handler -> ``send()`` -> server encodes a frame -> socket. For a group of
N sockets that is N task wake-ups and N frame encodings of the same text. When the
message already *is* what the socket should receive (``{"type": "websocket.send",
"text": ...}``, or the classic ``{"text": ...}`` reply), a process-local channel
that has a socket attached skips all of that: the frame is encoded once per encoder
and the same bytes are written to every socket.

The interface server provides :class:`DirectSocket` objects in the connection scope
(``scope["extensions"]["djwire.direct"]``); consumers attach them to their channel
after accepting. Other servers simply do not offer one, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# The shapes the server offers live in a neutral module both sides may import.
from djwire.extensions import DIRECT_SOCKET as SCOPE_EXTENSION
from djwire.extensions import DirectSocket, FrameEncoder

#: What a socket receives: exactly one of text or bytes.
Payload = tuple[str | None, bytes | None]

__all__ = [
    "SCOPE_EXTENSION",
    "DirectSocket",
    "FrameEncoder",
    "Payload",
    "socket_payload",
    "write_to_sockets",
]


def socket_payload(message: dict[str, Any]) -> Payload | None:
    """The payload if ``message`` can go straight to a socket, else None.

    Only plain data messages qualify: anything that also closes, or carries keys a
    consumer might act on, goes through the consumer as usual.
    """
    kind = message.get("type")
    if kind == "websocket.send":
        if len(message) != 2:
            return None
    elif kind is None:
        # Classic (Channels 1) reply: {"text": ...} or {"bytes": ...}.
        if len(message) != 1:
            return None
    else:
        return None
    text = message.get("text")
    if isinstance(text, str):
        return text, None
    data = message.get("bytes")
    if isinstance(data, bytes):
        return None, data
    return None


def write_to_sockets(
    targets: Iterable[tuple[str, DirectSocket]],
    payload: Payload,
    on_refused: Callable[[str], None],
) -> int:
    """Write ``payload`` to each socket, encoding it once per distinct encoder.

    Channels whose socket refuses the frame are passed to ``on_refused`` so the
    caller can queue the message for them the ordinary way. Returns how many
    sockets took the frame.
    """
    text, data = payload
    frames: dict[FrameEncoder, bytes] = {}
    written = 0
    for channel, socket in targets:
        encoder = socket.frame_encoder
        frame = frames.get(encoder)
        if frame is None:
            frame = frames[encoder] = encoder(text, data)
        if socket.write_frame(frame):
            written += 1
        else:
            on_refused(channel)
    return written
