"""``manage.py runworker [CHANNEL ...] [--connections]``: run Django code for the layer.

* ``runworker thumbnails mail`` consumes those named channels (background tasks);
  with classic routing and no channel named, all of its named channels.
* ``runworker --connections`` runs the consumers and views of the connections
  held by gateways (``djwire serve --gateway`` / ``runserver --gateway``).

Both at once are fine. SIGTERM/SIGINT stops gracefully: no new work is taken,
what is in hand is finished (``--shutdown-timeout``), connections move to other
workers with their sockets left open. ``--reload`` (the default when DEBUG is on)
restarts the worker, gracefully, when Python code changes.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import BaseCommand, CommandError
from django.core.management.base import CommandParser
from django.utils import autoreload

from djwire.extensions import implicit_ipc_layer
from djwire.layers import DEFAULT_CHANNEL_LAYER, get_channel_layer
from djwire.routing import get_default_application
from djwire.worker import Worker, WorkerSettings
from djwire.worker.process import Part, StopSwitch, run_until_signalled

logger = logging.getLogger("djwire.worker")


class Command(BaseCommand):
    help = "Run a worker: consume named channels, and/or the connections of gateways."
    leave_locale_alone = True
    worker_class = Worker

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Channel layer alias to use, if not the default.",
        )
        parser.add_argument(
            "--connections",
            action="store_true",
            help="Run the consumers and views of connections held by gateways "
            "(djwire serve --gateway).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Messages in progress at once per named channel (threads for sync "
            "consumers, tasks for async ones). Default: DJWIRE_WORKER['concurrency'] or 32.",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=None,
            help="Seconds to finish the work in hand after SIGTERM. "
            "Default: DJWIRE_WORKER['shutdown_timeout'] or 30.",
        )
        reload = parser.add_mutually_exclusive_group()
        reload.add_argument(
            "--reload",
            action="store_true",
            default=None,
            help="Restart when Python code changes (default when DEBUG is on).",
        )
        reload.add_argument("--noreload", action="store_false", dest="reload")
        parser.add_argument(
            "channels",
            nargs="*",
            help="Named channels to consume (default with classic routing: all of its "
            "named channels, unless --connections is given).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Without CHANNEL_LAYERS, workers share the IPC layer with the project's
        # runserver or djwire serve (see djwire.layers.manager); the reloader's
        # child inherits the setting.
        with implicit_ipc_layer():
            self.run_worker(options)

    def run_worker(self, options: dict[str, Any]) -> None:
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("You do not have any CHANNEL_LAYERS configured.")
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        try:
            worker_settings = WorkerSettings.from_django(
                concurrency=options["concurrency"], shutdown_timeout=options["shutdown_timeout"]
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        application = get_default_application()
        channels = list(options["channels"])
        classic = _classic_channel_app(application)
        if not channels and not options["connections"]:
            if classic is None:
                raise CommandError(
                    "Name the channels to consume (runworker <channel> ...), or give "
                    "--connections to serve the connections of gateways."
                )
            channels = classic.named_channels()
            if not channels:
                raise CommandError("The classic routing has no named channels to consume.")
        reload = options["reload"]
        if reload is None:
            reload = bool(settings.DEBUG)

        def build() -> list[Part]:
            parts: list[Part] = []
            if channels:
                try:
                    worker = self.worker_class(
                        application=application,
                        channels=channels,
                        channel_layer=layer,
                        settings=worker_settings,
                        require_type=classic is None,
                    )
                except (TypeError, ValueError) as exc:
                    raise CommandError(str(exc)) from exc
                parts.append(worker)
            if options["connections"]:
                from djwire.worker.connections import ConnectionHost

                parts.append(ConnectionHost(application, layer, worker_settings))
            return parts

        what = []
        if channels:
            what.append(f"channels {', '.join(channels)}")
        if options["connections"]:
            what.append("the connections of gateways")
        logger.info("Running worker for %s", " and ".join(what))
        self.stdout.write(
            f"Running worker for {' and '.join(what)} "
            f"(concurrency {worker_settings.concurrency}; Ctrl-C or SIGTERM stops)"
        )
        parts = build()  # mistakes show now, before any reloader starts
        # The process is the worker's alone, as a djwire serve process is the server's:
        # the same GC settings (what Django and the project loaded is frozen out of
        # collections; young collections run less often).
        from djwire.server.config import Config
        from djwire.server.run import tune_gc

        tune_gc(Config())
        if reload:
            run_with_graceful_reloader(build, worker_settings.shutdown_timeout)
        else:
            run_until_signalled(*parts)


def run_with_graceful_reloader(build: Any, shutdown_timeout: float) -> None:
    """Django's autoreloader, but a code change first stops the worker gracefully
    (connections move to other workers, tasks in hand finish) and only then restarts."""
    switch = StopSwitch()

    def on_change(sender: Any, file_path: Any, **kwargs: Any) -> None:
        logger.info("%s changed: stopping the worker gracefully to reload", file_path)
        switch.request()
        switch.wait_stopped(shutdown_timeout + 5)
        # Returning nothing lets Django restart the process.

    def main() -> None:
        run_until_signalled(*build(), switch=switch)

    autoreload.file_changed.connect(on_change, weak=False)
    autoreload.run_with_reloader(main)


def _classic_channel_app(application: Any) -> Any:
    from djwire.classic.app import ClassicChannelApp

    mapping = getattr(application, "application_mapping", {})
    app = mapping.get("channel") if hasattr(mapping, "get") else None
    return app if isinstance(app, ClassicChannelApp) else None
