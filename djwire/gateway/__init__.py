"""Gateway mode: interface servers that hold the sockets and run no application code.

``djwire serve --gateway`` serves :func:`application`; workers started with
``manage.py runworker --connections`` run the project's consumers and views. See
docs/deployment.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import GatewayApp

__all__ = ["GatewayApp", "application"]


def application() -> GatewayApp:
    """The gateway for the Django project named by ``DJANGO_SETTINGS_MODULE``."""
    import os

    import django
    from django.core.exceptions import ImproperlyConfigured

    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        from django.conf import settings

        if not settings.configured:
            raise ImproperlyConfigured(
                "A gateway reads the project's CHANNEL_LAYERS: set DJANGO_SETTINGS_MODULE "
                "(e.g. DJANGO_SETTINGS_MODULE=mysite.settings djwire serve --gateway)"
            )
    django.setup(set_prefix=False)
    from .app import GatewayApp

    return GatewayApp()


def __getattr__(name: str) -> object:
    if name == "GatewayApp":
        from .app import GatewayApp

        return GatewayApp
    raise AttributeError(f"module 'djwire.gateway' has no attribute {name!r}")
