"""The IPC layer's limits: every one a named option with a safe default."""

from __future__ import annotations

from dataclasses import dataclass, fields

from djwire.exceptions import InvalidChannelLayerError

from ..local import DEFAULT_BACKPRESSURE_TIMEOUT, check_backpressure_timeout
from ..queues import DEFAULT_MAX_DEAD_LETTERS

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Every limit of the IPC layer, with its default. Sizes in bytes, times in seconds."""

    #: Largest message (msgpack-encoded) that may leave the process; larger ones raise
    #: MessageTooLarge from send/group_send. Also bounds what a receiver buffers per
    #: connection while a message arrives.
    max_message_size: int = 4 * MiB
    #: Bytes of messages waiting, in this process, for one other process that is not
    #: reading (stuck, or its event loop blocked). Past it, send() raises ChannelFull
    #: and group_send() drops the message for that process (counted).
    peer_buffer_size: int = 8 * MiB
    #: Largest size of the shared store (named channels' messages and group
    #: memberships). Past it, sends to named channels raise ChannelFull.
    max_store_size: int = 64 * MiB
    #: Longest a write waits for another process's write to the store; past it,
    #: LayerUnavailable (a process holding the lock is stuck).
    lock_timeout: float = 2.0
    #: An idle receiver on a named channel looks at the store this often even without
    #: a wake-up (wake-ups are the normal path; this is a safety net).
    poll_interval: float = 1.0
    #: Most messages one take() hands out at once.
    max_batch: int = 1000
    #: Dead letters kept per named channel; past it the oldest go (counted, logged).
    max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS
    #: Groups whose members a process remembers between sends (each checked with
    #: one indexed read per send); the least recently loaded go first.
    group_cache_size: int = 4096
    #: Longest a send or group_send waits for a receiver in this process to catch up
    #: (djwire.layers.pacing); 0: never wait (full queues drop, as in Channels).
    backpressure_timeout: float = DEFAULT_BACKPRESSURE_TIMEOUT

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "backpressure_timeout":
                check_backpressure_timeout(value)  # 0 is allowed: it turns pacing off
            elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidChannelLayerError(
                    f"IPCChannelLayer {item.name} must be a positive number, not {value!r}"
                )
        for name in (
            "max_message_size",
            "peer_buffer_size",
            "max_store_size",
            "max_batch",
            "max_dead_letters",
        ):
            if not isinstance(getattr(self, name), int):
                raise InvalidChannelLayerError(f"IPCChannelLayer {name} must be an int")
        if self.peer_buffer_size < self.max_message_size:
            raise InvalidChannelLayerError(
                "IPCChannelLayer peer_buffer_size must be at least max_message_size "
                f"({self.peer_buffer_size} < {self.max_message_size})"
            )
        if self.max_store_size < MiB:
            raise InvalidChannelLayerError("IPCChannelLayer max_store_size must be at least 1 MiB")
