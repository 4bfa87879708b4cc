"""Channel layers: the contract, the in-memory backend, and settings lookup.

The IPC and Redis backends live in :mod:`djwire.layers.ipc` and
:mod:`djwire.layers.redis` and are imported only when configured.
"""

from djwire.exceptions import ChannelFull

from .base import BaseChannelLayer, LayerStats
from .manager import DEFAULT_CHANNEL_LAYER, ChannelLayerManager, channel_layers, get_channel_layer
from .memory import InMemoryChannelLayer

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayerManager",
    "InMemoryChannelLayer",
    "LayerStats",
    "channel_layers",
    "get_channel_layer",
]
