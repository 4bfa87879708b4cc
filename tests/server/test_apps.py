"""Any ASGI 3 app runs on djwire: Django, djwire's framework, Starlette.

And djwire's framework runs on other servers too (uvicorn, daphne), so users are
never locked in. Those two are not djwire dependencies: they run from the peers
environment (tests/support/peers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.asgi import get_asgi_application
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.peers import peers_python

from .support import TIMEOUT, exchange, free_port, parse_responses, serve

ROOT = Path(__file__).resolve().parents[2]


async def test_plain_django_asgi_application() -> None:
    async with serve(get_asgi_application(), django_fast_path=False) as running:
        raw = b"GET /hello/ HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n\r\n"
        (response,) = parse_responses(await exchange(running.port, raw))
    assert response.status == 200 and response.body == b"Hello, world"


async def test_starlette_app() -> None:
    starlette = pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute

    assert starlette

    async def home(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse(f"hi {request.query_params.get('n', '')}")

    async def ws(websocket):  # type: ignore[no-untyped-def]
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text.upper())
        await websocket.close()

    app = Starlette(routes=[Route("/", home), WebSocketRoute("/ws", ws)])
    async with serve(app, lifespan="on") as running:
        raw = b"GET /?n=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.body == b"hi 5"
        async with connect(running.url("/ws")) as socket:
            await socket.send("shout")
            assert await socket.recv() == "SHOUT"


async def test_djwire_routers_and_consumers() -> None:
    from djwire.layers import get_channel_layer

    from .framework_app import application

    async with serve(application) as running:
        async with connect(running.url("/ws/echo/")) as echo:
            await echo.send("ping")
            assert await echo.recv() == "ping"
        async with (
            connect(running.url("/ws/room/")) as alice,
            connect(running.url("/ws/room/")) as bob,
        ):
            await asyncio.sleep(0.05)
            await alice.send(json.dumps({"text": "via handler"}))
            assert json.loads(await bob.recv()) == {"said": "via handler"}
            assert json.loads(await alice.recv()) == {"said": "via handler"}
            layer = get_channel_layer()
            before = layer.stats.direct_deliveries
            await bob.send(json.dumps({"text": "straight to sockets", "direct": True}))
            assert json.loads(await alice.recv()) == {"said": "straight to sockets"}
            assert json.loads(await bob.recv()) == {"said": "straight to sockets"}
            # The group message went to both sockets without waking the consumers.
            assert layer.stats.direct_deliveries - before == 2
        with pytest.raises(InvalidStatus) as info:
            await connect(running.url("/ws/nowhere/"))
        assert info.value.response.status_code == 403
        raw = b"GET /hello/ HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n\r\n"
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.body == b"Hello, world"


async def _joined(layer: Any, group: str) -> None:
    for _ in range(int(TIMEOUT / 0.01)):
        if await layer.group_channels(group):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no socket joined {group!r}")


async def _said(member: Any, count: int) -> list[str]:
    return [
        json.loads(await asyncio.wait_for(member.recv(), TIMEOUT))["said"] for _ in range(count)
    ]


async def test_a_member_working_through_waiting_group_messages_gets_them_in_order() -> None:
    # 50 group sends in one go: each member then finds the rest waiting after the
    # first, and sends their frames in one write (hold_frames); none lost or reordered.
    from djwire.layers import get_channel_layer

    from .framework_app import application

    async with serve(application) as running, connect(running.url("/ws/room/")) as member:
        layer = get_channel_layer()
        assert layer is not None
        await _joined(layer, "room")
        for n in range(50):
            await layer.group_send("room", {"type": "room.message", "text": str(n)})
        await layer.group_send("room", {"type": "websocket.send", "text": '{"said": "end"}'})
        said = [
            json.loads(await asyncio.wait_for(member.recv(), TIMEOUT))["said"] for _ in range(51)
        ]
        assert said == [str(n) for n in range(50)] + ["end"]


async def test_a_direct_frame_does_not_overtake_a_message_its_consumer_is_handling() -> None:
    from djwire.layers import get_channel_layer

    from .framework_app import application

    async with serve(application) as running, connect(running.url("/ws/room/")) as member:
        layer = get_channel_layer()
        assert layer is not None
        await _joined(layer, "room")
        await layer.group_send("room", {"type": "room.message", "text": "handled"})
        await layer.group_send("room", {"type": "websocket.send", "text": '{"said": "direct"}'})
        said = [
            json.loads(await asyncio.wait_for(member.recv(), TIMEOUT))["said"] for _ in range(2)
        ]
        assert said == ["handled", "direct"]


def _other_server(argv: list[str]) -> subprocess.Popen[bytes]:
    python = peers_python()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [str(python), "-m", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _exercise_framework(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/echo/", open_timeout=2) as echo:
                await echo.send("over there")
                assert await asyncio.wait_for(echo.recv(), TIMEOUT) == "over there"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    async with (
        connect(f"ws://127.0.0.1:{port}/ws/room/") as alice,
        connect(f"ws://127.0.0.1:{port}/ws/room/") as bob,
    ):
        await asyncio.sleep(0.05)
        await alice.send(json.dumps({"text": "hello"}))
        assert json.loads(await asyncio.wait_for(bob.recv(), TIMEOUT)) == {"said": "hello"}
        await alice.send(json.dumps({"text": "direct", "direct": True}))
        assert json.loads(await asyncio.wait_for(bob.recv(), TIMEOUT)) == {"said": "direct"}


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
async def test_djwire_framework_runs_unchanged_under(server: str) -> None:
    port = free_port()
    app = "tests.server.framework_app:application"
    if server == "uvicorn":
        argv = [
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    else:
        argv = ["daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    process = _other_server(argv)
    try:
        await _exercise_framework(port, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
