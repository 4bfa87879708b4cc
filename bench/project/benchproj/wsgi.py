"""WSGI entry point: gunicorn's sync worker serves the W4 view through it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")
application = get_wsgi_application()
