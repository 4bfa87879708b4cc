"""Fixtures for the IPC layer's tests: private shared spaces, and real peer processes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from djwire.layers.ipc import IPCChannelLayer

ROOT = Path(__file__).resolve().parents[3]
#: Longest a peer may take to start (import Django and djwire) or to answer.
START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0

MakeLayer = Callable[..., IPCChannelLayer]


async def eventually(condition: Callable[[], Any], seconds: float, step: float = 0.01) -> Any:
    """Wait (bounded) until ``condition()`` is true; returns its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(step)
    return condition()


@pytest.fixture
def space() -> Iterator[Path]:
    """A private shared space (short path: Unix socket paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="djw-ipc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def make_layer(space: Path) -> AsyncIterator[MakeLayer]:
    """Layers in this process (each one stands for a process), flushed and closed after."""
    made: list[IPCChannelLayer] = []

    def make(**config: Any) -> IPCChannelLayer:
        config.setdefault("path", space)
        layer = IPCChannelLayer(**config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        with contextlib.suppress(Exception):
            await layer.flush()
        await layer.close()


class PeerProcess:
    """A real process running ``tests.layers.ipc.peer`` on a space."""

    _ids = itertools.count(1)

    def __init__(self, process: asyncio.subprocess.Process, token: str, pid: int) -> None:
        self.process = process
        self.token = token
        self.pid = pid
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls, space: Path | None, env: dict[str, str] | None = None, **options: Any
    ) -> PeerProcess:
        """A peer on ``space`` (None: the default space of its settings module)."""
        env = dict(
            os.environ,
            **{"PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})},
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.layers.ipc.peer",
            str(space) if space is not None else "-",
            json.dumps(options),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
            limit=16 << 20,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        hello = json.loads(line)
        return cls(process, hello["token"], hello["pid"])

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            reply = json.loads(line)
            future = self._replies.pop(reply["id"], None)
            if future is None:
                await self.lines.put(reply)
            elif not future.done():
                future.set_result(reply)
        for future in self._replies.values():  # it ended: nobody will answer these
            if not future.done():
                future.set_result({"error": "the peer process ended"})
        self._replies.clear()

    def request(self, op: str, **fields: Any) -> asyncio.Future[Any]:
        """Send a request; the future resolves to its result (or raises its error)."""
        number = next(self._ids)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[number] = reply
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": number, "op": op, **fields}).encode() + b"\n")

        async def result() -> Any:
            answer = await asyncio.wait_for(reply, CALL_TIMEOUT)
            if "error" in answer:
                raise PeerError(answer["error"])
            return answer.get("result")

        return asyncio.ensure_future(result())

    async def call(self, op: str, **fields: Any) -> Any:
        return await self.request(op, **fields)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    async def wait(self, seconds: float = 10.0) -> int:
        return await asyncio.wait_for(self.process.wait(), seconds)

    async def finish(self) -> None:
        """Close stdin (the peer ends without closing its layer) and wait; kill if stuck."""
        if self.process.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.kill()
                await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class PeerError(Exception):
    """An operation failed in a peer process (its exception's name and text)."""


@pytest.fixture
async def peers(space: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start peer processes on the test's space; all are ended after the test."""
    started: list[PeerProcess] = []

    async def start(count: int = 1, **options: Any) -> list[PeerProcess]:
        new = await asyncio.gather(*(PeerProcess.start(space, **options) for _ in range(count)))
        started.extend(new)
        return list(new)

    yield start
    for peer in started:
        with contextlib.suppress(ProcessLookupError):
            if peer.process.returncode is None:
                peer.process.send_signal(signal.SIGCONT)  # a test may have stopped it
        await peer.finish()
