"""Run the demo site (examples/) in a subprocess on a free loopback port.

The tests talk to it as a user would: over real sockets, with a real WebSocket
client or a real browser. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PYTHON = sys.executable

#: Longest a server may take to answer its first request (Django set-up included).
START_TIMEOUT = 30.0
#: Longest a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_env(db_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # pytest-django exported the test suite's settings; the demo has its own.
    env["DJANGO_SETTINGS_MODULE"] = "demosite.settings"
    env["DJWIRE_DEMO_DB"] = str(db_path)
    # The IPC layer's space next to the database: not the one a demo run by hand uses.
    env["DJWIRE_DEMO_IPC_PATH"] = str(db_path.parent / "ipc")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DJWIRE_DEMO_REDIS", None)
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run ``manage.py`` of the demo; return its output, raise with it on failure."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


class DemoServer:
    """The demo on 127.0.0.1:<port>, served by djwire in a subprocess.

    ``how="runserver"``: ``manage.py runserver --noreload`` (the README's demo
    command); ``how="serve"``: ``python -m djwire serve demosite.asgi:application``,
    with ``workers`` processes.
    """

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        port: int | None = None,
        how: str = "runserver",
        workers: int = 1,
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.port = port or free_port()
        self.how = how
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.how == "runserver":
            return [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"]
        return [
            *(PYTHON, "-m", "djwire", "serve", "demosite.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)),
        ]

    def start(self) -> None:
        assert self.process is None, "already running"
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command(),
                cwd=EXAMPLES,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        finally:
            log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"The demo server exited early:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(
            f"The demo server did not answer in {START_TIMEOUT}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def get(
        self, path: str, opener: urllib.request.OpenerDirector | None = None
    ) -> tuple[int, str]:
        """(status, body) of a GET; HTTP errors are returned, not raised."""
        open_url = (opener or urllib.request.build_opener()).open
        try:
            with open_url(self.url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
