"""URLs for the runserver tests: the project's hello view and the fast-path probes."""

from __future__ import annotations

from tests.server.django_urls import urlpatterns as probes
from tests.urls import urlpatterns as hello

urlpatterns = [*hello, *probes]
