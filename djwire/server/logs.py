"""The server's own loggers: to stderr, unless the project's logging setup names them.

``djwire serve`` configures these loggers before it imports the application, and
again after: importing a Django project runs its ``LOGGING`` through
``logging.config.dictConfig``, whose ``disable_existing_loggers`` (True unless the
project says otherwise) disables every logger that setup does not name — ours
included, which would silence the startup line and the access log. A logger the
project's setup *does* name (it replaces our handler, or resets it as the child of
a named logger) is the project's choice and is left alone.

Timestamps are UTC, in every process: Django points a process's local time at its
``TIME_ZONE`` setting (it sets ``TZ``) when it loads the settings, which the workers
of ``djwire serve --workers`` do and their supervisor does not, so local time would
put two clocks in one terminal.
"""

from __future__ import annotations

import logging
import sys
import time

from djwire.server.config import Config

SERVER_LOGGER = "djwire.server"
ACCESS_LOGGER = "djwire.server.access"
#: websockets' protocol logger, as djwire's sans-I/O layer names it.
PROTOCOL_LOGGER = "djwire.server.websocket.protocol"


class UTCFormatter(logging.Formatter):
    """``2026-11-24 17:03:05.123 UTC INFO message``: the same clock in every process."""

    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)

    default_time_format = "%Y-%m-%d %H:%M:%S"
    default_msec_format = "%s.%03d UTC"

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")


#: The stderr handler this process gave each logger, to tell ours from the project's.
_installed: dict[str, logging.Handler] = {}


def configure_logging(config: Config) -> None:
    """Log to stderr at ``config.log_level``, unless something else configured us."""
    for name in (SERVER_LOGGER, ACCESS_LOGGER):
        target = logging.getLogger(name)
        if name not in _installed and not _configured_elsewhere(name):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(UTCFormatter())
            target.addHandler(handler)
            target.propagate = False
            _installed[name] = handler
    reclaim_logging(config)
    logging.getLogger(PROTOCOL_LOGGER).setLevel(logging.WARNING)


def _configured_elsewhere(name: str) -> bool:
    """Whether ``name`` or a djwire logger above it has handlers that are not ours.

    Then a logging setup (e.g. Django's LOGGING under runserver) chose where these
    records go: a child such as the access logger propagates there.
    """
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        ancestor = ".".join(parts[:depth])
        ours = _installed.get(ancestor)
        if any(handler is not ours for handler in logging.getLogger(ancestor).handlers):
            return True
    return False


def reclaim_logging(config: Config) -> None:
    """Enable and level the loggers :func:`configure_logging` set up, if still ours."""
    level = getattr(logging, config.log_level.upper())
    for name, handler in _installed.items():
        target = logging.getLogger(name)
        if handler not in target.handlers:
            continue  # a logging setup since then took this logger over
        # Undo a blanket disable_existing_loggers: that setup names no djwire logger.
        target.disabled = False
        if name == ACCESS_LOGGER and not config.access_log:
            target.setLevel(max(level, logging.WARNING))
        else:
            target.setLevel(level)
