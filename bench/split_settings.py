"""Settings for bench/workers.py and bench/gateway.py: the benchmark project on Redis.

Everything but the layer comes from benchproj.settings (``BENCH_STACK`` picks the djwire
or Channels consumers). ``BENCH_REDIS_URL`` names the private redis-server;
``BENCH_REDIS_LAYER`` is ``djwire`` (djwire's RedisChannelLayer) or ``core``
(channels_redis). Named channels hold a whole backlog (``capacity``) and keep it
long enough for the slowest worker to drain (``expiry``).
"""

import os

from benchproj.settings import *  # noqa: F403

BACKENDS = {
    "djwire": "djwire.layers.redis.RedisChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": BACKENDS[os.environ.get("BENCH_REDIS_LAYER", "djwire")],
        "CONFIG": {
            "hosts": [os.environ["BENCH_REDIS_URL"]],
            "capacity": int(os.environ.get("BENCH_REDIS_CAPACITY", "200000")),
            "expiry": 600,
        },
    }
}
# bench/workers.py's reliable row: leases and acknowledgements (djwire only).
DJWIRE_RELIABLE_CHANNELS = {"bench.reliable": {"lease": 60, "max_attempts": 3}}
# Gateway mode (bench/gateway.py): the defaults.
DJWIRE_GATEWAY: dict = {}
# Worker and gateway log lines (start, stop, failures) go to the logs in bench/out/.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "djwire": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.channels": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
