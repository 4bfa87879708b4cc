from django.apps import AppConfig


class LiveblogConfig(AppConfig):
    name = "liveblog"
    verbose_name = "Liveblog"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the post_delete broadcast)
