from django.apps import AppConfig


class DemositeConfig(AppConfig):
    name = "demosite"
    verbose_name = "djwire demo"
