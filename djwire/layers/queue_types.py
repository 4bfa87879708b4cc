"""What workers get from named channels: deliveries and dead letters.

The contract types of the ``"queues"`` extension (see :mod:`djwire.layers.queues`),
in a module of their own so that the layer contract in :mod:`djwire.layers.base`
can name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message handed to a worker by ``take()``.

    ``tag`` names the lease (None when taken without one); ``attempt`` is 1 the
    first time a message is delivered and grows with each redelivery.
    """

    message: Message
    tag: str | None = None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that failed for good, as ``dead_letters()`` lists it."""

    id: str
    message: Message
    reason: str
    attempts: int
    failed_at: float  # seconds since the epoch


def require_named(channel: str) -> None:
    """Queues are named channels: a process-specific name has one receiver already."""
    if "!" in channel:
        raise ValueError(
            f"{channel!r} is a process-specific channel; leases, delays and dead letters "
            "are for named channels (no '!')"
        )


def check_delay(delay: float) -> float:
    if not isinstance(delay, int | float) or delay != delay or delay < 0:
        raise ValueError(f"delay must be a number of seconds >= 0, not {delay!r}")
    return float(delay)
