"""What processes write to each other's inbox socket: a stream of msgpack frames.

Each frame is one msgpack array, ``[kind, target, deadline_ms, message]``:

* ``MESSAGE``: ``target`` is a channel of the receiving process;
* ``GROUP``: ``target`` is a group; the receiver hands ``message`` to its own members
  of the group as they were at membership ``version`` (``[..., message, version]``);
* ``WAKE``: ``target`` is a named channel that has new messages in the store.

``deadline_ms`` is wall-clock milliseconds (processes on one machine share the
clock). The stream needs no length prefix: msgpack is self-delimiting, and
:class:`msgpack.Unpacker` yields whole frames only, so a sender that dies halfway
through a frame leaves an incomplete tail that is dropped with its connection —
never a corrupt message. A frame's header is packed per frame; the message is
packed once and spliced in, so a group message is serialized once whatever the
number of processes.
"""

from __future__ import annotations

import enum
from typing import Any

import msgpack  # type: ignore[import-untyped]

from djwire.exceptions import MessageTooLarge

from ..base import Message

#: Room for a frame's header (kind, names, deadline, version) beyond its message.
HEADER_ALLOWANCE = 1024


class Kind(enum.IntEnum):
    MESSAGE = 0
    GROUP = 1
    WAKE = 2


_packer = msgpack.Packer(use_bin_type=True)


def pack_message(message: Message, limit: int) -> bytes:
    """``message`` as msgpack; TypeError if it cannot be, MessageTooLarge past ``limit``."""
    try:
        packed: bytes = _packer.pack(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"Message cannot be serialized with msgpack: {exc}") from exc
    if len(packed) > limit:
        raise MessageTooLarge(len(packed), limit)
    return packed


def unpack_message(payload: bytes) -> Message:
    message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if not isinstance(message, dict):
        raise ValueError("a stored message is not a msgpack map")
    return message


# A fixarray of 4 or 5 (0x94, 0x95) and the kind (a positive fixint): the frames'
# first two bytes.
_MESSAGE_START = bytes((0x94, Kind.MESSAGE))
_GROUP_START = bytes((0x95, Kind.GROUP))


def message_frame(channel: str, deadline_ms: int, packed: bytes) -> bytes:
    return b"".join((_MESSAGE_START, _packer.pack(channel), _packer.pack(deadline_ms), packed))


def group_frame(group: str, deadline_ms: int, packed: bytes, version: int) -> bytes:
    return b"".join(
        (
            _GROUP_START,
            _packer.pack(group),
            _packer.pack(deadline_ms),
            packed,
            _packer.pack(version),
        )
    )


def wake_frame(channel: str) -> bytes:
    packed: bytes = _packer.pack((int(Kind.WAKE), channel, 0, None))
    return packed


def unpacker(max_message_size: int) -> Any:
    """A streaming decoder for one connection, bounded by the largest frame allowed."""
    return msgpack.Unpacker(
        raw=False,
        strict_map_key=False,
        max_buffer_size=max_message_size + HEADER_ALLOWANCE,
    )
