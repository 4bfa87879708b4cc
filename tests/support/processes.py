"""Real processes for tests: start one, wait until it is ready, stop or kill it.

Each runs in its own process group (so children go with it) with output to a
log file, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

#: Longest a process may take to become ready (Django set-up included).
START_TIMEOUT = 30.0
#: Longest a process may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 20.0


class Process:
    """``command`` in a subprocess; ``ready()`` tells when it serves."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        ready: Callable[[Process], bool],
        cwd: Path = ROOT,
    ) -> None:
        self.command = list(command)
        self.env = env
        self.log_path = log_path
        self.is_ready = ready
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, wait: bool = True) -> Process:
        assert self.popen is None, "already running"
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.command[2:5]} exited early ({self.popen.returncode}):\n"
                    f"{self.log_tail()}"
                )
            if self.is_ready(self):
                return
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"{self.command} was not ready in {timeout}s:\n{self.log_tail()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait; SIGKILL if it takes longer than ``timeout``."""
        return self._stop(signal.SIGTERM, timeout)

    def kill(self) -> int:
        return self._stop(signal.SIGKILL, STOP_TIMEOUT)

    def _stop(self, signum: int, timeout: float) -> int:
        popen, self.popen = self.popen, None
        if popen is None:
            return 0
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signum)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=STOP_TIMEOUT)
        return popen.returncode


def log_says(text: str) -> Callable[[Process], bool]:
    """Ready once the process's log contains ``text``."""
    return lambda process: text in process.log()


def answers_http(url: str) -> Callable[[Process], bool]:
    """Ready once ``url`` answers at all (any status)."""

    def check(process: Process) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    return check
