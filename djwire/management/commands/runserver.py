"""``manage.py runserver`` on djwire's server: HTTP and WebSocket, with autoreload.

With ``"djwire"`` listed before ``django.contrib.staticfiles`` in INSTALLED_APPS this
command replaces Django's: same arguments (``addrport``, ``--ipv6``, ``--noreload``,
``--nostatic``, ``--insecure``...), same checks, banner and autoreloader, but the
project's ASGI application (``ASGI_APPLICATION``, or the classic routing, or plain
Django) is served by djwire's interface server. Server settings come from the
``DJWIRE_SERVER`` setting and ``--set NAME=VALUE`` (the command line wins).
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.contrib.staticfiles.management.commands.runserver import (
    Command as StaticfilesRunserverCommand,
)
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import connections
from django.utils import autoreload

from djwire.extensions import implicit_ipc_layer
from djwire.server.cli import assignment
from djwire.server.config import Config
from djwire.server.options import COMMAND_LINE_ONLY, field_names, with_project_settings

BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class Command(StaticfilesRunserverCommand):
    help = "Starts a development server for HTTP and WebSocket (djwire), with autoreload."

    # Set by Django's runserver handle() from the addrport argument.
    addr: str
    port: str
    _raw_ipv6: bool

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's own WSGI development server instead (no WebSocket).",
        )
        parser.add_argument(
            "--no-access-log",
            action="store_false",
            dest="access_log",
            help="Do not log each request.",
        )
        parser.add_argument(
            "--no-django-fast-path",
            action="store_false",
            dest="django_fast_path",
            help="Serve sync Django views through Django's ASGIHandler, not the thread pool.",
        )
        parser.add_argument(
            "--gateway",
            action="store_true",
            help="Hold the connections and forward them to workers over the channel layer "
            "(run manage.py runworker --connections too). The gateway runs no project code, "
            "so it does not reload: restart the worker instead, sockets stay open.",
        )
        parser.add_argument(
            "--set",
            action="append",
            dest="server_settings",
            default=[],
            metavar="NAME=VALUE",
            type=server_setting,
            help="Set a djwire server setting (a djwire.server.Config field), e.g. "
            "--set ws_max_queue=64; overrides DJWIRE_SERVER. Repeatable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("gateway"):
            if not options.get("use_asgi", True):
                raise CommandError("--gateway serves over ASGI; it cannot go with --noasgi")
            # Code changes reload the workers; the gateway keeps the browsers connected.
            options["use_reloader"] = False
        if options.get("use_asgi", True):
            # Checked here, before the autoreloader starts, so a mistake is one error.
            self.server_config("", "127.0.0.1", 0, options)
        # Without CHANNEL_LAYERS, this server (the autoreloader's child too) and the
        # project's runworker share the IPC layer; see djwire.layers.manager.
        with implicit_ipc_layer():
            super().handle(*args, **options)

    def server_config(self, app: Any, host: str, port: int, options: dict[str, Any]) -> Config:
        """Development defaults, then DJWIRE_SERVER, then this command's options."""
        chosen: dict[str, Any] = dict(options.get("server_settings") or ())
        if not options.get("access_log", True):
            chosen["access_log"] = False
        if not options.get("django_fast_path", True):
            chosen["django_fast_path"] = False
        development = Config(
            app=app,
            host=host,
            port=port,
            log_level="info",
            # A developer's paused debugger must not get its sockets dropped.
            ws_ping_interval=None,
            graceful_shutdown_timeout=5.0,
        )
        try:
            config = with_project_settings(
                development.replace(**chosen), {"app", "host", "port", *chosen}
            )
            config.validate()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        return config

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options.get("use_asgi", True):
            super().inner_run(*args, **options)
            return
        # As Django's runserver: errors silenced for the reloader surface now.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            check_kwargs: dict[str, Any] = {
                str(key): value for key, value in super().get_check_kwargs(options).items()
            }
            check_kwargs["display_num_errors"] = True
            self.check(**check_kwargs)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()

        from djwire.django_http import accelerate
        from djwire.server import loops
        from djwire.server.logs import configure_logging
        from djwire.server.server import Server

        app = self.get_asgi_application(**options)
        host = "0.0.0.0" if self.addr == "0" else self.addr
        config = self.server_config(app, host, int(self.port), options)
        if config.django_fast_path and not options.get("gateway"):
            app = accelerate(app, threads=config.django_threads)
            config = config.replace(app=app)
        configure_logging(config)
        server = Server(config)
        server.on_started = lambda running: self.on_bind(running.sockets[0].getsockname()[1])
        main_thread = threading.current_thread() is threading.main_thread()
        try:
            loops.run(server.serve(install_signals=main_thread), config.loop)
        except OSError as exc:
            self.stderr.write(f"Error: {BIND_ERRORS.get(exc.errno or 0, exc)}")
            # sys.exit() would only end this thread under the autoreloader.
            os._exit(1)
        except KeyboardInterrupt:
            shutdown_message = options.get("shutdown_message", "")
            if shutdown_message:
                self.stdout.write(shutdown_message)
            sys.exit(0)

    def on_bind(self, server_port: int) -> None:
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        addr = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        if addr == "0":
            addr = "0.0.0.0"
        now = datetime.now().strftime("%B %d, %Y - %X")
        self.stdout.write(
            f"{now}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting djwire development server (HTTP and WebSocket) at "
            f"{self.protocol}://{addr}:{server_port}/\n"
            f"Quit the server with {quit_command}."
        )

    def get_asgi_application(self, **options: Any) -> Any:
        """The project's app (or a gateway to workers running it), static files in front
        of it when Django would serve them."""
        app: Any
        if options.get("gateway"):
            from djwire.gateway.app import GatewayApp

            app = GatewayApp()
        else:
            app = self._project_application()
        if options.get("use_static_handler", True) and (
            settings.DEBUG or options.get("insecure_serving", False)
        ):
            app = ASGIStaticFilesHandler(app)
        return app

    def _project_application(self) -> Any:
        from djwire.routing import get_default_application

        app: Any
        try:
            app = get_default_application()
        except ImproperlyConfigured:
            if getattr(settings, "ASGI_APPLICATION", None):
                raise
            # No ASGI_APPLICATION and no classic routing: plain Django over HTTP.
            from django.core.asgi import get_asgi_application

            app = get_asgi_application()
        return app


def server_setting(text: str) -> tuple[str, Any]:
    """``--set NAME=VALUE``: any server setting but where to listen (addrport's job)."""
    return assignment(text, valid=field_names(exclude=COMMAND_LINE_ONLY))
