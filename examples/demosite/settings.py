"""Settings of the djwire demo site (liveblog + chat).

Defaults: SQLite next to manage.py and the IPC channel layer, so every process of the
demo on this machine reaches the same sockets with nothing else to run: several
server processes (``djwire serve --workers 2``), the chat's worker (``manage.py
runworker chat-bot``) and commands (``manage.py liveblog_post``, ``manage.py shell``).
Environment variables change that without editing this file:

- ``DJWIRE_DEMO_REDIS=redis://127.0.0.1:6379/0`` uses the Redis channel layer instead
  (processes on several machines).
- ``DJWIRE_DEMO_IPC_PATH=/some/dir`` puts the IPC layer's shared space there instead of
  the project's default one (the tests give each run its own).
- ``DJWIRE_DEMO_DB=/path/to/db.sqlite3`` puts the database elsewhere (the tests do).
- ``DJWIRE_DEMO_DEBUG=0`` turns DEBUG off; ``DJWIRE_DEMO_SECRET_KEY`` sets the key.
- ``DJWIRE_DEMO_CHAT_MAX_LENGTH`` is the longest chat message accepted (characters).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development key: the demo is meant for loopback use. Set the variable anywhere else.
SECRET_KEY = os.environ.get("DJWIRE_DEMO_SECRET_KEY", "djwire-demo-not-secret-do-not-deploy")
DEBUG = os.environ.get("DJWIRE_DEMO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    # First, so its runserver (HTTP + WebSocket) is the one manage.py finds.
    "djwire",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "demosite",
    "liveblog",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demosite.urls"
ASGI_APPLICATION = "demosite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJWIRE_DEMO_DB") or BASE_DIR / "db.sqlite3",
        # Several processes write (server workers, manage.py commands): take the write
        # lock at BEGIN and wait for it instead of failing with "database is locked".
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}

_redis_url = os.environ.get("DJWIRE_DEMO_REDIS", "").strip()
if _redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "djwire.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [_redis_url]},
        }
    }
else:
    _ipc_path = os.environ.get("DJWIRE_DEMO_IPC_PATH", "").strip()
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "djwire.layers.ipc.IPCChannelLayer",
            "CONFIG": {"path": _ipc_path} if _ipc_path else {},
        }
    }

# Chat limits (see chat/consumers.py).
DEMO_CHAT_MAX_LENGTH = int(os.environ.get("DJWIRE_DEMO_CHAT_MAX_LENGTH", "500"))
DEMO_CHAT_HISTORY = 50

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
