"""WebSocket through real loopback sockets, with websockets' client as the peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from djwire.exceptions import RouteNotFound
from djwire.extensions import DIRECT_SOCKET, DirectSocket
from djwire.server import ClientDisconnected

from .support import TIMEOUT, raw_websocket, serve


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send(
            {"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")}
        )


async def test_echo_text_binary_empty_and_fragmented():
    async with serve(echo) as running, connect(running.url("/ws")) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
        await ws.send("")
        assert await ws.recv() == ""
        await ws.send(["frag", "ment", "ed"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"a", b"b"])
        assert await ws.recv() == b"ab"


async def test_scope_and_subprotocol_negotiation():
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await receive()
        await send(
            {"type": "websocket.accept", "subprotocol": "chat.v2", "headers": [(b"x-hi", b"1")]}
        )
        await receive()

    async with (
        serve(app) as running,
        connect(running.url("/room/1?x=y"), subprotocols=["chat.v1", "chat.v2"]) as ws,
    ):
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["x-hi"] == "1"
    (scope,) = scopes
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert scope["path"] == "/room/1" and scope["query_string"] == b"x=y"
    assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
    assert "websocket.http.response" in scope["extensions"]
    assert scope["client"][0] == "127.0.0.1"


async def test_app_close_code_and_reason_reach_the_client():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4321, "reason": "done here"})

    async with serve(app) as running, connect(running.url()) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4321, "done here")


async def test_client_close_code_reaches_the_app():
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.set_result(await receive())

    async with serve(app) as running:
        async with connect(running.url()) as ws:
            await ws.close(4001, "bye")
        assert await asyncio.wait_for(got, TIMEOUT) == {
            "type": "websocket.disconnect",
            "code": 4001,
            "reason": "bye",
        }


async def test_client_vanishing_gives_1006():
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.set_result(await receive())

    async with serve(app) as running:
        ws = await connect(running.url())
        ws.transport.abort()
        message = await asyncio.wait_for(got, TIMEOUT)
        assert message["type"] == "websocket.disconnect" and message["code"] == 1006


async def test_close_before_accept_is_403():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async with serve(app) as running:
        with pytest.raises(InvalidStatus) as info:
            await connect(running.url())
        assert info.value.response.status_code == 403


async def test_denial_response_extension_sends_the_apps_answer():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"x-why", b"token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"log in", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b" first"})

    async with serve(app) as running:
        with pytest.raises(InvalidStatus) as info:
            await connect(running.url())
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["x-why"] == "token"
        assert response.body == b"log in first"


@pytest.mark.parametrize(
    ("error", "status"),
    [(RouteNotFound("No route for '/x'", path="/x"), 403), (ValueError("broken"), 500)],
)
async def test_app_error_before_accept_rejects_the_handshake(error, status, caplog):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise error

    async with serve(app) as running:
        with pytest.raises(InvalidStatus) as info:
            await connect(running.url("/x"))
        assert info.value.response.status_code == status
    server_logs = [
        r for r in caplog.records if r.name == "djwire.server" and r.levelno >= logging.WARNING
    ]
    assert len(server_logs) == 1
    if status == 403:
        assert server_logs[0].levelno == logging.WARNING and server_logs[0].exc_info is None
    else:
        assert server_logs[0].exc_info is not None


async def test_app_error_after_accept_closes_1011():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("handler failed")

    async with serve(app) as running, connect(running.url()) as ws:
        await ws.send("trigger")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011


async def test_app_returning_without_accept_is_403_and_after_accept_closes_1000():
    async def refuses(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    async def leaves(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    async with serve(refuses) as running:
        with pytest.raises(InvalidStatus) as info:
            await connect(running.url())
        assert info.value.response.status_code == 403
    async with serve(leaves) as running, connect(running.url()) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_send_before_accept_names_the_expected_messages(caplog):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.send", "text": "too early"})

    async with serve(app) as running:
        with pytest.raises(InvalidStatus) as info:
            await connect(running.url())
        assert info.value.response.status_code == 500
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(
        str(e).startswith("Expected 'websocket.accept' or 'websocket.close', got 'websocket.send'")
        for e in errors
    )


async def test_send_after_the_client_left_raises_an_oserror():
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()  # disconnect
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except BaseException as exc:
            outcome.set_result(exc)
            raise
        outcome.set_result(None)

    async with serve(app) as running:
        async with connect(running.url()):
            pass
        error = await asyncio.wait_for(outcome, TIMEOUT)
        assert isinstance(error, ClientDisconnected) and isinstance(error, OSError)


async def test_permessage_deflate_end_to_end():
    async with serve(echo) as running, connect(running.url(), compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers.get("sec-websocket-extensions", "")
        await ws.send("compress me " * 100)
        assert await ws.recv() == "compress me " * 100


async def test_keepalive_pings_keep_a_quiet_client_connected():
    async with (
        serve(echo, ws_ping_interval=0.1, ws_ping_timeout=0.3) as running,
        connect(running.url(), ping_interval=None) as ws,
    ):
        await asyncio.sleep(0.8)  # several ping rounds, answered by the client
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "still here"


async def test_app_that_does_not_read_makes_the_server_stop_reading():
    accepted = asyncio.Event()
    release = asyncio.Event()
    received = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal received
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        await release.wait()
        while (await receive())["type"] == "websocket.receive":
            received += 1

    async with serve(app, ws_max_queue=8) as running, connect(running.url()) as ws:
        await accepted.wait()
        for _ in range(50):
            await ws.send("x" * 1000)
        await asyncio.sleep(0.2)
        (session,) = running.state.sessions
        # Reading stops at the limit; one read's worth of frames may be over it.
        assert session.read_paused and 8 <= len(session.queue) < 30
        release.set()
        await asyncio.sleep(0.3)
        assert received == 50


# -- the direct fan-out hook ------------------------------------------------------------


async def test_direct_socket_in_scope_shares_one_encoder_and_writes_frames():
    sockets: list[Any] = []
    states: list[tuple[bool, bool]] = []
    ready = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        direct = scope["extensions"][DIRECT_SOCKET]
        await receive()
        before = direct.write_frame(direct.frame_encoder("early", None))
        await send({"type": "websocket.accept"})
        after = direct.write_frame(direct.frame_encoder("direct hello", None))
        states.append((before, after))
        sockets.append(direct)
        if len(sockets) == 2:
            ready.set()
        await receive()

    async with (
        serve(app) as running,
        connect(running.url(), compression=None) as a,
        connect(running.url(), compression=None) as b,
    ):
        assert await a.recv() == "direct hello" and await b.recv() == "direct hello"
        await ready.wait()
        first, second = sockets
        assert isinstance(first, DirectSocket)
        assert first.frame_encoder is second.frame_encoder
        assert hash(first.frame_encoder) == hash(second.frame_encoder)
        assert states == [(False, True), (False, True)]
        frame = first.frame_encoder(None, b"\x01\x02")
        assert first.write_frame(frame) and second.write_frame(frame)
        assert await a.recv() == b"\x01\x02" and await b.recv() == b"\x01\x02"
        await a.close()
        await asyncio.sleep(0.1)
        assert first.write_frame(frame) is False


async def test_direct_socket_with_deflate_has_its_own_encoder():
    sockets: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        direct = scope["extensions"][DIRECT_SOCKET]
        sockets.append(direct)
        assert direct.write_frame(direct.frame_encoder("squeezed " * 50, None))
        await receive()

    async with (
        serve(app) as running,
        connect(running.url(), compression="deflate") as a,
        connect(running.url(), compression="deflate") as b,
    ):
        assert await a.recv() == "squeezed " * 50
        assert await b.recv() == "squeezed " * 50
        assert sockets[0].frame_encoder != sockets[1].frame_encoder


async def test_direct_write_to_a_client_that_stopped_reading_closes_it():
    writes: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        direct = scope["extensions"][DIRECT_SOCKET]
        frame = direct.frame_encoder("y" * 65000, None)
        for _ in range(2000):
            ok = direct.write_frame(frame)
            writes.append(ok)
            if not ok:
                break
            await asyncio.sleep(0)
        await receive()

    limit = 256 * 1024
    async with serve(app, write_buffer_limit=limit, write_high_water=64 * 1024) as running:
        _reader, writer = await raw_websocket(running.port)
        # This client never reads again: kernel buffers fill, then ours.
        for _ in range(250):
            if writes and not writes[-1]:
                break
            await asyncio.sleep(0.02)
        assert writes and writes[-1] is False
        assert len(writes) < 2000
        assert not running.state.sessions  # the slow client was dropped
        writer.close()


async def test_idle_sockets_drop_their_parser_and_still_work():
    async with (
        serve(echo, ws_parser_idle_release=0.05) as running,
        connect(running.url(), compression=None) as plain,
        connect(running.url(), compression="deflate") as squeezed,
    ):
        await asyncio.sleep(0.3)
        assert all(session.proto._ws is None for session in running.state.sessions)
        await plain.send("hello again")
        assert await plain.recv() == "hello again"
        await squeezed.send("compressed " * 50)
        assert await squeezed.recv() == "compressed " * 50


async def test_direct_writes_to_a_client_that_catches_up_do_not_close_it():
    paused = asyncio.Event()
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        direct = scope["extensions"][DIRECT_SOCKET]
        frame = direct.frame_encoder(None, b"b" * 1_000_000)
        while not direct.write_paused:  # fill the kernel buffers, then ours a little
            assert direct.write_frame(frame)
            await asyncio.sleep(0)
        paused.set()
        got.set_result(await receive())

    async with serve(app, send_timeout=0.3, write_buffer_limit=64 * 1024 * 1024) as running:
        reader, writer = await raw_websocket(running.port)
        await asyncio.wait_for(paused.wait(), TIMEOUT)
        # The client catches up, then stays quiet for longer than send_timeout.
        async with asyncio.timeout(TIMEOUT):
            while (session := next(iter(running.state.sessions))).write_paused:
                await reader.read(1 << 20)
            for _ in range(20):
                await asyncio.sleep(0.05)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(1 << 20), 0.01)
        assert running.state.sessions == {session}
        writer.write(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"ok")
        assert await asyncio.wait_for(got, TIMEOUT) == {"type": "websocket.receive", "text": "ok"}
        writer.close()


async def test_held_frames_leave_in_order_before_anything_written_after_them():
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        direct = scope["extensions"][DIRECT_SOCKET]
        await receive()
        await send({"type": "websocket.accept"})
        direct.hold_frames()
        await send({"type": "websocket.send", "text": "one"})
        await send({"type": "websocket.send", "text": "two"})
        # A frame written directly, and a close, go after the held ones.
        assert direct.write_frame(direct.frame_encoder("three", None))
        direct.hold_frames()
        await send({"type": "websocket.send", "text": "four"})
        await send({"type": "websocket.close", "code": 4000})

    async with serve(app) as running, connect(running.url(), compression=None) as ws:
        assert [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(4)] == [
            "one",
            "two",
            "three",
            "four",
        ]
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4000


async def test_held_frames_go_out_on_the_next_turn_or_past_the_high_water_mark():
    holding: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        direct = scope["extensions"][DIRECT_SOCKET]
        await receive()
        await send({"type": "websocket.accept"})
        direct.hold_frames()
        await send({"type": "websocket.send", "text": "a" * 600})
        holding.append(direct.held is not None)
        await send({"type": "websocket.send", "text": "b" * 600})  # past 1 KiB: written
        holding.append(direct.held is not None)
        direct.hold_frames()
        await send({"type": "websocket.send", "text": "c"})
        # Nothing else is sent: the held frame leaves when the loop turns, and the
        # client answers only once it has it.
        assert (await receive())["text"] == "got c"

    options = {"write_high_water": 1024, "write_low_water": 512}
    async with (
        serve(app, **options) as running,
        connect(running.url(), compression=None) as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "a" * 600
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "b" * 600
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "c"
        await ws.send("got c")
    assert holding == [True, False]
