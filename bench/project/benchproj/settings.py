"""Settings of the benchmark project, shared by every stack.

``BENCH_STACK`` selects the framework: ``djwire`` (djwire consumers, routers and
in-memory layer) or ``channels`` (the same code written against Channels 4.3.1).
The interface server is chosen on the command line, not here.
"""

import os

STACK = os.environ.get("BENCH_STACK", "djwire")
if STACK not in ("djwire", "channels"):
    raise RuntimeError(f"BENCH_STACK must be 'djwire' or 'channels', not {STACK!r}")

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "benchproj.urls"
WSGI_APPLICATION = "benchproj.wsgi.application"
ASGI_APPLICATION = "benchproj.asgi.application"
USE_TZ = True

INSTALLED_APPS = [STACK]

# Django's usual request-path middleware that needs no database, the same for every stack.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

DATABASES: dict = {}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": f"{STACK}.layers.InMemoryChannelLayer",
        # Both layers default to capacity 100: W2 burst queues 50 per member at most.
        "CONFIG": {"capacity": 100},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
