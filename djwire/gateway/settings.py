"""Gateway mode settings, shared by gateways and the workers that serve them.

``settings.DJWIRE_GATEWAY`` (every key optional)::

    DJWIRE_GATEWAY = {
        "channel": "djwire.connections",  # where gateways post new connections
        "heartbeat_interval": 0.25,       # workers say they are alive this often (s)
        "worker_timeout": 1.0,            # silent this long = dead; its connections move
        "gateway_timeout": 5.0,           # a gateway silent this long lost its sockets
        "claim_timeout": 5.0,             # a new connection not taken by then is re-posted
        "resend_after": 2.0,              # events unacknowledged this long are sent again
        "open_timeout": 30.0,             # ... and given up (503 / close 1013) after this
        "max_pending": 1000,              # connections waiting for a worker; beyond: 503
        "max_unacked": 100,               # events in flight per connection; beyond: stop reading
        "max_request_body": 4 * 1024 * 1024,  # bytes of an HTTP request body (413 beyond)
        "max_state_size": 64 * 1024,      # bytes of consumer state carried between workers
        "linger": 10.0,                   # seconds to keep a closed connection for its last events
    }
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured

DEFAULT_CHANNEL = "djwire.connections"


@dataclass(frozen=True)
class GatewaySettings:
    channel: str = DEFAULT_CHANNEL
    heartbeat_interval: float = 0.25
    worker_timeout: float = 1.0
    gateway_timeout: float = 5.0
    claim_timeout: float = 5.0
    resend_after: float = 2.0
    open_timeout: float = 30.0
    max_pending: int = 1000
    max_unacked: int = 100
    max_request_body: int = 4 * 1024 * 1024
    max_state_size: int = 64 * 1024
    linger: float = 10.0

    def __post_init__(self) -> None:
        if not self.channel or "!" in self.channel:
            raise ValueError("channel must be a named channel (no '!')")
        timeouts = (
            "worker_timeout",
            "gateway_timeout",
            "claim_timeout",
            "open_timeout",
            "resend_after",
        )
        for name in ("heartbeat_interval", *timeouts):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("worker_timeout", "gateway_timeout"):
            if getattr(self, name) < 2 * self.heartbeat_interval:
                raise ValueError(f"{name} must be at least twice heartbeat_interval")
        for name in ("max_pending", "max_unacked", "max_request_body", "max_state_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.linger < 0:
            raise ValueError("linger must be >= 0")

    @classmethod
    def from_django(cls) -> GatewaySettings:
        from django.conf import settings

        options: dict[str, Any] = dict(getattr(settings, "DJWIRE_GATEWAY", None) or {})
        known = {field.name for field in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown DJWIRE_GATEWAY keys {sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"DJWIRE_GATEWAY: {exc}") from exc
