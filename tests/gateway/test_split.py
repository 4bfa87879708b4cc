"""Gateway mode for real: gateways and workers in separate processes over a real Redis.

Two gateways (``djwire serve --gateway``) hold the sockets; three workers
(``manage.py runworker --connections``) run the consumers. Workers are restarted
and killed while 50 clients chat; no socket may close and no message may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.processes import PYTHON, ROOT, Process, answers_http, log_says
from tests.support.redis_servers import RedisServer, free_port

TIMEOUT = 20
#: Bound on waits for a whole exchange to settle (the machine may be loaded).
SETTLE = 60
SETTINGS = "tests.gateway.project.settings"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


class Deployment:
    """Gateways and workers of one project, sharing one Redis."""

    def __init__(self, redis: RedisServer, logs: Path, settings: str = SETTINGS) -> None:
        self.logs = logs
        self.env = {
            **__import__("os").environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "DJWIRE_TEST_REDIS": redis.url,
            "DJWIRE_TEST_DB": str(logs / "db.sqlite3"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("CI_PYTEST_XDIST", None)
        self.gateways: list[tuple[Process, int]] = []
        self.workers: list[Process] = []
        self._count = 0

    def _log(self, name: str) -> Path:
        self._count += 1
        return self.logs / f"{self._count:02d}-{name}.log"

    def gateway(self) -> int:
        port = free_port()
        command = [PYTHON, "-m", "djwire", "serve", "--gateway"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        url = f"http://127.0.0.1:{port}/hello/"
        process = Process(command, self.env, self._log("gateway"), answers_http(url)).start()
        self.gateways.append((process, port))
        return port

    def worker(self, *args: str, wait: bool = True) -> Process:
        command = [PYTHON, "-m", "django", "runworker", "--noreload", *args]
        ready = log_says("taking connections") if "--connections" in args else log_says("Running")
        process = Process(command, self.env, self._log("worker"), ready).start(wait=wait)
        self.workers.append(process)
        if wait and "--connections" in args:
            self.wait_until_gateways_see_a_worker()
        return process

    def wait_until_gateways_see_a_worker(self) -> None:
        """A worker is ready once its heartbeat reached the gateways: before that a
        gateway that has been up a while answers 503 "no worker is running"."""
        for _, port in self.gateways:
            deadline = time.monotonic() + SETTLE
            while time.monotonic() < deadline:
                if _fetch(f"http://127.0.0.1:{port}/hello/")[0] != 503:
                    break
                time.sleep(0.05)

    def stop(self) -> None:
        for process in self.workers:
            process.terminate()
        for process, _ in self.gateways:
            process.terminate()

    def logs_text(self) -> str:
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
def deployment(redis: RedisServer, tmp_path: Path) -> Iterator[Deployment]:
    redis.command("FLUSHALL")
    deployed = Deployment(redis, tmp_path)
    try:
        yield deployed
    finally:
        deployed.stop()


class ChatClient:
    def __init__(self, name: str, socket: ClientConnection, classic: bool = False) -> None:
        self.name = name
        self.socket = socket
        self.classic = classic
        self.received: list[dict[str, Any]] = []
        self.closed: str | None = None

    async def say(self, text: str) -> None:
        await self.socket.send(text if self.classic else json.dumps({"text": text}))

    async def read(self) -> None:
        try:
            async for frame in self.socket:
                self.received.append({"text": frame} if self.classic else json.loads(frame))
        except Exception as exc:  # pragma: no cover - reported by the test
            self.closed = repr(exc)
        else:
            self.closed = f"closed {self.socket.close_code}"


async def chat_session(
    ports: list[int],
    clients: int,
    rounds: int,
    during: Any,
    pause: float = 0.25,
    classic: bool = False,
) -> tuple[list[ChatClient], int]:
    """``clients`` clients over ``ports`` chat in one room; each sends one message per
    round while ``during()`` runs (in a thread); returns the clients and messages sent."""
    chatters = []
    for n in range(clients):
        port = ports[n % len(ports)]
        path = "/" if classic else f"/chat/lobby/?c{n}"
        socket = await connect(
            f"ws://127.0.0.1:{port}{path}", open_timeout=TIMEOUT, ping_interval=None
        )
        chatters.append(ChatClient(f"c{n}", socket, classic))
    readers = [asyncio.ensure_future(chatter.read()) for chatter in chatters]
    # One message each, so every member is certainly in the group before the session.
    sent = 0
    for chatter in chatters:
        await chatter.say(f"{chatter.name}-hello")
        sent += 1
    await _until(lambda: all(len(c.received) >= sent for c in chatters), SETTLE)
    background = asyncio.ensure_future(asyncio.to_thread(during))
    for round_number in range(rounds):
        for chatter in chatters:
            await chatter.say(f"{chatter.name}-{round_number}")
            sent += 1
        await asyncio.sleep(pause)
    await background
    await _until(lambda: all(len(c.received) >= sent for c in chatters), SETTLE)
    for chatter in chatters:
        await chatter.socket.close()
    await asyncio.gather(*readers, return_exceptions=True)
    return chatters, sent


async def _until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("api", ["channels4", "classic"])
def test_50_clients_chat_through_2_gateways_while_every_worker_restarts(
    redis: RedisServer, tmp_path: Path, api: str
) -> None:
    redis.command("FLUSHALL")
    settings = SETTINGS if api == "channels4" else SETTINGS + "_classic"
    deployment = Deployment(redis, tmp_path, settings)
    try:
        check_chat_across_restarts(deployment, classic=api == "classic")
    finally:
        deployment.stop()


def check_chat_across_restarts(deployment: Deployment, classic: bool) -> None:
    ports = [deployment.gateway(), deployment.gateway()]
    workers = [deployment.worker("--connections") for _ in range(3)]

    def rolling_restart() -> None:
        for old in workers:
            deployment.worker("--connections")
            assert old.terminate() == 0, old.log_tail()

    chatters, sent = asyncio.run(
        chat_session(ports, 50, rounds=12, during=rolling_restart, classic=classic)
    )
    problems = []
    for chatter in chatters:
        if chatter.closed not in (None, "closed 1000"):
            problems.append(f"{chatter.name}: {chatter.closed}")
        texts = sorted(message["text"] for message in chatter.received)
        if len(texts) != sent or len(set(texts)) != sent:
            problems.append(
                f"{chatter.name} got {len(texts)} ({len(set(texts))} distinct) of {sent}"
            )
            if chatter.name == "c0":
                everything = {f"c{n}-{r}" for n in range(len(chatters)) for r in range(12)}
                everything |= {f"c{n}-hello" for n in range(len(chatters))}
                missing = sorted(everything - set(texts))
                problems.append(f"missing: {missing[:80]}")
        seen = [message.get("seen") for message in chatter.received]
        if not classic and seen != list(range(1, len(seen) + 1)):
            problems.append(f"{chatter.name}: its consumer's counter went {seen[:5]}...")
    assert not problems, "\n".join(problems[:10]) + "\n" + deployment.logs_text()
    # The connections really moved: each stopped worker handed some back.
    gateway_logs = "".join(process.log() for process, _ in deployment.gateways)
    assert gateway_logs.count("back; moving it") >= 3, deployment.logs_text()
    print(
        f"{sent} messages x {len(chatters)} clients; {gateway_logs.count('back; moving it')} moves"
    )


def test_a_killed_worker_leaves_every_socket_open_and_the_chat_goes_on(
    deployment: Deployment,
) -> None:
    port = deployment.gateway()
    victim = deployment.worker("--connections")
    deployment.worker("--connections")

    async def session() -> tuple[list[ChatClient], float]:
        chatters = []
        for n in range(10):
            socket = await connect(f"ws://127.0.0.1:{port}/chat/kill/?k{n}", open_timeout=TIMEOUT)
            chatters.append(ChatClient(f"k{n}", socket))
        readers = [asyncio.ensure_future(chatter.read()) for chatter in chatters]
        for chatter in chatters:
            await chatter.socket.send(json.dumps({"text": f"{chatter.name}-before"}))
        await _until(lambda: all(len(c.received) >= 10 for c in chatters), SETTLE)
        victim.kill()
        killed = time.monotonic()
        for chatter in chatters:
            await chatter.socket.send(json.dumps({"text": f"{chatter.name}-after"}))
        await _until(lambda: all(len(c.received) >= 20 for c in chatters), SETTLE)
        moved_in = time.monotonic() - killed
        for chatter in chatters:
            await chatter.socket.close()
        await asyncio.gather(*readers, return_exceptions=True)
        return chatters, moved_in

    chatters, moved_in = asyncio.run(session())
    for chatter in chatters:
        assert chatter.closed == "closed 1000", deployment.logs_text()
        texts = {message["text"] for message in chatter.received}
        expected = {f"k{n}-{when}" for n in range(10) for when in ("before", "after")}
        assert expected <= texts, (chatter.name, sorted(expected - texts), deployment.logs_text())
    print(f"chat resumed {moved_in:.2f}s after the SIGKILL")


def _fetch(url: str, data: bytes | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    request = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.getheaders(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.items(), error.read()


def test_a_django_view_through_a_gateway_answers_as_in_process(
    deployment: Deployment,
) -> None:
    port = deployment.gateway()
    deployment.worker("--connections")
    in_process_port = free_port()
    command = [PYTHON, "-m", "djwire", "serve", "tests.gateway.project.asgi:application"]
    command += ["--host", "127.0.0.1", "--port", str(in_process_port), "--no-access-log"]
    url = f"http://127.0.0.1:{in_process_port}/hello/"
    direct = Process(command, deployment.env, deployment.logs / "direct.log", answers_http(url))
    direct.start()
    try:
        for path, body in (("/hello/?q=1", None), ("/reverse/", b"abc" * 10000), ("/nope/", None)):
            via_gateway = _fetch(f"http://127.0.0.1:{port}{path}", body)
            in_process = _fetch(f"http://127.0.0.1:{in_process_port}{path}", body)
            assert via_gateway[0] == in_process[0]
            assert via_gateway[2] == in_process[2]
            skip = {"date"}
            assert sorted((k.lower(), v) for k, v in via_gateway[1] if k.lower() not in skip) == (
                sorted((k.lower(), v) for k, v in in_process[1] if k.lower() not in skip)
            )
    finally:
        direct.terminate()


def test_without_workers_the_gateway_answers_503(deployment: Deployment) -> None:
    port = deployment.gateway()
    time.sleep(2.5)  # past the start-up grace
    status, _, body = _fetch(f"http://127.0.0.1:{port}/hello/")
    assert status == 503
    assert b"runworker --connections" in body


# -- background tasks on a reliable channel -------------------------------------------


def _send_tasks(deployment: Deployment, *messages: dict[str, Any]) -> None:
    """Send from another process, as a view or Model.save() would, with the classic
    one-line ``Channel(...).send(...)``."""
    code = (
        "import json, sys, django\n"
        "django.setup()\n"
        "from djwire import Channel\n"
        "for message in json.loads(sys.argv[1]):\n"
        "    Channel('tasks').send(message)\n"
    )
    subprocess.run(
        [PYTHON, "-c", code, json.dumps(list(messages))],
        env=deployment.env,
        check=True,
        timeout=TIMEOUT,
        capture_output=True,
    )


def _wait_for_file(path: Path, seconds: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_a_reliable_task_survives_the_sigkill_of_its_worker(
    deployment: Deployment, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    first = deployment.worker("tasks")
    _send_tasks(deployment, {"type": "task.run", "id": "t1", "dir": str(work), "hang_first": 1})
    assert _wait_for_file(work / "hung"), deployment.logs_text()
    assert (work / "hung").read_text() == str(first.pid), deployment.logs_text()
    second = deployment.worker("tasks")
    first_pid = first.pid
    first.kill()  # mid-task: the message was leased, never acknowledged
    assert _wait_for_file(work / "t1.done"), deployment.logs_text()
    done_by = (work / "t1.done").read_text()
    assert done_by == str(second.pid), (done_by, first_pid, second.pid, deployment.logs_text())


def test_a_task_that_keeps_failing_goes_to_the_dead_letters_and_can_be_replayed(
    deployment: Deployment, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    deployment.worker("tasks")
    _send_tasks(deployment, {"type": "task.run", "id": "bad", "dir": str(work), "fail": 1})

    def manage(*args: str) -> str:
        result = subprocess.run(
            [PYTHON, "-m", "django", *args],
            env=deployment.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    deadline = time.monotonic() + TIMEOUT
    letters: list[dict[str, Any]] = []
    while not letters and time.monotonic() < deadline:
        letters = [
            json.loads(line) for line in manage("deadletters", "tasks", "--json").splitlines()
        ]
        time.sleep(0.2)
    assert len(letters) == 1, deployment.logs_text()
    (letter,) = letters
    assert letter["attempts"] == 3  # DJWIRE_RELIABLE_CHANNELS["tasks"]["max_attempts"]
    assert "this task always fails" in letter["reason"]
    assert letter["message"]["id"] == "bad"
    assert len(list(work.glob("bad.attempt*"))) == 1  # one file per worker pid: rewritten
    assert "Replayed 1 dead letter(s)" in manage("deadletters", "tasks", "--replay")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        letters = [
            json.loads(line) for line in manage("deadletters", "tasks", "--json").splitlines()
        ]
        if letters:
            break
        time.sleep(0.2)
    assert len(letters) == 1  # replayed, failed three more times, dead again
    assert "Discarded 1" in manage("deadletters", "tasks", "--discard")
    assert "No dead letters" in manage("deadletters", "tasks")


# -- development: runserver --gateway, and a worker that reloads on code changes ------

RELOAD_CONSUMER = """
from djwire.generic.websocket import AsyncWebsocketConsumer

VERSION = {version!r}


class Echo(AsyncWebsocketConsumer):
    async def connect(self):
        self.count = 0
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        self.count += 1
        await self.send(text_data=f"{{VERSION}} {{self.count}} {{text_data}}")
"""

RELOAD_ASGI = """
from django.core.asgi import get_asgi_application
django_app = get_asgi_application()
from django.urls import path
from djwire.routing import ProtocolTypeRouter, URLRouter
from reloadproj.consumers import Echo
application = ProtocolTypeRouter(
    {"http": django_app, "websocket": URLRouter([path("echo/", Echo.as_asgi())])}
)
"""

RELOAD_SETTINGS = """
from tests.gateway.project.settings import *  # noqa
ASGI_APPLICATION = "reloadproj.asgi.application"
ROOT_URLCONF = "tests.gateway.project.urls"
DEBUG = True
STATIC_URL = "/static/"
"""


def test_runserver_gateway_keeps_the_browser_connected_while_the_worker_reloads(
    redis: RedisServer, tmp_path: Path
) -> None:
    redis.command("FLUSHALL")
    package = tmp_path / "reloadproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "asgi.py").write_text(RELOAD_ASGI)
    (package / "settings.py").write_text(RELOAD_SETTINGS)
    consumers = package / "consumers.py"
    consumers.write_text(RELOAD_CONSUMER.format(version="v1"))
    logs = tmp_path / "logs"
    logs.mkdir()
    deployment = Deployment(redis, logs, "reloadproj.settings")
    deployment.env["PYTHONPATH"] = f"{tmp_path}:{ROOT}"
    port = free_port()
    runserver = Process(
        [PYTHON, "-m", "django", "runserver", "--gateway", f"127.0.0.1:{port}"],
        deployment.env,
        logs / "runserver.log",
        answers_http(f"http://127.0.0.1:{port}/hello/"),
    ).start()
    deployment.gateways.append((runserver, port))
    # --reload is the default with DEBUG on; say it anyway.
    worker = Process(
        [PYTHON, "-m", "django", "runworker", "--connections", "--reload"],
        deployment.env,
        logs / "worker.log",
        log_says("taking connections"),
    ).start()
    deployment.workers.append(worker)
    deployment.wait_until_gateways_see_a_worker()

    async def session() -> list[str]:
        replies = []
        async with connect(f"ws://127.0.0.1:{port}/echo/", open_timeout=TIMEOUT) as ws:
            await ws.send("a")
            replies.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
            await asyncio.to_thread(time.sleep, 1.1)  # a new mtime second for the reloader
            consumers.write_text(RELOAD_CONSUMER.format(version="v2"))
            deadline = time.monotonic() + TIMEOUT * 2
            while time.monotonic() < deadline:
                await ws.send("b")
                reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
                replies.append(reply)
                if reply.startswith("v2"):
                    break
                await asyncio.sleep(0.3)
            assert ws.close_code is None
        return replies

    try:
        replies = asyncio.run(session())
    finally:
        deployment.stop()
    assert replies[0] == "v1 1 a", deployment.logs_text()
    assert replies[-1].startswith("v2"), (replies, deployment.logs_text())
    # The same consumer state went on counting across the reload.
    counts = [int(reply.split()[1]) for reply in replies]
    assert counts == list(range(1, len(counts) + 1)), replies
    assert "stopping the worker gracefully to reload" in worker.log()


def test_a_worker_idles_past_the_socket_timeouts_and_rides_out_a_redis_restart(
    tmp_path: Path,
) -> None:
    """Channels' runworker on redis-py 8 dies after ~5 s without messages; djwire's
    keeps waiting, and picks up again after its Redis restarted."""
    private = RedisServer().start()
    try:
        deployment = Deployment(private, tmp_path)
        work = tmp_path / "work"
        work.mkdir()
        worker = deployment.worker("tasks")
        try:
            time.sleep(6)  # longer than the layer's socket_timeout (5 s)
            _send_tasks(deployment, {"type": "task.run", "id": "idle", "dir": str(work)})
            assert _wait_for_file(work / "idle.done"), deployment.logs_text()
            private.restart(down_for=1.0)
            _send_tasks(deployment, {"type": "task.run", "id": "after", "dir": str(work)})
            assert _wait_for_file(work / "after.done"), deployment.logs_text()
            assert worker.popen is not None and worker.popen.poll() is None
        finally:
            deployment.stop()
    finally:
        private.cleanup()


def test_a_request_whose_worker_dies_gets_502_and_a_graceful_stop_finishes_it(
    deployment: Deployment,
) -> None:
    import concurrent.futures

    port = deployment.gateway()
    victim = deployment.worker("--connections")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pending = pool.submit(_fetch, f"http://127.0.0.1:{port}/slow/?s=30")
        time.sleep(1.0)  # the worker is in the view
        victim.kill()
        status, _, body = pending.result(timeout=TIMEOUT)
        assert status == 502, body
        # A worker stopped gracefully finishes the request in hand first.
        stopping = deployment.worker("--connections")
        pending = pool.submit(_fetch, f"http://127.0.0.1:{port}/slow/?s=1.5")
        time.sleep(0.5)
        assert stopping.terminate() == 0
        status, _, body = pending.result(timeout=TIMEOUT)
        assert (status, body) == (200, b"slept")


@pytest.mark.parametrize("resend_after", ["0.5", "3600"])
def test_events_a_full_worker_channel_dropped_are_sent_again_in_order(
    redis: RedisServer, tmp_path: Path, resend_after: str
) -> None:
    """Fault injection: the worker's channel holds 2 messages, so most of a burst of
    events is dropped on arrival (and counted); the gateway sends them again."""
    redis.command("FLUSHALL")
    deployment = Deployment(redis, tmp_path)
    deployment.env["DJWIRE_TEST_WORKER_CAPACITY"] = "2"
    deployment.env["DJWIRE_TEST_RESEND_AFTER"] = resend_after
    try:
        port = deployment.gateway()
        deployment.worker("--connections")

        async def burst() -> list[int]:
            url = f"ws://127.0.0.1:{port}/chat/burst/?b"
            async with connect(url, open_timeout=TIMEOUT) as ws:
                await ws.send(json.dumps({"text": "m0", "block": 0.5}))
                for n in range(1, 30):
                    await ws.send(json.dumps({"text": f"m{n}"}))
                seen = []
                with contextlib.suppress(TimeoutError):
                    for _ in range(30):
                        seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["seen"])
                return seen

        seen = asyncio.run(burst())
    finally:
        deployment.stop()
    if resend_after == "3600":  # without resending the burst stalls: the test can fail
        assert seen != list(range(1, 31))
    else:
        assert seen == list(range(1, 31)), deployment.logs_text()


def test_gateways_and_workers_on_one_machine_need_no_redis_with_the_ipc_layer(
    redis: RedisServer, tmp_path: Path
) -> None:
    """The same rolling-restart chat, with the IPC layer as the only link between the
    processes; DJWIRE_TEST_REDIS names a port where nothing listens."""
    deployment = Deployment(redis, tmp_path, SETTINGS + "_ipc")
    deployment.env["DJWIRE_TEST_REDIS"] = f"redis://127.0.0.1:{free_port()}/0"
    deployment.env["DJWIRE_TEST_IPC_PATH"] = str(tmp_path / "ipc")
    try:
        check_chat_across_restarts(deployment, classic=False)
        port = deployment.gateways[0][1]
        status, _, body = _fetch(f"http://127.0.0.1:{port}/reverse/", b"abc")
        assert (status, body) == (200, b"cba"), deployment.logs_text()
    finally:
        deployment.stop()
