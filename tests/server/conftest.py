from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _server_logs_visible(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="djwire.server")
