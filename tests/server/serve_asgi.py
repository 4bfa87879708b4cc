"""A Django project's ASGI module, as ``startproject`` writes it, for ``djwire serve``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.server.serve_settings")

application = get_asgi_application()
