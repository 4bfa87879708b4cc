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

Frames go straight to a socket only from the socket's own event loop (asyncio
transports are not thread-safe); a sender on another thread's loop queues the
message for the consumer instead. A socket whose write buffer passes the server's
high-water mark makes a paced sender wait for it to drain (see
:mod:`djwire.layers.pacing`); the writing itself lives in :mod:`djwire.layers.delivery`.
"""

from __future__ import annotations

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
