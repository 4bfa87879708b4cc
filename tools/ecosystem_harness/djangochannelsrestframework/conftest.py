"""Django settings for djangochannelsrestframework's suite (its sdist ships no conftest)."""

from django.conf import settings


def pytest_configure() -> None:
    settings.configure(
        SECRET_KEY="ecosystem-run",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "channels",
            "tests",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3"}},
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
