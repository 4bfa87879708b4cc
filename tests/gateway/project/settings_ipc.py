"""The same project on the IPC layer: gateway and workers on one machine, no Redis.

``DJWIRE_TEST_IPC_PATH`` is the directory of the layer's shared space (one per test).
"""

import os

from .settings import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "djwire.layers.ipc.IPCChannelLayer",
        "CONFIG": {"path": os.environ["DJWIRE_TEST_IPC_PATH"], "capacity": 1000},
    }
}
