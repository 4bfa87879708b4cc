"""``djwire serve`` with a Django project: its logging setup and its DJWIRE_SERVER setting."""

from __future__ import annotations

import asyncio
import calendar
import re
import signal
import subprocess
import threading
import time

import pytest

from .support import Response, exchange, free_port, parse_responses
from .test_cli import spawn as cli_spawn

PROJECT = "tests.server.serve_asgi"
#: Our own stderr handler's format: "2026-01-01 12:00:00.000 UTC INFO message".
OUR_FORMAT = r"\d{4}-\d\d-\d\d [\d:.]+ UTC INFO "


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


@pytest.fixture(scope="module")
def two_workers_log() -> str:
    """stderr of ``djwire serve --workers 2`` of the Django project, served twice.

    Its TIME_ZONE (+14h) and the command's TZ (-6h) differ; the layer is in-memory.
    """
    port = free_port()
    zones = {"TZ": "Etc/GMT+6", "DJWIRE_TEST_TIME_ZONE": "Pacific/Kiritimati"}
    process = spawn("--port", str(port), "--workers", "2", env=zones)
    assert process.stderr is not None
    early: list[str] = []
    try:
        for _ in range(2):
            assert asyncio.run(get_where(port)).status == 200
        # The first worker logs the start-up checks once it is ready; on a loaded
        # machine the other one may have served both requests before that, so wait
        # (bounded) until both said they are serving before stopping them. The timer
        # stops the server if they never do, which ends the blocking readline().
        stopper = threading.Timer(60, process.terminate)
        stopper.start()
        try:
            while sum("djwire serving on" in line for line in early) < 2:
                line = process.stderr.readline()
                if not line:
                    break
                early.append(line)
        finally:
            stopper.cancel()
    finally:
        code, stderr = finish(process)
    stderr = "".join(early) + stderr
    assert code == 0, stderr
    return stderr


def test_supervisor_and_workers_log_on_one_clock_utc(two_workers_log: str) -> None:
    """Django sets each worker's TZ to TIME_ZONE; the supervisor never loads Django."""
    stamps = {
        line.split(" UTC ", 1)[1].split(" ", 1)[1]: calendar.timegm(
            time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
        )
        for line in two_workers_log.splitlines()
        if "serving on" in line or "GET /where/" in line
    }
    assert any(message.startswith("djwire supervisor") for message in stamps), two_workers_log
    assert any(message.startswith("djwire serving on") for message in stamps), two_workers_log
    for message, stamp in stamps.items():
        assert abs(stamp - time.time()) < 120, message


def test_workers_on_a_process_local_layer_warn_once_at_start(two_workers_log: str) -> None:
    warnings = [line for line in two_workers_log.splitlines() if "djwire.W010" in line]
    assert len(warnings) == 1, two_workers_log
    assert (
        " UTC WARNING CHANNEL_LAYERS['default'] (djwire.layers.InMemoryChannelLayer)"
        in (warnings[0])
    )
    assert "2 server processes" in warnings[0]
