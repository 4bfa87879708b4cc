"""djwire's Django app: add ``"djwire"`` to INSTALLED_APPS."""

from django.apps import AppConfig


class DjwireConfig(AppConfig):
    name = "djwire"
    verbose_name = "djwire"

    def ready(self) -> None:
        # Importing registers the system checks of CHANNEL_LAYERS and ASGI_APPLICATION.
        from . import checks  # noqa: F401
