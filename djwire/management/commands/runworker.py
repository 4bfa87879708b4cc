"""``manage.py runworker [channel ...]``: consume named channels of the channel layer."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management import BaseCommand, CommandError
from django.core.management.base import CommandParser

from djwire.layers import DEFAULT_CHANNEL_LAYER, get_channel_layer
from djwire.routing import get_default_application
from djwire.utils import implicit_ipc_layer
from djwire.worker import Worker

logger = logging.getLogger("djwire.worker")


class Command(BaseCommand):
    help = "Run a worker that consumes the named channels of the channel layer."
    leave_locale_alone = True
    worker_class = Worker

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Channel layer alias to use, if not the default.",
        )
        parser.add_argument(
            "channels",
            nargs="*",
            help="Channels to listen on (default with classic routing: all its named channels).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Without CHANNEL_LAYERS, workers share the IPC layer with the project's
        # runserver or djwire serve (see djwire.layers.manager).
        with implicit_ipc_layer():
            self.run_worker(options)

    def run_worker(self, options: dict[str, Any]) -> None:
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("You do not have any CHANNEL_LAYERS configured.")
        application = get_default_application()
        channels = list(options["channels"])
        classic = _classic_channel_app(application)
        if not channels:
            if classic is None:
                raise CommandError("Name the channels to listen on: runworker <channel> ...")
            channels = classic.named_channels()
            if not channels:
                raise CommandError("The classic routing has no named channels to consume.")
        logger.info("Running worker for channels %s", channels)
        self.stdout.write(f"Running worker for channels {', '.join(channels)}")
        worker = self.worker_class(
            application=application,
            channels=channels,
            channel_layer=layer,
            require_type=classic is None,
        )
        worker.run()


def _classic_channel_app(application: Any) -> Any:
    from djwire.classic.app import ClassicChannelApp

    mapping = getattr(application, "application_mapping", {})
    app = mapping.get("channel") if hasattr(mapping, "get") else None
    return app if isinstance(app, ClassicChannelApp) else None
