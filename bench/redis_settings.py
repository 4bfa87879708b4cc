"""Settings for bench/redis_e2e.py: the benchmark project with a Redis channel layer.

Everything but CHANNEL_LAYERS comes from benchproj.settings (BENCH_STACK picks the
djwire or Channels consumers). ``BENCH_REDIS_LAYER`` picks the layer, ``BENCH_REDIS_URL``
the server.
"""

import os

from benchproj.settings import *  # noqa: F403

BACKENDS = {
    "djwire": "djwire.layers.redis.RedisChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
_config = {"hosts": [os.environ["BENCH_REDIS_URL"]]}
if os.environ.get("BENCH_REDIS_LAYER", "djwire") != "pubsub":
    _config["capacity"] = 100  # both layers' default: a 50-send burst fits
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": BACKENDS[os.environ.get("BENCH_REDIS_LAYER", "djwire")],
        "CONFIG": _config,
    }
}
