"""Run a configured server: one process, or a supervisor with workers."""

from __future__ import annotations

import gc
import logging

from djwire.server import loops
from djwire.server.app_loader import AppLoadError, load
from djwire.server.config import Config
from djwire.server.server import Server

logger = logging.getLogger("djwire.server")


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


def run_config(config: Config) -> int:
    """Serve ``config`` in this process (or its workers); return an exit code."""
    if config.workers > 1 and config.fd is None:
        from djwire.server.supervisor import Supervisor

        return Supervisor(config).run()
    try:
        app = load(
            config.app, django_fast_path=config.django_fast_path, threads=config.django_threads
        )
    except AppLoadError as exc:
        logger.error("%s", exc)
        return 1
    server = Server(config, app)
    server.on_started = lambda started: tune_gc(config)
    try:
        code: int = loops.run(server.serve(), config.loop)
        return code
    except OSError as exc:
        logger.error("Could not serve: %s", exc)
        return 1
