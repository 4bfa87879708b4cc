"""djwire: WebSockets, background tasks and a channel layer for Django."""

from __future__ import annotations

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


def __getattr__(name: str) -> Any:
    # Imported lazily so ``import djwire`` never touches Django settings.
    if name in ("Channel", "Group"):
        from djwire.classic import channel

        return getattr(channel, name)
    raise AttributeError(f"module 'djwire' has no attribute {name!r}")
