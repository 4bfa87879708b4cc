"""Several worker processes on one listening socket, each replaced if it dies.

The supervisor binds the socket once and passes it to every worker as an inherited
file descriptor (``--fd``), so the kernel spreads new connections over the workers
and a restarted worker serves the same port without a gap. SIGTERM/SIGINT are
passed on to the workers, which shut down gracefully; stragglers are killed after
``graceful_shutdown_timeout`` plus a margin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from djwire.server.config import Config
from djwire.server.server import bind_socket, describe

logger = logging.getLogger("djwire.server")

CONFIG_ENV = "DJWIRE_WORKER_CONFIG"
#: A worker that dies sooner than this after starting counts as crashing: the
#: next restart waits (doubling up to RESTART_MAX_DELAY) instead of spinning.
QUICK_DEATH = 2.0
RESTART_MAX_DELAY = 10.0
#: Extra seconds workers get, past their own graceful timeout, before SIGKILL.
KILL_MARGIN = 5.0


def worker_config_json(config: Config, fd: int) -> str:
    data = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in ("extra",)
    }
    data.update(fd=fd, workers=1, uds=None)
    return json.dumps(data)


def config_from_json(text: str) -> Config:
    data: dict[str, Any] = json.loads(text)
    data["forwarded_allow_ips"] = tuple(data.get("forwarded_allow_ips", ()))
    if data.get("gc_thresholds") is not None:
        data["gc_thresholds"] = tuple(data["gc_thresholds"])
    return Config(**data)


@dataclasses.dataclass
class Worker:
    process: subprocess.Popen[bytes]
    started: float
    restart_delay: float = 0.0


class Supervisor:
    """Start ``config.workers`` processes and keep that many alive until stopped."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers: list[Worker | None] = []
        self.stopping = False
        self._delays: list[float] = []
        self._due: list[float] = []

    def run(self) -> int:
        config = self.config
        try:
            sock = bind_socket(config)
        except OSError as exc:
            logger.error("Could not serve: %s", exc)
            return 1
        sock.set_inheritable(True)
        logger.info(
            "djwire supervisor (pid %d) serving on %s with %d workers",
            os.getpid(),
            describe(sock),
            config.workers,
        )
        payload = worker_config_json(config, sock.fileno())
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.workers = [self._spawn(payload, sock.fileno()) for _ in range(config.workers)]
            self._delays = [0.0] * config.workers
            self._due = [0.0] * config.workers
            while not self.stopping:
                self._reap(payload, sock.fileno())
                time.sleep(0.1)
            return self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
            if config.uds is not None:
                with contextlib.suppress(OSError):
                    os.unlink(config.uds)

    def _spawn(self, payload: str, fd: int) -> Worker:
        env = dict(os.environ, **{CONFIG_ENV: payload})
        process = subprocess.Popen(
            [sys.executable, "-m", "djwire.server.worker_process"],
            env=env,
            pass_fds=(fd,),
        )
        logger.info("Started worker pid %d", process.pid)
        return Worker(process, time.monotonic())

    def _reap(self, payload: str, fd: int) -> None:
        now = time.monotonic()
        for index, worker in enumerate(self.workers):
            if worker is None:
                if now >= self._due[index] and not self.stopping:
                    self.workers[index] = self._spawn(payload, fd)
                continue
            code = worker.process.poll()
            if code is None:
                if now - worker.started > QUICK_DEATH * 5:
                    self._delays[index] = 0.0
                continue
            if self.stopping:
                return
            if now - worker.started < QUICK_DEATH:
                delay = min(RESTART_MAX_DELAY, max(0.5, self._delays[index] * 2))
            else:
                delay = 0.0
            self._delays[index] = delay
            logger.warning(
                "Worker pid %d exited with %s; restarting%s",
                worker.process.pid,
                code,
                f" in {delay:.1f}s" if delay else "",
            )
            self.workers[index] = None
            self._due[index] = now + delay

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping and signum == signal.SIGINT:
            # Second Ctrl-C: stop waiting for graceful shutdowns.
            for worker in self.workers:
                if worker is not None and worker.process.poll() is None:
                    worker.process.kill()
        self.stopping = True

    def _stop_all(self) -> int:
        live = [w for w in self.workers if w is not None and w.process.poll() is None]
        for worker in live:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.graceful_shutdown_timeout + KILL_MARGIN
        for worker in live:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                worker.process.wait(remaining)
            except subprocess.TimeoutExpired:
                logger.warning("Worker pid %d did not stop; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.wait()
        logger.info("djwire supervisor stopped")
        return 0
