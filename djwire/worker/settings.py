"""Worker settings: concurrency, shutdown, and which named channels are reliable.

Read from Django settings when a worker starts, never at import time::

    DJWIRE_WORKER = {
        "concurrency": 32,        # messages in progress at once, per channel
        "prefetch": None,         # taken ahead of free slots (None: as many as concurrency)
        "shutdown_timeout": 30,
        "max_connections": 10_000,
        "django_fast_path": True,  # sync Django views in one thread hop (runworker --connections)
        "django_threads": 16,
    }
    DJWIRE_RELIABLE_CHANNELS = {
        "thumbnails": {"max_attempts": 5},      # at-least-once, retried, then dead-lettered
        "mail.*": {"lease": 120, "backoff": (5, 600)},
    }

A reliable channel's message is acknowledged only after its consumer has handled
it. A worker that dies holding it (even SIGKILL) gives it back when its ``lease``
runs out; a consumer that raises has it retried after a backoff that doubles from
``backoff[0]`` up to ``backoff[1]`` seconds (with jitter), at most ``max_attempts``
times in all, and then it goes to the channel's dead letters
(``manage.py deadletters``).
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured

#: Messages in progress at once per worker process, per channel, by default.
DEFAULT_CONCURRENCY = 32
#: Seconds a stopping worker waits for the messages in hand before giving them up.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
#: Gateway connections one worker process runs at most (runworker --connections).
DEFAULT_MAX_CONNECTIONS = 10_000


@dataclass(frozen=True)
class Reliability:
    """How one reliable channel is consumed."""

    #: Seconds a worker may hold a message before it is given to another worker.
    #: Longer than your slowest handler: a message still being handled when its
    #: lease runs out is delivered a second time.
    lease: float = 60.0
    #: Deliveries in all (first one included) before a failing message is dead.
    max_attempts: int = 5
    #: (first, longest) seconds between attempts; doubles each time, with jitter.
    backoff: tuple[float, float] = (1.0, 300.0)

    def __post_init__(self) -> None:
        if self.lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError("max_attempts must be an integer of at least 1")
        first, longest = self.backoff
        if first < 0 or longest < first:
            raise ValueError("backoff must be (first, longest) seconds with 0 <= first <= longest")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        first, longest = self.backoff
        delay = float(min(longest, first * 2 ** max(0, attempt - 1)))
        # Full jitter on the upper half: retries of a burst spread out.
        return delay / 2 + random.uniform(0, delay / 2)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = DEFAULT_CONCURRENCY
    #: Messages a channel's taker takes ahead of free slots, so the next batch is on
    #: its way while the slots work (the round trip to Redis is hidden). None: as many
    #: as ``concurrency``. They are at risk as the ones in progress are (see docs).
    prefetch: int | None = None
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Gateway connections: serve plain sync Django views in one thread-pool hop, as
    #: ``djwire serve`` does (djwire.django_http), on this many threads.
    django_fast_path: bool = True
    django_threads: int = 16
    reliable: tuple[tuple[re.Pattern[str], Reliability], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError("concurrency must be an integer of at least 1")
        if self.prefetch is not None and (not isinstance(self.prefetch, int) or self.prefetch < 0):
            raise ValueError("prefetch must be an integer >= 0 (or None)")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must be >= 0")
        for name in ("max_connections", "django_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1")

    @property
    def taken_at_most(self) -> int:
        """Messages of one channel in this process at once: in progress and prefetched."""
        prefetch = self.concurrency if self.prefetch is None else self.prefetch
        return self.concurrency + prefetch

    def reliability(self, channel: str) -> Reliability | None:
        """The policy of ``channel``, or None when it is not reliable (first match wins)."""
        for pattern, policy in self.reliable:
            if pattern.fullmatch(channel):
                return policy
        return None

    @classmethod
    def from_django(cls, **overrides: Any) -> WorkerSettings:
        """From ``settings.DJWIRE_WORKER`` and ``DJWIRE_RELIABLE_CHANNELS``; keyword
        arguments (a command line's options) win."""
        from django.conf import settings

        options = dict(getattr(settings, "DJWIRE_WORKER", None) or {})
        known = {f.name for f in fields(cls)} - {"reliable"}
        unknown = set(options) - known
        if unknown:
            raise ImproperlyConfigured(f"Unknown DJWIRE_WORKER keys: {sorted(unknown)}")
        options.update({key: value for key, value in overrides.items() if value is not None})
        reliable = parse_reliable(getattr(settings, "DJWIRE_RELIABLE_CHANNELS", None) or {})
        try:
            return cls(reliable=reliable, **options)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"DJWIRE_WORKER: {exc}") from exc


def parse_reliable(config: Mapping[str, Any]) -> tuple[tuple[re.Pattern[str], Reliability], ...]:
    """``{"glob": {options} | None}`` -> compiled (pattern, policy) pairs."""
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured("DJWIRE_RELIABLE_CHANNELS must be a dict of channel: options")
    parsed = []
    for name, options in config.items():
        if not isinstance(name, str) or "!" in name:
            raise ImproperlyConfigured(
                f"DJWIRE_RELIABLE_CHANNELS: {name!r} must be a named channel (or a glob)"
            )
        options = dict(options or {})
        if "backoff" in options:
            options["backoff"] = tuple(options["backoff"])
        try:
            policy = Reliability(**options)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"DJWIRE_RELIABLE_CHANNELS[{name!r}]: {exc}") from exc
        parsed.append((re.compile(fnmatch.translate(name)), policy))
    return tuple(parsed)
