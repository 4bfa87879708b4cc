"""The demo across processes with the Redis layer (DJWIRE_DEMO_REDIS).

A private redis-server on a free loopback port; the demo served by
``djwire serve --workers 2``; posts saved by ``manage.py liveblog_post`` (a third
process) reach the open sockets, and chat messages reach members whichever
worker process holds their socket.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from .conftest import unavailable
from .demo import DemoServer, demo_env, free_port, manage

TIMEOUT = 10


def redis_layer_available() -> bool:
    try:
        module = importlib.import_module("djwire.layers.redis")
    except ImportError:
        return False
    return hasattr(module, "RedisChannelLayer")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not redis_layer_available():
        pytest.skip("djwire.layers.redis.RedisChannelLayer is not in the package yet")
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_demo(
    redis_url: str, demo_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DemoServer, dict[str, str]]]:
    env = demo_env(demo_db, DJWIRE_DEMO_REDIS=redis_url)
    log = tmp_path_factory.mktemp("redis-demo") / "server.log"
    server = DemoServer(env, log, how="serve", workers=2)
    server.start()
    try:
        yield server, env
    finally:
        server.stop()


def open_socket(server: DemoServer, path: str) -> ClientConnection:
    return connect(server.ws_url + path, origin=server.url, open_timeout=TIMEOUT, close_timeout=2)


def receive(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=TIMEOUT))
    assert isinstance(message, dict)
    return message


def test_post_saved_by_another_process_appears_live(
    redis_demo: tuple[DemoServer, dict[str, str]],
) -> None:
    server, env = redis_demo
    with contextlib.ExitStack() as stack:
        readers = [
            stack.enter_context(open_socket(server, "/liveblog/launch-day/stream/"))
            for _ in range(4)
        ]
        # connect_blog joins the group before it accepts: once open, a socket is in.
        output = manage(
            env, "liveblog_post", "launch-day", "Posted from a shell", "--title", "CLI"
        )
        post_id = int(output.split()[2])
        for ws in readers:
            message = receive(ws)
            assert message["type"] == "post"
            assert message["event"] == "created"
            assert message["id"] == post_id
            assert "Posted from a shell" in message["html"]
        manage(env, "liveblog_post", "launch-day", "Corrected", "--edit", str(post_id))
        for ws in readers:
            message = receive(ws)
            assert (message["event"], message["id"]) == ("updated", post_id)
            assert "Corrected" in message["html"]


def test_chat_reaches_members_on_every_worker_process(
    redis_demo: tuple[DemoServer, dict[str, str]],
) -> None:
    server, _ = redis_demo
    with contextlib.ExitStack() as stack:
        members = [
            stack.enter_context(open_socket(server, "/ws/chat/redis-room/")) for _ in range(6)
        ]
        for ws in members:
            assert receive(ws)["type"] == "welcome"
        members[0].send(json.dumps({"type": "message", "text": "to everyone"}))
        for ws in members:
            assert receive(ws)["message"]["text"] == "to everyone"
