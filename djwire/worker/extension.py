"""How a worker and the consumers it runs talk: one scope extension.

A worker puts a :class:`ConsumerHost` in ``scope["extensions"]["djwire.worker"]``
of the application instances it runs. djwire's consumers (and the classic API's
apps) find it and:

* use ``host.channel_name`` as their ``channel_name`` when it is set - in gateway
  mode that is the connection's channel, owned by the gateway, so the consumer's
  group memberships outlive the worker it runs on;
* call ``host.adopt(consumer)`` once at start: the host may restore the state of
  a consumer that ran on another worker before (it returns True then);
* call ``host.handled(message)`` after each message's handler has returned, which
  is when a worker acknowledges a reliable message or a gateway's event.

Any other ASGI application works too, without those refinements: it is taken to
be done with a message when it asks for the next one.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol

WORKER_EXTENSION = "djwire.worker"


class ConsumerHost(Protocol):
    @property
    def channel_name(self) -> str | None:
        """The channel the consumer must use, or None to make its own."""

    def adopt(self, consumer: Any) -> bool:
        """Called once by a consumer starting; True if it resumes an earlier state."""

    def handled(self, message: dict[str, Any]) -> None:
        """Called after the handler of ``message`` returned (not when it raised)."""


def consumer_host(scope: MutableMapping[str, Any]) -> ConsumerHost | None:
    extensions = scope.get("extensions")
    if not extensions:
        return None
    host: ConsumerHost | None = extensions.get(WORKER_EXTENSION)
    return host
