"""djwire's Django app: add ``"djwire"`` to INSTALLED_APPS."""

from django.apps import AppConfig


class DjwireConfig(AppConfig):
    name = "djwire"
    verbose_name = "djwire"

    def ready(self) -> None:
        # Importing registers the system checks of CHANNEL_LAYERS and ASGI_APPLICATION.
        from . import checks  # noqa: F401
        from .classic.app import classic_application_from_settings
        from .routing import add_default_application_source

        # The classic API sits on the core: the core's get_default_application()
        # learns of the classic ROUTING setting only through this hook.
        add_default_application_source(classic_application_from_settings)
