"""The Redis channel layer: ``djwire.layers.redis.RedisChannelLayer``.

Needs ``redis`` with ``hiredis`` (``pip install 'djwire[redis]'``); encryption
additionally needs ``cryptography``. Configure it as channels_redis::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
        }
    }
"""

try:
    import hiredis  # noqa: F401
    import redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "djwire's Redis channel layer needs redis-py and hiredis: pip install 'djwire[redis]'"
    ) from exc

from .core import RedisChannelLayer

__all__ = ["RedisChannelLayer"]
