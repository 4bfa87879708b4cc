"""The demo across processes with its default channel layer, IPC: no Redis.

``djwire serve --workers 2`` serves it; the chat's worker runs as its own process
(``manage.py runworker chat-bot``); a post saved by ``manage.py liveblog_post`` (a
third process) reaches the open pages.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .demo import EXAMPLES, PYTHON, DemoServer, demo_env, manage
from .test_demo_site import open_socket, receive

SHOW_LAYER = (
    "from djwire.layers import get_channel_layer; layer = get_channel_layer(); "
    "print(type(layer).__name__, layer.space)"
)


@pytest.fixture(scope="module")
def ipc_demo(
    demo_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DemoServer, dict[str, str], subprocess.Popen[bytes]]]:
    env = demo_env(demo_db)
    layer = manage(env, "shell", "-c", SHOW_LAYER).strip().splitlines()[-1]
    assert layer == f"IPCChannelLayer {env['DJWIRE_DEMO_IPC_PATH']}"
    logs = tmp_path_factory.mktemp("ipc-demo")
    server = DemoServer(env, logs / "server.log", how="serve", workers=2)
    with (logs / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [PYTHON, "manage.py", "runworker", "chat-bot"],
            cwd=EXAMPLES,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        server.start()
        yield server, env, worker
    finally:
        server.stop()
        with contextlib.suppress(ProcessLookupError):
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_the_chat_worker_answers_every_member_in_any_server_process(
    ipc_demo: tuple[DemoServer, dict[str, str], subprocess.Popen[bytes]],
) -> None:
    server, _, worker = ipc_demo
    with contextlib.ExitStack() as stack:
        members = [
            stack.enter_context(open_socket(server, "/ws/chat/ipc-room/")) for _ in range(6)
        ]
        for ws in members:
            assert receive(ws)["type"] == "welcome"
        members[0].send(json.dumps({"type": "message", "text": "!roll"}))
        for ws in members:
            assert receive(ws)["message"]["text"] == "!roll"
        for ws in members:  # from the worker process, through the layer
            answer = receive(ws)["message"]
            assert answer["author"] == "bot"
            assert re.fullmatch(r"rolled a [1-6]", answer["text"])
    assert worker.poll() is None


def test_a_post_saved_by_another_process_appears_live(
    ipc_demo: tuple[DemoServer, dict[str, str], subprocess.Popen[bytes]],
) -> None:
    server, env, _ = ipc_demo
    with contextlib.ExitStack() as stack:
        readers = [
            stack.enter_context(open_socket(server, "/liveblog/launch-day/stream/"))
            for _ in range(4)
        ]
        output = manage(env, "liveblog_post", "launch-day", "Posted over IPC", "--title", "IPC")
        post_id = int(output.split()[2])
        for ws in readers:
            message = receive(ws)
            assert (message["event"], message["id"]) == ("created", post_id)
            assert "Posted over IPC" in message["html"]
