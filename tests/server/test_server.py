"""``djwire.server.Server``: one process serving the application its config names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from djwire.server import Config, Server

from .support import GET, exchange, parse_responses


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"from config.app"})


async def test_a_server_serves_the_application_of_its_config() -> None:
    server = Server(Config(app=hello, host="127.0.0.1", port=0, lifespan="off"))
    task = asyncio.create_task(server.serve(install_signals=False))
    await asyncio.wait_for(server.started.wait(), 10)
    try:
        (response,) = parse_responses(await exchange(server.addresses[0][1], GET))
        assert response.body == b"from config.app"
        assert server.config.app is hello
    finally:
        server.request_shutdown()
        assert await asyncio.wait_for(task, 10) == 0


def test_the_application_given_separately_replaces_the_one_in_the_config() -> None:
    """The form of earlier releases: the config names the app, the object is passed."""
    server = Server(Config(app="tests.server.cli_app:app"), hello)
    assert server.app is hello and server.config.app is hello


def test_a_config_naming_the_application_by_string_alone_is_refused() -> None:
    with pytest.raises(TypeError, match=r"not the name 'tests\.server\.cli_app:app'"):
        Server(Config(app="tests.server.cli_app:app"))
