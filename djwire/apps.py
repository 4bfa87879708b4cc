from django.apps import AppConfig


class DjwireConfig(AppConfig):
    name = "djwire"
    verbose_name = "djwire"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
