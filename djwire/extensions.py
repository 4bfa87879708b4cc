"""What djwire's interface server offers applications beyond plain ASGI, as neutral shapes.

The server (``djwire.server``) knows ASGI, not djwire's application side; the layers and
consumers know nothing of the server's classes. They meet here, at the bottom of the
import graph, where both may import:

* :data:`DIRECT_SOCKET`: the scope extension key under which a djwire server offers
  each accepted WebSocket as a :class:`DirectSocket` (``scope["extensions"]``); the
  channel layer writes pre-encoded frames to it (see :mod:`djwire.layers.direct`).
  Other servers offer none, and consumers then work as usual.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final, Protocol, runtime_checkable

#: The scope extension key under which a djwire server offers a :class:`DirectSocket`.
DIRECT_SOCKET: Final = "djwire.direct"


class FrameEncoder(Hashable, Protocol):
    """Encodes one WebSocket data frame; equal encoders give equal bytes."""

    def __call__(self, text: str | None, data: bytes | None) -> bytes: ...


@runtime_checkable
class DirectSocket(Protocol):
    """One accepted WebSocket connection that can take pre-encoded frames."""

    #: Sockets whose encoders are equal get the very same frame bytes. Sockets with
    #: per-connection state (permessage-deflate) use an encoder of their own.
    @property
    def frame_encoder(self) -> FrameEncoder: ...

    def write_frame(self, frame: bytes) -> bool:
        """Write one encoded frame; False if the socket can no longer take frames."""
        ...
