"""djwire's server loggers: set up unless the project's logging names them, and kept on."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from djwire.server import logs
from djwire.server.config import Config

NAMES = ("djwire", logs.SERVER_LOGGER, logs.ACCESS_LOGGER)


@pytest.fixture(autouse=True)
def _restore_loggers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """These tests change process-wide loggers: put them back as they were."""
    monkeypatch.setattr(logs, "_installed", {})
    saved = []
    for name in NAMES:
        target = logging.getLogger(name)
        saved.append((target, target.handlers[:], target.level, target.propagate, target.disabled))
    yield
    for target, handlers, level, propagate, disabled in saved:
        target.handlers[:] = handlers
        target.setLevel(level)
        target.propagate = propagate
        target.disabled = disabled


def clear() -> None:
    for name in NAMES:
        logging.getLogger(name).handlers.clear()


def test_loggers_nobody_configured_get_a_stderr_handler() -> None:
    clear()
    logs.configure_logging(Config(log_level="debug", access_log=False))
    server, access = logging.getLogger(logs.SERVER_LOGGER), logging.getLogger(logs.ACCESS_LOGGER)
    assert len(server.handlers) == 1 and server.propagate is False
    assert server.level == logging.DEBUG and access.level == logging.WARNING


def test_loggers_a_project_configured_are_left_to_it() -> None:
    clear()
    project = logging.NullHandler()
    server = logging.getLogger(logs.SERVER_LOGGER)
    server.addHandler(project)
    server.setLevel(logging.ERROR)
    logs.configure_logging(Config(log_level="debug"))
    assert server.handlers == [project] and server.level == logging.ERROR
    # The access logger is its child: it propagates to the project's handler.
    access = logging.getLogger(logs.ACCESS_LOGGER)
    assert access.handlers == [] and access.propagate is True


def test_a_blanket_disable_is_undone_but_a_takeover_is_respected() -> None:
    clear()
    logs.configure_logging(Config())
    server, access = logging.getLogger(logs.SERVER_LOGGER), logging.getLogger(logs.ACCESS_LOGGER)
    # What dictConfig does: disable_existing_loggers=True disables loggers it does
    # not name; a logger it names loses its handlers to the project's.
    server.disabled = True
    access.disabled = True
    access.handlers[:] = [logging.NullHandler()]
    logs.reclaim_logging(Config(log_level="warning"))
    assert server.disabled is False and server.level == logging.WARNING
    assert access.disabled is True  # the project's now
