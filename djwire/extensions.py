"""What djwire's interface server offers applications beyond plain ASGI, as neutral shapes.

The server (``djwire.server``) knows ASGI, not djwire's application side; the layers and
consumers know nothing of the server's classes. They meet here, at the bottom of the
import graph, where both may import:

* :data:`DIRECT_SOCKET`: the scope extension key under which a djwire server offers
  each accepted WebSocket as a :class:`DirectSocket` (``scope["extensions"]``); the
  channel layer writes pre-encoded frames to it (see :mod:`djwire.layers.direct`).
  Other servers offer none, and consumers then work as usual.
* :data:`SERVER_PROCESSES`: the environment variable in which ``djwire serve --workers
  N`` tells each worker process how many processes serve the application, so the
  application side can warn about state those processes do not share.
* :data:`STARTUP_CHECKS`: the tag of the Django system checks the server runs when it
  starts (after importing the application), logging what they find as warnings;
  ``manage.py check`` runs them too.
* :data:`IMPLICIT_IPC_LAYER`: the environment variable through which djwire's own server
  and worker commands make the IPC channel layer the default of a project without
  ``CHANNEL_LAYERS`` (:func:`implicit_ipc_layer`; see :mod:`djwire.layers.manager`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Hashable, Iterator, Mapping
from typing import Final, Protocol, runtime_checkable

#: The scope extension key under which a djwire server offers a :class:`DirectSocket`.
DIRECT_SOCKET: Final = "djwire.direct"

#: Environment variable: how many server processes serve this application (absent: one).
SERVER_PROCESSES: Final = "DJWIRE_SERVER_PROCESSES"


#: Tag of the Django system checks ``djwire serve`` runs at start (``checks.register(tag)``).
STARTUP_CHECKS: Final = "djwire_startup"

#: Environment variable: "1" while djwire's ``djwire serve``, ``manage.py runserver`` or
#: ``manage.py runworker`` runs (and in the processes they start), making the IPC layer
#: the default of a project without CHANNEL_LAYERS; "0" turns that off.
IMPLICIT_IPC_LAYER: Final = "DJWIRE_IPC_DEFAULT"


@contextlib.contextmanager
def implicit_ipc_layer() -> Iterator[None]:
    """Around djwire's server and worker commands: a project without CHANNEL_LAYERS
    gets the IPC layer, here and in the processes started meanwhile (they inherit
    the environment), unless ``DJWIRE_IPC_DEFAULT`` is set already (e.g. to "0")."""
    if IMPLICIT_IPC_LAYER in os.environ:
        yield
        return
    os.environ[IMPLICIT_IPC_LAYER] = "1"
    try:
        yield
    finally:
        os.environ.pop(IMPLICIT_IPC_LAYER, None)


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

    @property
    def write_paused(self) -> bool:
        """True while the write buffer is above the server's high-water mark."""
        ...

    def drain_future(self) -> asyncio.Future[None]:
        """Done when the write buffer is back below the low-water mark or the socket
        has closed. Shared by every waiter: never cancel it."""
        ...

    # djwire's own sockets also have ``hold_frames()`` (not part of this protocol, so
    # other implementations need not): the data frames the application sends until
    # the event loop's next turn then leave in one write (consumers call it when they
    # find several messages waiting; see djwire.utils.dispatch_client_and_channel).


def server_processes(environ: Mapping[str, str] | None = None) -> int:
    """How many server processes serve this application, as the server announced it."""
    value = (os.environ if environ is None else environ).get(SERVER_PROCESSES, "")
    try:
        return max(1, int(value))
    except ValueError:
        return 1
