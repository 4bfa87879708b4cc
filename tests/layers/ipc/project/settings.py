"""A project with no CHANNEL_LAYERS setting at all (see tests/layers/ipc/test_defaults.py)."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

del CHANNEL_LAYERS  # noqa: F821 - the point of this project: the setting is absent

INSTALLED_APPS = ["djwire", *(app for app in INSTALLED_APPS if app != "djwire")]
ROOT_URLCONF = "tests.layers.ipc.project.urls"
ASGI_APPLICATION = "tests.layers.ipc.project.asgi.application"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"djwire.layers": {"handlers": ["console"], "level": "INFO"}},
}
