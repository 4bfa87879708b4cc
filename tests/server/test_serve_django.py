"""``djwire serve`` with a Django project: its logging setup and its DJWIRE_SERVER setting."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time

from .support import Response, exchange, free_port, parse_responses
from .test_cli import spawn as cli_spawn

PROJECT = "tests.server.serve_asgi"
#: Our own stderr handler's format: "2026-01-01 12:00:00,000 INFO message".
OUR_FORMAT = r"\d{4}-\d\d-\d\d [\d:,]+ INFO "


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    settings = {"DJANGO_SETTINGS_MODULE": "tests.server.serve_settings"}
    return cli_spawn(*args, app=PROJECT, env={**settings, **(env or {})})


async def get_where(port: int, limit: float = 30.0) -> Response:
    """GET /where/ (a sync view), retried until the server answers."""
    raw = b"GET /where/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    deadline = time.monotonic() + limit
    while True:
        try:
            (response,) = parse_responses(await exchange(port, raw))
            return response
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit code and everything written to stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr


async def test_logs_survive_a_project_logging_that_disables_existing_loggers() -> None:
    port = free_port()
    process = spawn("--port", str(port))
    try:
        response = await get_where(port)
        assert response.status == 200
    finally:
        code, stderr = finish(process)
    assert code == 0, stderr
    assert re.search(OUR_FORMAT + r"djwire serving on http://127\.0\.0\.1:" + str(port), stderr)
    assert re.search(OUR_FORMAT + r'127\.0\.0\.1:\d+ - "GET /where/ HTTP/1\.1" 200', stderr)
    assert "djwire stopped" in stderr


async def test_a_project_logging_that_names_the_server_logger_is_respected() -> None:
    port = free_port()
    process = spawn("--port", str(port), env={"DJWIRE_TEST_LOGGING": "project"})
    try:
        await get_where(port)
    finally:
        code, stderr = finish(process)
    assert code == 0, stderr
    assert f"PROJECT djwire serving on http://127.0.0.1:{port}" in stderr
    assert not re.search(OUR_FORMAT + "djwire serving on", stderr)  # not ours, not twice
    # The access logger is a child of the project's: it goes to the project's handler.
    assert re.search(r'PROJECT 127\.0\.0\.1:\d+ - "GET /where/ HTTP/1\.1" 200', stderr)


async def test_djwire_server_setting_applies_and_the_command_line_wins() -> None:
    # serve_settings: DJWIRE_SERVER = {"server_header": False, "date_header": False}
    port = free_port()
    process = spawn("--port", str(port), "--set", "date_header=true", "--no-access-log")
    try:
        response = await get_where(port)
    finally:
        code, stderr = finish(process)
    assert response.status == 200 and response.body.startswith(b"djwire-view")
    assert b"server" not in response.headers  # from DJWIRE_SERVER
    assert b"date" in response.headers  # --set beats DJWIRE_SERVER
    assert code == 0, stderr
    assert "GET /where/" not in stderr  # --no-access-log


def test_an_unknown_djwire_server_key_exits_2_naming_the_valid_ones() -> None:
    process = spawn(
        "--port",
        str(free_port()),
        env={"DJWIRE_TEST_SERVER_SETTINGS": '{"send_timout": 3}'},
    )
    try:
        _, stderr = process.communicate(timeout=30)  # it exits by itself
    finally:
        code, _ = finish(process)
    assert code == 2, stderr
    assert "DJWIRE_SERVER: unknown server setting 'send_timout'" in stderr
    assert "send_timeout" in stderr
