"""``djwire serve`` as a command: binding options, workers, signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from djwire.server.cli import build_parser, config_from_args

from .support import TIMEOUT, exchange, free_port, parse_responses

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.server.cli_app:app"


def spawn(
    *args: str,
    pass_fds: tuple[int, ...] = (),
    app: str = APP,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "djwire", "serve", app, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=pass_fds,
    )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


async def get(port: int | None = None, path: str = "/", uds: str | None = None) -> str:
    raw = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    if uds is not None:
        reader, writer = await asyncio.open_unix_connection(uds)
        writer.write(raw)
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    else:
        assert port is not None
        data = await exchange(port, raw)
    (response,) = parse_responses(data)
    assert response.status == 200
    return response.body.decode()


async def wait_serving(
    port: int | None = None, uds: str | None = None, limit: float = 30.0
) -> str:
    deadline = time.monotonic() + limit
    while True:
        try:
            return await get(port, uds=uds)
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_options_map_onto_the_config() -> None:
    args = build_parser().parse_args(
        [
            "serve", "proj.asgi:application", "--host", "127.0.0.1", "--port", "9000",
            "--workers", "3", "--no-proxy-headers", "--forwarded-allow-ips", "10.0.0.1, 10.0.0.2",
            "--root-path", "/api", "--ws-max-size", "1000", "--ws-ping-interval", "0",
            "--ws-ping-timeout", "7", "--timeout-graceful-shutdown", "3", "--no-access-log",
            "--log-level", "warning", "--uds", "/tmp/x.sock",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.app == "proj.asgi:application" and config.port == 9000 and config.workers == 3
    assert config.proxy_headers is False
    assert config.forwarded_allow_ips == ("10.0.0.1", "10.0.0.2")
    assert config.root_path == "/api" and config.ws_max_message_size == 1000
    assert config.ws_ping_interval is None and config.ws_ping_timeout == 7
    assert config.graceful_shutdown_timeout == 3 and config.access_log is False
    assert config.log_level == "warning" and config.uds == "/tmp/x.sock"


async def test_python_m_djwire_serve_over_tcp_with_root_path() -> None:
    port = free_port()
    process = spawn("--port", str(port), "--root-path", "/mount", "--no-access-log")
    try:
        body = await wait_serving(port)
        assert f"pid={process.pid}" in body and "root=/mount path=/mount/" in body
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send("cli")
            assert await ws.recv() == "cli"
    finally:
        assert stop(process) == 0


async def test_gc_is_tuned_after_startup_unless_told_otherwise() -> None:
    port = free_port()
    process = spawn("--port", str(port))
    try:
        body = await wait_serving(port)
        assert "gc=(20000, 50, 100) frozen=True" in body
    finally:
        stop(process)
    port = free_port()
    process = spawn("--port", str(port), "--no-gc-freeze", "--gc-thresholds", "default")
    try:
        body = await wait_serving(port)
        assert "gc=(700, 10, 10) frozen=False" in body
    finally:
        stop(process)


async def test_console_script_and_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    script = Path(sys.executable).with_name("djwire")
    if not script.exists():
        pytest.skip("the djwire console script is not installed in this environment")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [str(script), "serve", APP, "--uds", path], cwd=ROOT, env=env, stderr=subprocess.PIPE
    )
    try:
        assert "pid=" in await wait_serving(uds=path)
    finally:
        assert stop(process) == 0  # type: ignore[arg-type]
    assert not os.path.exists(path)  # noqa: ASYNC240 - removed on shutdown


async def test_inherited_file_descriptor() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    process = spawn("--fd", str(listener.fileno()), pass_fds=(listener.fileno(),))
    listener.close()  # the child holds its own copy
    try:
        assert f"pid={process.pid}" in await wait_serving(port)
    finally:
        assert stop(process) == 0


def test_bad_app_string_fails_with_a_clear_message() -> None:
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "djwire",
            "serve",
            "no_such_module_here:app",
            "--port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 1
    assert "Could not import module 'no_such_module_here'" in process.stderr


async def test_sigterm_finishes_in_flight_requests_and_closes_websockets_1001() -> None:
    port = free_port()
    process = spawn("--port", str(port), "--timeout-graceful-shutdown", "5")
    try:
        await wait_serving(port)
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            slow = asyncio.ensure_future(get(port, "/slow"))
            await asyncio.sleep(0.3)  # the slow request is in flight
            process.send_signal(signal.SIGTERM)
            assert "path=/slow" in await asyncio.wait_for(slow, TIMEOUT)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert process.wait(TIMEOUT) == 0
        with pytest.raises(OSError):
            await get(port)  # no longer accepting
    finally:
        stop(process)


async def test_workers_are_supervised_and_a_killed_one_is_replaced() -> None:
    port = free_port()
    process = spawn("--port", str(port), "--workers", "2", "--timeout-graceful-shutdown", "3")
    started: list[int] = []
    assert process.stderr is not None

    def read_started(count: int) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            match = re.search(r"Started worker pid (\d+)", line)
            if match:
                started.append(int(match.group(1)))
                if len(started) >= count:
                    return

    try:
        await asyncio.wait_for(asyncio.to_thread(read_started, 2), 60)
        await wait_serving(port)
        pids = {int(re.search(r"pid=(\d+)", await get(port)).group(1)) for _ in range(20)}  # type: ignore[union-attr]
        assert pids <= set(started)
        victim = started[0]
        os.kill(victim, signal.SIGKILL)
        await asyncio.wait_for(asyncio.to_thread(read_started, 3), 60)
        replacement = started[2]
        assert replacement not in started[:2]
        os.kill(replacement, 0)  # alive
        # Still served, by the survivor and the replacement only.
        for _ in range(20):
            body = await get(port)
            assert f"pid={victim}" not in body
    finally:
        assert stop(process) == 0
    for pid in started[1:]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_help_states_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    blocks = re.split(r"\n  (?=-)", text.split("options:", 1)[1])
    options = [" ".join(block.split()) for block in blocks]  # unwrapped
    frame = next(block for block in options if block.startswith("--ws-max-frame-size"))
    assert "(default: the message limit)" in frame
    for block in options:
        assert block.count("(default") <= 1, block


def serve_and_wait(*args: str, limit: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "djwire", "serve", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=limit,
    )


def test_workers_stop_when_the_app_cannot_be_imported() -> None:
    process = serve_and_wait(
        "no_such_module_here:app", "--workers", "2", "--port", str(free_port())
    )
    assert process.returncode == 1, process.stderr
    assert "Could not import module 'no_such_module_here'" in process.stderr
    assert "before it was ready; stopping" in process.stderr


def test_workers_stop_with_exit_code_3_when_lifespan_startup_fails() -> None:
    process = serve_and_wait(
        "tests.server.cli_app:lifespan_fails", "--workers", "2", "--port", str(free_port())
    )
    assert process.returncode == 3, process.stderr
    assert "ASGI lifespan startup failed: no database" in process.stderr


def test_loop_uvloop_without_uvloop_is_a_one_line_error() -> None:
    # sys.modules["uvloop"] = None makes the import fail as if it were not installed.
    code = (
        "import sys; sys.modules['uvloop'] = None; from djwire.server.cli import main; "
        f"sys.exit(main(['serve', {APP!r}, '--loop', 'uvloop', '--port', '{free_port()}']))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1, process.stderr
    assert "uvloop is not installed" in process.stderr
    assert "Traceback" not in process.stderr and "never awaited" not in process.stderr


async def test_inherited_file_descriptor_with_workers() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    process = spawn(
        "--fd", str(listener.fileno()), "--workers", "2", pass_fds=(listener.fileno(),)
    )
    listener.close()
    started: list[int] = []

    def read_started() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            match = re.search(r"Started worker pid (\d+)", line)
            if match:
                started.append(int(match.group(1)))
                if len(started) == 2:
                    return

    try:
        await asyncio.wait_for(asyncio.to_thread(read_started), 30)
        body = await wait_serving(port)
        served_by = int(re.search(r"pid=(\d+)", body).group(1))  # type: ignore[union-attr]
        assert served_by in started and served_by != process.pid
    finally:
        assert stop(process) == 0
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
