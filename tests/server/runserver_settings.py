"""Settings for the runserver tests: djwire ahead of staticfiles, DEBUG on."""

from __future__ import annotations

import importlib
import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

DEBUG = True
INSTALLED_APPS = ["djwire", *(app for app in INSTALLED_APPS if app != "djwire")]
ASGI_APPLICATION = "tests.server.framework_app.application"
ROOT_URLCONF = "tests.server.runserver_urls"

if os.environ.get("DJWIRE_TEST_SERVER_SETTINGS"):
    DJWIRE_SERVER = json.loads(os.environ["DJWIRE_TEST_SERVER_SETTINGS"])

# The autoreload test edits this module and expects a restart.
if os.environ.get("DJWIRE_RELOAD_PROBE"):
    importlib.import_module(os.environ["DJWIRE_RELOAD_PROBE"])
