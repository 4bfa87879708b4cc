"""A small project run in gateway mode by tests/gateway/test_split.py, in real processes.

``DJWIRE_TEST_REDIS`` names the Redis server, ``DJWIRE_TEST_DB`` the SQLite file the
processes share.
"""

import os

SECRET_KEY = "djwire-gateway-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "djwire",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "tests.gateway.project.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJWIRE_TEST_DB", ":memory:"),
    }
}
USE_TZ = True
ASGI_APPLICATION = "tests.gateway.project.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "djwire.layers.redis.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("DJWIRE_TEST_REDIS", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("DJWIRE_TEST_PREFIX", "gwtest"),
            "capacity": 1000,
        },
    }
}
if os.environ.get("DJWIRE_TEST_WORKER_CAPACITY"):
    # Fault injection: worker channels that hold only this many messages.
    CHANNEL_LAYERS["default"]["CONFIG"]["channel_capacity"] = {
        "djwire.worker.*": int(os.environ["DJWIRE_TEST_WORKER_CAPACITY"])
    }
DJWIRE_GATEWAY = {
    "heartbeat_interval": 0.2,
    "worker_timeout": 1.0,
    "claim_timeout": 2.0,
    "resend_after": float(os.environ.get("DJWIRE_TEST_RESEND_AFTER", "0.5")),
}
DJWIRE_RELIABLE_CHANNELS = {
    "tasks": {"lease": 2.0, "max_attempts": 3, "backoff": (0.1, 0.2)},
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"djwire": {"handlers": ["console"], "level": "INFO"}},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
