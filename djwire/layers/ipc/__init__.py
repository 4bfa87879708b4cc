"""The IPC channel layer: processes on one machine, nothing else to run.

See :mod:`djwire.layers.ipc.core` and docs/layers.md.
"""

from .config import Limits
from .core import IPCChannelLayer

__all__ = ["IPCChannelLayer", "Limits"]
