"""Without CHANNEL_LAYERS: no layer in general (as in Channels), the IPC layer in the
processes of djwire's own server and worker commands, which then reach each other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from djwire.extensions import IMPLICIT_IPC_LAYER, implicit_ipc_layer
from djwire.layers import channel_layers, get_channel_layer
from djwire.layers.ipc import IPCChannelLayer
from djwire.layers.ipc import space as spaces
from tests.server.support import free_port

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "tests.layers.ipc.project.settings"
TIMEOUT = 15


# -- the rule ----------------------------------------------------------------------------


@pytest.fixture
def no_channel_layers(settings, monkeypatch):
    existed = spaces.resolve(spaces.project_name(), None).exists()
    del settings.CHANNEL_LAYERS
    monkeypatch.delenv(IMPLICIT_IPC_LAYER, raising=False)
    yield settings
    channel_layers.set("default", None)
    if not existed:  # the test suite's own default space: leave nothing behind
        shutil.rmtree(spaces.resolve(spaces.project_name(), None), ignore_errors=True)


def test_without_channel_layers_there_is_no_layer_as_in_channels(no_channel_layers) -> None:
    assert get_channel_layer() is None


def test_djwire_commands_get_the_ipc_layer_on_the_projects_space(
    no_channel_layers, monkeypatch
) -> None:
    monkeypatch.setenv(IMPLICIT_IPC_LAYER, "1")
    layer = get_channel_layer()
    assert isinstance(layer, IPCChannelLayer)
    assert layer.space == spaces.resolve(spaces.project_name(), None)


def test_the_implicit_layer_can_be_turned_off_and_never_overrides_a_setting(
    no_channel_layers, monkeypatch
) -> None:
    monkeypatch.setenv(IMPLICIT_IPC_LAYER, "0")
    assert get_channel_layer() is None
    monkeypatch.setenv(IMPLICIT_IPC_LAYER, "1")
    no_channel_layers.CHANNEL_LAYERS = {}  # set, even empty: exactly what it says
    assert get_channel_layer() is None


def test_the_commands_turn_it_on_for_their_run_only(monkeypatch) -> None:
    monkeypatch.delenv(IMPLICIT_IPC_LAYER, raising=False)
    with implicit_ipc_layer():
        assert os.environ[IMPLICIT_IPC_LAYER] == "1"
    assert IMPLICIT_IPC_LAYER not in os.environ
    monkeypatch.setenv(IMPLICIT_IPC_LAYER, "0")  # the user's choice stands
    with implicit_ipc_layer():
        assert os.environ[IMPLICIT_IPC_LAYER] == "0"


def test_an_unusable_space_means_no_layer_not_a_broken_one(
    no_channel_layers, monkeypatch, space, caplog
) -> None:
    (space / f"djwire-{os.geteuid()}").mkdir(mode=0o777)
    os.chmod(space / f"djwire-{os.geteuid()}", 0o777)  # others could enter: refused
    monkeypatch.setattr(spaces, "base_directory", lambda: space)
    monkeypatch.setenv(IMPLICIT_IPC_LAYER, "1")
    assert get_channel_layer() is None
    assert "cannot be" in caplog.text and "mode 0777" in caplog.text


# -- real processes -------------------------------------------------------------------------


@pytest.fixture
def project_space() -> Iterator[Path]:
    """The test project's default space, empty before and removed after."""
    path = spaces.resolve(spaces.project_name(PROJECT), None)
    shutil.rmtree(path, ignore_errors=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def project_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != IMPLICIT_IPC_LAYER}
    env.update(DJANGO_SETTINGS_MODULE=PROJECT, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=project_env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.running.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


async def wait_http(port: int, process: subprocess.Popen[bytes], log: str = "") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited:\n{log}"
        with contextlib.suppress(OSError):
            await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/", None, 2)
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not answer")


async def receive(ws: ClientConnection) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def test_runserver_and_runworker_share_the_ipc_layer_with_nothing_configured(
    processes: Processes, project_space: Path
) -> None:
    port = free_port()
    server = processes.start(
        "runserver", "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"
    )
    worker = processes.start("runworker", "-m", "django", "runworker", "tasks")
    await wait_http(port, server)
    async with connect(f"ws://127.0.0.1:{port}/ws/room/", open_timeout=TIMEOUT) as ws:
        welcome = await receive(ws)
        assert welcome["layer"] == "IPCChannelLayer"
        # A sync view sends to the worker; the worker answers the room's sockets.
        url = f"http://127.0.0.1:{port}/enqueue/?text=from-a-view"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        assert body == b"queued"
        done = await receive(ws)
        assert done["done"] == "from-a-view"
        assert done["worker"] == worker.pid != welcome["welcome"]
        await ws.send(json.dumps({"task": "from-a-socket"}))
        assert (await receive(ws))["done"] == "from-a-socket"
    assert await asyncio.to_thread(os.path.isdir, project_space)


async def test_runserver_without_the_implicit_layer_runs_as_before(
    processes: Processes, project_space: Path
) -> None:
    port = free_port()
    server = processes.start(
        "runserver",
        "-m",
        "django",
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        **{IMPLICIT_IPC_LAYER: "0"},
    )
    await wait_http(port, server)
    async with connect(f"ws://127.0.0.1:{port}/ws/room/", open_timeout=TIMEOUT) as ws:
        assert (await receive(ws))["layer"] == "NoneType"
    assert not await asyncio.to_thread(os.path.exists, project_space)


async def test_djwire_serve_workers_share_groups_with_nothing_configured(
    processes: Processes, project_space: Path
) -> None:
    port = free_port()
    server = processes.start(
        "serve",
        "-m",
        "djwire",
        "serve",
        "tests.layers.ipc.project.asgi:application",
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "4"),
    )
    await wait_http(port, server)
    async with contextlib.AsyncExitStack() as stack:
        sockets: list[ClientConnection] = []
        pids: dict[int, int] = {}
        deadline = time.monotonic() + 60
        # The kernel picks the worker process of each connection, and workers that are
        # still starting take none: keep one or two sockets per process and try again
        # (bounded) until several processes hold some.
        while (len(pids) < 2 or len(sockets) < 6) and time.monotonic() < deadline:
            ws = await connect(f"ws://127.0.0.1:{port}/ws/room/", open_timeout=TIMEOUT)
            welcome = await receive(ws)
            assert welcome["layer"] == "IPCChannelLayer"
            pid = welcome["welcome"]
            if pids.get(pid, 0) >= 2:
                await ws.close()
                await asyncio.sleep(0.05)
                continue
            pids[pid] = pids.get(pid, 0) + 1
            sockets.append(await stack.enter_async_context(ws))
        assert len(pids) >= 2, "every socket landed in one worker process"
        await sockets[0].send(json.dumps({"say": "hello, every process"}))
        for ws in sockets:
            assert await receive(ws) == {"said": "hello, every process"}
