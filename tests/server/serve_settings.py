"""A Django project's settings for ``djwire serve`` tests (tests/server/test_serve_django.py).

``LOGGING`` leaves out ``disable_existing_loggers``, so ``dictConfig`` applies its
default (True), as many projects do; ``$DJWIRE_TEST_LOGGING=project`` names
djwire's server logger instead. ``DJWIRE_SERVER`` comes from
``$DJWIRE_TEST_SERVER_SETTINGS`` (JSON) when set, ``TIME_ZONE`` from
``$DJWIRE_TEST_TIME_ZONE``.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

ROOT_URLCONF = "tests.server.django_urls"

if os.environ.get("DJWIRE_TEST_LOGGING") == "project":
    LOGGING = {
        "version": 1,
        "formatters": {"project": {"format": "PROJECT %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "project"}},
        "loggers": {"djwire.server": {"handlers": ["console"], "level": "INFO"}},
    }
else:
    LOGGING = {
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "root": {"handlers": ["console"], "level": "WARNING"},
    }

if "DJWIRE_TEST_TIME_ZONE" in os.environ:
    TIME_ZONE = os.environ["DJWIRE_TEST_TIME_ZONE"]

DJWIRE_SERVER = json.loads(
    os.environ.get("DJWIRE_TEST_SERVER_SETTINGS", '{"server_header": false, "date_header": false}')
)
