"""The bytes of one queued item: a deadline, a small header, and the message.

::

    item = DEADLINE (13 ASCII digits, ms since the epoch)
           [+ "~" ATTEMPT (5 ASCII digits): only on a message delivered again]
           + msgpack array of 6: [kind, target, writer, seq, accounted, payload]

The deadline comes first, as fixed-width digits, so the Lua scripts can read it
with ``string.sub`` and drop expired items without decoding anything. ``payload``
is the message already packed by the serializer (a msgpack object: the message
map itself, or the encrypted bytes), spliced in unchanged: a group message is
serialized once and only the header differs per process. ``writer``/``seq``/
``accounted`` let a receiving process notice items that were lost inside Redis
(see :mod:`djwire.layers.redis.accounting`). The attempt marker is written by
the queue scripts (:mod:`.queue_scripts`) when a leased message goes back to its
channel; a msgpack array never starts with ``~``, so the two forms cannot be
confused.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

DEADLINE_DIGITS = 13
ATTEMPT_MARK = ord("~")
ATTEMPT_DIGITS = 5
_BODY_AFTER_ATTEMPT = DEADLINE_DIGITS + 1 + ATTEMPT_DIGITS


class Kind(enum.IntEnum):
    MESSAGE = 0  # target: the full channel name
    GROUP = 1  # target: the group; deliver to this process's members
    JOIN = 2  # target: the group; payload: a channel of this process to add
    LEAVE = 3  # target: the group; payload: a channel of this process to remove


@dataclass(slots=True)
class Item:
    deadline_ms: int
    kind: Kind
    target: str
    writer: str
    seq: int
    accounted: int
    payload: Any
    attempt: int = 1  # how many times this message has been delivered, this one included


_packer = msgpack.Packer(use_bin_type=True)


def now_ms() -> int:
    """The time on the deadlines' scale: milliseconds since the epoch, as every process
    and the Lua scripts agree on it."""
    return int(time.time() * 1000)


def pack_payload(value: Any) -> bytes:
    """``value`` as one msgpack object, ready to splice into items."""
    packed: bytes = _packer.pack(value)
    return packed


def unpack_payload(data: bytes) -> Any:
    """Inverse of :func:`pack_payload`."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def build(
    deadline_ms: int,
    kind: Kind,
    target: str,
    payload: bytes,
    writer: str = "",
    seq: int = 0,
    accounted: int = 0,
) -> bytes:
    """One item; ``payload`` must come from :func:`pack_payload` or a serializer."""
    header = _packer.pack((kind, target, writer, seq, accounted))
    # header is a fixarray of 5 (0x95); make it an array of 6 whose last element
    # is the pre-packed payload.
    return b"%013d\x96%b%b" % (deadline_ms, header[1:], payload)


def parse(item: bytes) -> Item:
    """Inverse of :func:`build`. Raises ValueError on anything malformed."""
    try:
        deadline = int(item[:DEADLINE_DIGITS])
        body, attempt = DEADLINE_DIGITS, 1
        if len(item) > DEADLINE_DIGITS and item[DEADLINE_DIGITS] == ATTEMPT_MARK:
            attempt = int(item[DEADLINE_DIGITS + 1 : _BODY_AFTER_ATTEMPT])
            body = _BODY_AFTER_ATTEMPT
        fields = msgpack.unpackb(memoryview(item)[body:], raw=False, strict_map_key=False)
        kind, target, writer, seq, accounted, payload = fields
        return Item(deadline, Kind(kind), target, writer, seq, accounted, payload, attempt)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"Malformed channel layer item ({len(item)} bytes)") from exc
