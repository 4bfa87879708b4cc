"""The demo across processes with the Redis layer (DJWIRE_DEMO_REDIS).

A private redis-server on a free loopback port; the demo served by
``djwire serve --workers 2``; posts saved by ``manage.py liveblog_post`` (a third
process) reach the open sockets; chat members all get a message, whichever of the
two workers the kernel gave their socket to (not controlled by the test).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.redis_servers import RedisServer

from .demo import EXAMPLES, PYTHON, DemoServer, demo_env, manage

TIMEOUT = 10


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """A private redis-server (tests/support/redis_servers.py: skips, or fails under CI,
    where redis-server is missing)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def redis_demo(
    redis: RedisServer, demo_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DemoServer, dict[str, str]]]:
    env = demo_env(demo_db, DJWIRE_DEMO_REDIS=redis.url)
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


def test_chat_works_with_several_worker_processes(
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


def test_a_post_saved_while_redis_is_down_is_kept(redis: RedisServer, demo_db: Path) -> None:
    env = demo_env(demo_db, DJWIRE_DEMO_REDIS=redis.url)
    redis.stop()
    try:
        result = subprocess.run(
            [PYTHON, "manage.py", "liveblog_post", "launch-day", "Saved with Redis down"],
            cwd=EXAMPLES,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        redis.start()
    assert result.returncode == 0, result.stderr
    assert "Created post" in result.stdout
    # The save succeeds: pushing to pages is best effort (the layer logs the outage);
    # pages pick the post up when they reconnect.
    status = manage(demo_env(demo_db), "shell", "-c", SHOW_POST)
    assert status.strip().splitlines()[-1] == "1"


SHOW_POST = (
    "from liveblog.models import Post; "
    "print(Post.objects.filter(body='Saved with Redis down').count())"
)
