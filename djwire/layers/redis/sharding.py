"""Where things live in Redis: key names, and which shard holds them.

Every key and pub/sub channel the layer uses carries a Redis Cluster hash tag
(``{...}``, Redis Cluster spec, "Hash tags"), and the tag is also what the shard
router hashes. So all keys of one channel, one group or one process inbox sit in
one slot (cluster) or on one shard (client-side sharding), and a Lua script can
touch them together. Sender and receiver derive the tag from the same name, so
they always agree on the shard — including for process-specific channels, whose
messages go to the owning process's inbox, named after the process token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def jump_hash(key: bytes, buckets: int) -> int:
    """Jump consistent hash (Lamping & Veach, 2014): ``key`` -> ``[0, buckets)``.

    Adding a shard moves only ~1/n of the keys, unlike ``crc32 % n``.
    """
    if buckets <= 1:
        return 0
    state = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        state = (state * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        candidate = int((bucket + 1) * ((1 << 31) / ((state >> 33) + 1)))
    return bucket


def owner_token(channel: str) -> str | None:
    """The process token of a process-specific name ``prefix.TOKEN!local``.

    None for names without ``!`` (named channels, shared by every process).
    """
    bang = channel.find("!")
    if bang < 0:
        return None
    return channel[:bang].rpartition(".")[2]


@dataclass(frozen=True)
class Keys:
    """Names of the keys and pub/sub channels for one ``prefix``."""

    prefix: str

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError(
                f"prefix must be non-empty and contain no braces, not {self.prefix!r}"
            )

    # Tags: what sharding hashes, and the Redis Cluster hash tag of every key.
    @staticmethod
    def inbox_tag(token: str) -> str:
        return "i." + token

    @staticmethod
    def channel_tag(channel: str) -> str:
        return "c." + channel

    @staticmethod
    def group_tag(group: str) -> str:
        return "g." + group

    # One list per process: every message for its process-specific channels.
    def inbox(self, token: str) -> bytes:
        return f"{self.prefix}:{{i.{token}}}".encode()

    def rejections(self, token: str) -> bytes:
        """Hash ``writer -> count`` of pushes refused because the inbox was full."""
        return f"{self.prefix}:{{i.{token}}}:r".encode()

    # One list per named channel, shared by the processes that receive from it.
    def channel(self, channel: str) -> bytes:
        return f"{self.prefix}:{{c.{channel}}}".encode()

    def taken(self, list_key: bytes, token: str) -> bytes:
        """The batch a process took from ``list_key`` and has not confirmed yet."""
        return list_key + b":t." + token.encode()

    def idle(self, list_key: bytes) -> bytes:
        """The batch id an idle receiver of ``list_key`` left for the next push to
        fill (see scripts.PUSH_INBOX)."""
        return list_key + b":a"

    def wake(self, list_key: bytes) -> bytes:
        """Pub/sub channel announcing that ``list_key`` went from empty to non-empty."""
        return list_key + b":w"

    # A named channel used as a work queue (see queue_scripts.py): messages out on a
    # lease, messages sent for later, and dead letters. Same tag as the list.
    def leases(self, channel: str) -> bytes:
        """Zset ``lease tag -> deadline`` (ms, Redis's clock)."""
        return self.channel(channel) + b":l"

    def leased(self, channel: str) -> bytes:
        """Hash ``lease tag -> item`` of the messages out on a lease."""
        return self.channel(channel) + b":h"

    def delayed(self, channel: str) -> bytes:
        """Zset ``id|item -> due time`` (ms, Redis's clock)."""
        return self.channel(channel) + b":d"

    def dead(self, channel: str) -> bytes:
        """Zset ``dead letter id -> id``: the dead letters, oldest first."""
        return self.channel(channel) + b":x"

    def dead_letters(self, channel: str) -> bytes:
        """Hash ``dead letter id -> entry``, plus ``#``: the last id given out."""
        return self.channel(channel) + b":xh"

    # A group: all members (for listing and expiry), processes with members, members
    # that are named channels (they get the message one by one), and how many members
    # each process has (so it leaves the processes set with its last member).
    def group_members(self, group: str) -> bytes:
        return f"{self.prefix}:{{g.{group}}}:m".encode()

    def group_processes(self, group: str) -> bytes:
        return f"{self.prefix}:{{g.{group}}}:p".encode()

    def group_named(self, group: str) -> bytes:
        return f"{self.prefix}:{{g.{group}}}:n".encode()

    def group_counts(self, group: str) -> bytes:
        return f"{self.prefix}:{{g.{group}}}:k".encode()

    def pattern(self) -> bytes:
        """SCAN pattern matching every key of this prefix (for ``flush``)."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:*".encode()
