"""``manage.py runserver`` with djwire installed: HTTP, WebSocket, static files, autoreload."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from .support import TIMEOUT, exchange, free_port, parse_responses

ROOT = Path(__file__).resolve().parents[2]
BANNER = "Starting djwire development server (HTTP and WebSocket)"


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    environment = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.server.runserver_settings",
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), *(env or {}).pop("PYTHONPATH", "").split(os.pathsep)]
        ),
        PYTHONUNBUFFERED="1",
        **(env or {}),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


async def wait_for_banner(process: subprocess.Popen[str], count: int = 1) -> str:
    """Output up to the ``count``-th banner (read in a thread: pipes block)."""
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        seen = 0
        for line in process.stdout:
            lines.append(line)
            if BANNER in line:
                seen += 1
                if seen == count:
                    return

    await asyncio.wait_for(asyncio.to_thread(read), 60)
    return "".join(lines)


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def get(port: int, path: str) -> int:
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    (response,) = parse_responses(await exchange(port, raw))
    return response.status


async def test_runserver_serves_http_websocket_and_static_files() -> None:
    process, port = start("--noreload")
    try:
        output = await wait_for_banner(process)
        assert f"http://127.0.0.1:{port}/" in output
        assert await get(port, "/hello/") == 200
        assert await get(port, "/static/djwire/djwire.js") == 200
        async with connect(f"ws://127.0.0.1:{port}/ws/echo/") as ws:
            await ws.send("through runserver")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "through runserver"
    finally:
        assert stop(process) == 0


async def test_nostatic_leaves_static_files_to_the_project() -> None:
    process, port = start("--noreload", "--nostatic")
    try:
        await wait_for_banner(process)
        assert await get(port, "/static/djwire/djwire.js") == 404
        assert await get(port, "/hello/") == 200
    finally:
        stop(process)


async def test_autoreload_restarts_on_a_code_change(tmp_path: Path) -> None:
    probe = tmp_path / "djwire_reload_probe.py"
    probe.write_text("VALUE = 1\n")
    process, port = start(
        env={"PYTHONPATH": str(tmp_path), "DJWIRE_RELOAD_PROBE": "djwire_reload_probe"}
    )
    try:
        await wait_for_banner(process)
        assert await get(port, "/hello/") == 200
        await asyncio.sleep(1.1)  # the StatReloader compares modification times in seconds
        probe.write_text("VALUE = 2\n")
        output = await wait_for_banner(process)  # the second banner, after the restart
        assert "changed, reloading" in output
        for _ in range(50):
            try:
                assert await get(port, "/hello/") == 200
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("server did not come back after reloading")
    finally:
        stop(process)


def test_static_files_follow_debug_insecure_and_nostatic(settings: object) -> None:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from djwire.management.commands.runserver import Command

    command = Command()
    settings.DEBUG = False  # type: ignore[attr-defined]
    plain = command.get_asgi_application(use_static_handler=True, insecure_serving=False)
    insecure = command.get_asgi_application(use_static_handler=True, insecure_serving=True)
    settings.DEBUG = True  # type: ignore[attr-defined]
    debug = command.get_asgi_application(use_static_handler=True, insecure_serving=False)
    nostatic = command.get_asgi_application(use_static_handler=False, insecure_serving=True)
    assert not isinstance(plain, ASGIStaticFilesHandler)
    assert isinstance(insecure, ASGIStaticFilesHandler)
    assert isinstance(debug, ASGIStaticFilesHandler)
    assert not isinstance(nostatic, ASGIStaticFilesHandler)


async def test_runserver_takes_djwire_server_set_and_no_django_fast_path() -> None:
    process, port = start(
        "--noreload", "--set", "date_header=true", "--no-django-fast-path",
        env={"DJWIRE_TEST_SERVER_SETTINGS": '{"server_header": false, "date_header": false}'},
    )  # fmt: skip
    try:
        await wait_for_banner(process)
        raw = b"GET /where/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        (response,) = parse_responses(await exchange(port, raw))
        assert response.status == 200
        assert not response.body.startswith(b"djwire-view")  # Django's own handler
        assert b"server" not in response.headers  # DJWIRE_SERVER
        assert b"date" in response.headers  # --set wins over DJWIRE_SERVER
    finally:
        assert stop(process) == 0


async def test_runserver_uses_the_fast_path_by_default() -> None:
    process, port = start("--noreload")
    try:
        await wait_for_banner(process)
        raw = b"GET /where/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        (response,) = parse_responses(await exchange(port, raw))
        assert response.body.startswith(b"djwire-view") and b"server" in response.headers
    finally:
        stop(process)


def test_runserver_refuses_an_unknown_djwire_server_key() -> None:
    process, _ = start(env={"DJWIRE_TEST_SERVER_SETTINGS": '{"ws_max_queu": 3}'})
    try:
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, output
    assert "DJWIRE_SERVER: unknown server setting 'ws_max_queu'" in output
    assert "ws_max_queue" in output and BANNER not in output
