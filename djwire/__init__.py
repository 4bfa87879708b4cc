"""djwire: WebSockets, background tasks and a channel layer for Django."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: The alias of the layer used when none is named, as ``channels.DEFAULT_CHANNEL_LAYER``
#: (packages import it from the top-level package). Same value as
#: ``djwire.layers.DEFAULT_CHANNEL_LAYER``, which is kept here too so that
#: ``import djwire`` stays free of Django imports.
DEFAULT_CHANNEL_LAYER = "default"

if TYPE_CHECKING:
    from djwire.classic.channel import Channel, Group

__all__ = ["DEFAULT_CHANNEL_LAYER", "Channel", "Group", "__version__"]


#: Submodules reachable as attributes after a bare ``import djwire``
#: (``djwire.routing.ProtocolTypeRouter``), as project code written for Channels
#: expects of ``channels``.
_SUBMODULES = frozenset(
    {
        "auth",
        "consumer",
        "db",
        "exceptions",
        "generic",
        "layers",
        "middleware",
        "routing",
        "security",
        "sessions",
        "testing",
        "worker",
    }
)


def __getattr__(name: str) -> Any:
    # Imported lazily so ``import djwire`` never touches Django settings.
    if name in ("Channel", "Group"):
        from djwire.classic import channel

        return getattr(channel, name)
    if name in _SUBMODULES:
        return importlib.import_module(f"djwire.{name}")
    raise AttributeError(f"module 'djwire' has no attribute {name!r}")
