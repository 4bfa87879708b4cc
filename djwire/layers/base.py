"""The channel layer contract every backend implements.

A channel layer carries messages (dicts) between named channels and groups of
channels. The contract follows Django Channels' layer specification so layers and
code written for Channels work unchanged. djwire adds four abilities, which a layer
may leave out (the defaults below then do without them):

* ``group_channels(group)`` lists a group's live members (the "groups" listing
  extension), so presence can be built on it;
* ``claim_receive(channel)`` is what consumers await: a plain future where the
  layer can, so an idle consumer costs no task;
* ``attach_socket(channel, socket)`` lets a process-local channel deliver
  ``websocket.send`` messages straight to its WebSocket, encoded once per group send
  (see :mod:`djwire.layers.direct`);
* ``stats`` counts what a layer dropped or expired, so nothing is lost without a trace.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import reprlib
import secrets
import warnings
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from djwire.exceptions import InvalidNameError

from .direct import DirectSocket
from .queue_types import DeadLetter, Delivery

Message = dict[str, Any]

#: Channels and groups share this limit with Django Channels (names are < 100 chars).
MAX_NAME_LENGTH = 100

_CHANNEL_NAME = re.compile(r"^[a-zA-Z\d\-_.]+(![\d\w\-_.]*)?$")
_GROUP_NAME = re.compile(r"^[a-zA-Z\d\-_.]+$")


def _short_repr(value: object) -> str:
    """``repr(value)``, shortened: a bad name may be any object of any size."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 120
    return short.repr(value)


def compile_capacities(
    channel_capacity: Mapping[str | re.Pattern[str], int] | Iterable[tuple[Any, int]] | None,
) -> list[tuple[re.Pattern[str], int]]:
    """Turn ``{"http.*": 200, re.compile(r"^ws"): 20}`` into (regex, capacity) pairs.

    String keys are shell-style globs (as in Django Channels); compiled patterns are
    used as they are. The first match wins, in the order given.
    """
    if not channel_capacity:
        return []
    items = channel_capacity.items() if isinstance(channel_capacity, Mapping) else channel_capacity
    compiled = []
    for pattern, capacity in items:
        regex = (
            pattern if isinstance(pattern, re.Pattern) else re.compile(fnmatch.translate(pattern))
        )
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"channel_capacity for {pattern!r} must be a positive int")
        compiled.append((regex, capacity))
    return compiled


@dataclass
class LayerStats:
    """Counters of messages a layer could not deliver. Read them; never reset them."""

    dropped_full: int = 0  # refused by a full queue, and no sender to raise ChannelFull to
    expired: int = 0  # queued longer than ``expiry`` and never received
    lost_in_outage: int = 0  # accepted but lost while the backing service was down
    direct_deliveries: int = 0  # websocket.send written straight to a socket
    extra: dict[str, int] = field(default_factory=dict)

    def add(self, counter: str, amount: int = 1) -> int:
        """Add to ``counter`` (a field above, or else a key of ``extra``); the new total."""
        if counter in _STATS_FIELDS:
            total: int = getattr(self, counter) + amount
            setattr(self, counter, total)
        else:
            total = self.extra.get(counter, 0) + amount
            self.extra[counter] = total
        return total


_STATS_FIELDS = frozenset({"dropped_full", "expired", "lost_in_outage", "direct_deliveries"})

#: A kind of loss is logged the first time and then every LOG_EVERY-th time, so a
#: flood of drops costs a counter each, not a log line each.
LOG_EVERY = 1000


def count_loss(
    stats: LayerStats, counter: str, log: logging.Logger, text: str, *args: object
) -> None:
    """Count one lost message in ``stats`` and log ``text`` sparingly (see LOG_EVERY).

    ``text``'s last placeholder is a ``%d`` for the total so far.
    """
    total = stats.add(counter)
    if total == 1 or total % LOG_EVERY == 0:
        log.warning(text, *args, total)


def check_message(message: object) -> None:
    """Refuse what no layer may carry: a non-dict, or the reserved routing key."""
    if not isinstance(message, dict):
        raise TypeError(f"A channel layer message must be a dict, not {type(message).__name__}")
    if "__asgi_channel__" in message:
        raise ValueError("A message must not contain the reserved key '__asgi_channel__'")


class BaseChannelLayer:
    """Base class with name validation and capacity lookup; subclasses do the I/O."""

    MAX_NAME_LENGTH: ClassVar[int] = MAX_NAME_LENGTH
    extensions: ClassVar[list[str]] = []
    #: Processes using this layer (same settings) reach each other's channels and
    #: groups. False, the safe assumption, makes ``djwire serve --workers`` and
    #: ``manage.py check`` warn that several processes share nothing through it.
    shared_between_processes: ClassVar[bool] = False
    channel_name_regex: ClassVar[re.Pattern[str]] = _CHANNEL_NAME
    group_name_regex: ClassVar[re.Pattern[str]] = _GROUP_NAME
    #: The message of a bad name's error, ``{}`` being "Channel" or "Group"; the text is
    #: Channels' (4.2+), which projects' tests match against, and the bad name follows.
    invalid_name_error: ClassVar[str] = (
        "{} name must be a valid unicode string "
        f"with length < {MAX_NAME_LENGTH} "
        "containing only ASCII alphanumerics, hyphens, underscores, or periods."
    )

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[str | re.Pattern[str], int] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if expiry <= 0:
            raise ValueError("expiry must be positive")
        self.expiry = expiry
        self.capacity = capacity
        self.channel_capacity = compile_capacities(channel_capacity)
        self.stats = LayerStats()
        self._capacity_cache: dict[str, int] = {}
        self._valid_names: set[str] = set()
        self._valid_groups: set[str] = set()

    # -- names ---------------------------------------------------------------

    def compile_capacities(
        self, channel_capacity: Mapping[str | re.Pattern[str], int] | None
    ) -> list[tuple[re.Pattern[str], int]]:
        return compile_capacities(channel_capacity)

    def configured_capacity(self, channel: str) -> bool:
        """Whether a ``channel_capacity`` pattern of the configuration matches ``channel``."""
        return any(regex.match(channel) for regex, _ in self.channel_capacity)

    def set_capacity(self, pattern: str | re.Pattern[str], capacity: int) -> None:
        """Give channels matching ``pattern`` (a glob or a regex) this capacity, ahead of
        the configured patterns. For channels a process makes and drains itself."""
        self.channel_capacity[:0] = compile_capacities({pattern: capacity})
        self._capacity_cache.clear()

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching pattern's, else the default."""
        if not self.channel_capacity:
            return self.capacity
        # Process-local names differ per connection; cache on the shared part only
        # so the cache stays bounded by the number of distinct patterns of names.
        key = self.non_local_name(channel)
        cached = self._capacity_cache.get(key)
        if cached is None:
            cached = self.capacity
            for regex, capacity in self.channel_capacity:
                if regex.match(channel):
                    cached = capacity
                    break
            if len(self._capacity_cache) < 10_000:
                self._capacity_cache[key] = cached
        return cached

    def match_type_and_length(self, name: object) -> bool:
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool:
        if not receive and type(name) is str and name in self._valid_names:
            return True
        if not isinstance(name, str) or not self.match_type_and_length(name):
            raise self._invalid_name("Channel", name)
        if not self.channel_name_regex.match(name):
            raise self._invalid_name("Channel", name)
        if receive and "!" in name and not name.endswith("!"):
            raise InvalidNameError("Specific channel names in receive() must end at the !")
        self._remember_valid(name)
        return True

    def _remember_valid(self, name: str) -> None:
        # Names repeat on the hot path (a consumer's channel, a group); a regex per
        # call is most of a send's cost. Bounded: cleared when it grows too big.
        if len(self._valid_names) >= 50_000:
            self._valid_names.clear()
        self._valid_names.add(name)

    def require_valid_group_name(self, name: object) -> bool:
        if type(name) is str and name in self._valid_groups:
            return True
        if not isinstance(name, str) or not self.match_type_and_length(name):
            raise self._invalid_name("Group", name)
        if not self.group_name_regex.match(name):
            raise self._invalid_name("Group", name)
        if len(self._valid_groups) >= 50_000:
            self._valid_groups.clear()
        self._valid_groups.add(name)
        return True

    def _invalid_name(self, kind: str, name: object) -> InvalidNameError:
        return InvalidNameError(f"{self.invalid_name_error.format(kind)} Got {_short_repr(name)}.")

    def valid_channel_names(self, names: Iterable[object], receive: bool = False) -> bool:
        names = list(names)
        if not names:
            raise InvalidNameError("Channel name list must not be empty")
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    # Spellings Channels deprecated in 4.2; third-party layers still call them.

    def valid_channel_name(self, channel_name: object, receive: bool = False) -> bool:
        """Deprecated: use :meth:`require_valid_channel_name`."""
        warnings.warn(
            "valid_channel_name is deprecated, use require_valid_channel_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        # As in Channels, ``receive`` is accepted and not passed on.
        return self.require_valid_channel_name(channel_name)

    def valid_group_name(self, group_name: object) -> bool:
        """Deprecated: use :meth:`require_valid_group_name`."""
        warnings.warn(
            "valid_group_name is deprecated, use require_valid_group_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(group_name)

    @staticmethod
    def non_local_name(name: str) -> str:
        """The part of a process-specific name up to and including the ``!``."""
        if "!" in name:
            return name[: name.find("!") + 1]
        return name

    @staticmethod
    def random_token() -> str:
        return secrets.token_hex(8)

    # -- the operations --------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        raise NotImplementedError("send() should be implemented in a channel layer")

    async def receive(self, channel: str) -> Message:
        raise NotImplementedError("receive() should be implemented in a channel layer")

    def claim_receive(self, channel: str) -> Awaitable[Message]:
        """The next message for ``channel``, as consumers wait for it.

        By default simply ``receive(channel)``. Layers with process-local queues
        return a plain future instead, so an idle consumer costs no Task; unlike a
        cancelled ``receive()``, a cancelled claim may lose the message it was
        about to get, which is fine for a consumer that is ending.
        """
        return self.receive(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        raise NotImplementedError("new_channel() should be implemented in a channel layer")

    async def flush(self) -> None:
        raise NotImplementedError("flush() not implemented (flush extension)")

    async def close(self) -> None:
        """Release connections and tasks; the layer may be used again afterwards."""

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError("group_add() not implemented (groups extension)")

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError("group_discard() not implemented (groups extension)")

    async def group_send(self, group: str, message: Message) -> None:
        raise NotImplementedError("group_send() not implemented (groups extension)")

    async def group_channels(self, group: str) -> list[str]:
        raise NotImplementedError("group_channels() not implemented (groups listing)")

    # -- direct socket delivery (optional) --------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        """Deliver ``websocket.send`` messages for ``channel`` straight to ``socket``.

        Returns False when this layer cannot (the channel then works as usual).
        """
        return False

    def detach_socket(self, channel: str) -> None:
        """Undo :meth:`attach_socket`; harmless when nothing is attached."""

    # -- named channels as work queues (the "queues" extension) -------------------------
    # See djwire/layers/queues.py for the semantics. Layers without the extension
    # still serve plain takes (one message, no lease) through receive().

    async def take(
        self, channel: str, count: int = 1, *, lease: float | None = None
    ) -> list[Delivery]:
        """Wait for a message on named ``channel``; return up to ``count`` of them.

        With ``lease`` (seconds), each message stays with the layer until
        :meth:`ack`: one not acknowledged in time is delivered again.
        """
        if lease is not None:
            raise NotImplementedError(f"{type(self).__name__} cannot lease messages")
        return [Delivery(await self.receive(channel))]

    async def ack(self, channel: str, tags: list[str]) -> None:
        """Settle leased messages: they were handled."""
        raise NotImplementedError(f"{type(self).__name__} cannot lease messages")

    async def retry(self, channel: str, tag: str, delay: float = 0) -> bool:
        """Give a leased message back, to be delivered again after ``delay`` seconds.
        False when the lease had already expired (the message is redelivered anyway)."""
        raise NotImplementedError(f"{type(self).__name__} cannot lease messages")

    async def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        """Move a leased message to ``channel``'s dead letters."""
        raise NotImplementedError(f"{type(self).__name__} keeps no dead letters")

    async def dead_letters(self, channel: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``channel``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no dead letters")

    async def replay_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        """Send dead letters (all, or those named) again; returns how many."""
        raise NotImplementedError(f"{type(self).__name__} keeps no dead letters")

    async def discard_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        """Drop dead letters (all, or those named); returns how many."""
        raise NotImplementedError(f"{type(self).__name__} keeps no dead letters")

    async def send_later(self, channel: str, message: Message, delay: float) -> None:
        """Queue ``message`` on named ``channel``, visible after ``delay`` seconds."""
        raise NotImplementedError(f"{type(self).__name__} cannot delay messages")
