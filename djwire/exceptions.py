"""Every exception djwire raises, in one tree.

::

    DjwireError
    ├── StopConsumer                 flow control: a consumer is done
    ├── AcceptConnection             flow control: accept the WebSocket from connect()
    ├── DenyConnection               flow control: reject the WebSocket from connect()
    ├── ChannelFull                  a channel is at capacity (sender's problem, retry later)
    ├── MessageTooLarge              a message exceeds a size limit
    ├── InvalidChannelLayerError     CHANNEL_LAYERS is wrong            (also ValueError)
    ├── InvalidNameError             a bad channel or group name        (also TypeError)
    ├── RouteNotFound                no route matches a path or channel (also ValueError)
    ├── UnexpectedMessage            ASGI messages in the wrong order   (also RuntimeError)
    ├── LayerUnavailable             the layer's backing service is down (wraps the cause)
    ├── RequestAborted               the HTTP client went away mid-request
    │   └── RequestTimeout           the HTTP client was too slow sending its body
    └── ClientDisconnected           send() after the client left      (also OSError)

Exceptions that mirror a builtin (``TypeError`` for bad names, ``ValueError`` for bad
configuration) inherit from it too, so code written for Django Channels, which raises
the builtins, keeps catching them.
"""

from __future__ import annotations

from collections.abc import Iterable


class DjwireError(Exception):
    """Base of every djwire exception."""


class StopConsumer(DjwireError):
    """Raised by a handler to end its consumer cleanly; never an error."""


class AcceptConnection(DjwireError):
    """Raised from ``connect()`` to accept the WebSocket."""


class DenyConnection(DjwireError):
    """Raised from ``connect()`` to reject the WebSocket (HTTP 403 on the handshake)."""


class ChannelFull(DjwireError):
    """A send found the channel at its capacity; the message was not queued."""

    def __init__(self, channel: str = "", capacity: int | None = None) -> None:
        self.channel = channel
        self.capacity = capacity
        detail = f" (capacity {capacity})" if capacity is not None else ""
        super().__init__(f"Channel {channel!r} is full{detail}" if channel else "Channel is full")


class MessageTooLarge(DjwireError):
    """A message is larger than the limit that applies to it."""

    def __init__(self, size: int | None = None, limit: int | None = None) -> None:
        self.size = size
        self.limit = limit
        if size is not None and limit is not None:
            super().__init__(f"Message of {size} bytes exceeds the limit of {limit} bytes")
        else:
            super().__init__("Message too large")


class InvalidChannelLayerError(DjwireError, ValueError):
    """CHANNEL_LAYERS names a backend that cannot be loaded or used as asked."""


class InvalidNameError(DjwireError, TypeError):
    """A channel or group name is not a string of allowed characters and length."""


class RouteNotFound(DjwireError, ValueError):
    """No route matches; the server closes the connection (404 / WebSocket 403)."""

    #: What an interface server answers when this escapes the application (djwire's
    #: server reads the attribute; it does not know the router).
    http_status = 404

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class UnexpectedMessage(DjwireError, RuntimeError):
    """An ASGI message arrived in a state that does not allow it (ASGI spec order)."""

    def __init__(self, got: str, expected: Iterable[str], *, state: str | None = None) -> None:
        self.got = got
        self.expected = tuple(expected)
        self.state = state
        wanted = " or ".join(repr(name) for name in self.expected) or "nothing"
        where = f" in state {state}" if state else ""
        super().__init__(f"Expected {wanted}, got {got!r}{where}")


class LayerUnavailable(DjwireError, ConnectionError):
    """The channel layer's backing service (e.g. Redis) could not be reached."""


class RequestAborted(DjwireError):
    """The HTTP client disconnected before its request was complete."""


class RequestTimeout(RequestAborted):
    """The HTTP client took too long to send its request body."""


class ClientDisconnected(DjwireError, OSError):
    """``send()`` was called after the client went away (ASGI spec: an OSError)."""
