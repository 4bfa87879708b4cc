"""Run a configured server: one process, or a supervisor with workers."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Collection

from djwire.server import loops
from djwire.server.app_loader import AppLoadError, import_app
from djwire.server.config import Config
from djwire.server.logs import reclaim_logging
from djwire.server.options import with_project_settings
from djwire.server.server import Server
from djwire.server.startup_checks import run_startup_checks

logger = logging.getLogger("djwire.server")

#: Exit codes (docs/server.md): the app cannot be loaded or the address bound; the
#: settings are invalid; the app's lifespan startup failed.
EXIT_ERROR = 1
EXIT_USAGE = 2


def tune_gc(config: Config) -> None:
    """The whole process's GC settings: only for processes djwire serve owns.

    Instagram's and gunicorn's practice: objects that live as long as the process
    are frozen out of collections, and young collections run less often. Measured
    in bench/NOTES.md (W2 handler path: paced p99 82 -> 28 ms, +10-18 % throughput).
    """
    if config.gc_thresholds is not None:
        gc.set_threshold(*config.gc_thresholds)
    if config.gc_freeze:
        gc.collect()
        gc.freeze()


def run_config(
    config: Config,
    *,
    explicit: Collection[str] | None = None,
    on_ready: Callable[[], None] | None = None,
    startup_checks: bool = True,
) -> int:
    """Serve ``config`` in this process (or its workers); return an exit code.

    ``explicit`` names the fields the caller chose (a command line's options): when
    given, a Django project's ``DJWIRE_SERVER`` setting fills in the others once the
    app is imported. ``on_ready`` is called once the server listens and the app's
    lifespan startup is done. ``startup_checks``: run the Django system checks tagged
    for the server's start (:mod:`djwire.server.startup_checks`), once the app is
    imported; of several workers, only one does.
    """
    if config.workers > 1:
        from djwire.server.supervisor import Supervisor

        return Supervisor(config, explicit).run()
    try:
        app = import_app(config.app) if isinstance(config.app, str) else config.app
    except AppLoadError as exc:
        reclaim_logging(config)
        logger.error("%s", exc)
        return EXIT_ERROR
    if explicit is not None:
        try:
            config = with_project_settings(config, explicit)
            config.validate()
        except ValueError as exc:
            reclaim_logging(config)
            logger.error("%s", exc)
            return EXIT_USAGE
    # Importing a Django project may have run its LOGGING setup over ours.
    reclaim_logging(config)
    if startup_checks:
        run_startup_checks()
    if config.django_fast_path:
        from djwire.django_http import accelerate

        app = accelerate(app, threads=config.django_threads)
    server = Server(config.replace(app=app))

    def started(server: Server) -> None:
        tune_gc(config)
        if on_ready is not None:
            on_ready()

    server.on_started = started
    try:
        code: int = loops.run(server.serve(), config.loop)
        return code
    except OSError as exc:
        logger.error("Could not serve: %s", exc)
        return EXIT_ERROR
