"""ASGI entry point: the application of the stack named by ``BENCH_STACK``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before consumers are imported

if settings.STACK == "djwire":
    from .routing_djwire import make_application
else:
    from .routing_channels import make_application

application = make_application(django_http)
