"""The bytes of one queued item: a deadline, a small header, and the message.

::

    item = DEADLINE (13 ASCII digits, ms since the epoch) + msgpack array of 6:
           [kind, target, writer, seq, accounted, payload]

The deadline comes first, as fixed-width digits, so the Lua scripts can read it
with ``string.sub`` and drop expired items without decoding anything. ``payload``
is the message already packed by the serializer (a msgpack object: the message
map itself, or the encrypted bytes), spliced in unchanged: a group message is
serialized once and only the header differs per process. ``writer``/``seq``/
``accounted`` let a receiving process notice items that were lost inside Redis
(see :mod:`djwire.layers.redis.accounting`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

DEADLINE_DIGITS = 13


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


_packer = msgpack.Packer(use_bin_type=True)


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
        fields = msgpack.unpackb(
            memoryview(item)[DEADLINE_DIGITS:], raw=False, strict_map_key=False
        )
        kind, target, writer, seq, accounted, payload = fields
        return Item(deadline, Kind(kind), target, writer, seq, accounted, payload)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"Malformed channel layer item ({len(item)} bytes)") from exc
