"""Several worker processes on one listening socket, each replaced if it dies.

The supervisor binds the socket once (or takes the one inherited with ``--fd``)
and passes it to every worker as an inherited file descriptor, so the kernel
spreads new connections over the workers and a restarted worker serves the same
port without a gap. SIGTERM/SIGINT are passed on to the workers, which shut down
gracefully; stragglers are killed after ``graceful_shutdown_timeout`` plus a margin.

Each worker reports over a pipe when it is ready (listening, lifespan startup
done). A worker that exits with an error before that cannot serve this
application as configured (import error, lifespan failure, invalid settings):
restarting it would fail again, so the supervisor stops every worker and exits
with that worker's code, as gunicorn does when a worker fails to boot. A worker
that dies after it was ready, or is killed by a signal, is replaced.
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
from collections.abc import Collection
from types import FrameType
from typing import Any

from djwire.extensions import SERVER_PROCESSES
from djwire.server.config import Config
from djwire.server.options import convert, field_names
from djwire.server.server import bind_socket, describe

logger = logging.getLogger("djwire.server")

CONFIG_ENV = "DJWIRE_WORKER_CONFIG"
#: The write end of the pipe on which a worker says it is ready (one byte).
READY_FD_ENV = "DJWIRE_WORKER_READY_FD"
#: Which worker this is, from 0: the first one runs the startup checks, once for all.
INDEX_ENV = "DJWIRE_WORKER_INDEX"
#: A worker that dies sooner than this after starting counts as crashing: the
#: next restart waits (doubling up to RESTART_MAX_DELAY) instead of spinning.
QUICK_DEATH = 2.0
RESTART_MAX_DELAY = 10.0
#: Extra seconds workers get, past their own graceful timeout, before SIGKILL.
KILL_MARGIN = 5.0


def worker_payload(config: Config, fd: int, explicit: Collection[str] | None) -> str:
    """What a worker needs, as JSON: the config (serving ``fd``) and the explicit names."""
    fields = {name: getattr(config, name) for name in field_names(exclude=())}
    fields.update(fd=fd, workers=1, uds=None)
    return json.dumps(
        {"config": fields, "explicit": None if explicit is None else sorted(explicit)}
    )


def read_payload(text: str) -> tuple[Config, list[str] | None]:
    data: dict[str, Any] = json.loads(text)
    every_field = field_names(exclude=())
    fields = {
        name: value if name == "app" else convert(name, value, valid=every_field)
        for name, value in data["config"].items()
    }
    return Config(**fields), data["explicit"]


@dataclasses.dataclass
class Worker:
    process: subprocess.Popen[bytes]
    started: float
    #: Read end of the readiness pipe; None once the worker said it is ready.
    ready_pipe: int | None

    @property
    def ready(self) -> bool:
        return self.ready_pipe is None

    def check_ready(self) -> bool:
        if self.ready_pipe is not None:
            try:
                said = os.read(self.ready_pipe, 1)
            except BlockingIOError:
                said = b""
            if said:
                self.close_pipe()
        return self.ready

    def close_pipe(self) -> None:
        if self.ready_pipe is not None:
            os.close(self.ready_pipe)
            self.ready_pipe = None


class Supervisor:
    """Start ``config.workers`` processes and keep that many alive until stopped."""

    def __init__(self, config: Config, explicit: Collection[str] | None = None) -> None:
        self.config = config
        self.explicit = explicit
        self.workers: list[Worker | None] = []
        self.stopping = False
        self.exit_code = 0
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
        payload = worker_payload(config, sock.fileno(), self.explicit)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.workers = [
                self._spawn(payload, sock.fileno(), index) for index in range(config.workers)
            ]
            self._delays = [0.0] * config.workers
            self._due = [0.0] * config.workers
            while not self.stopping:
                self._reap(payload, sock.fileno())
                time.sleep(0.1)
            return self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for worker in self.workers:
                if worker is not None:
                    worker.close_pipe()
            sock.close()
            if config.uds is not None:
                with contextlib.suppress(OSError):
                    os.unlink(config.uds)

    def _spawn(self, payload: str, fd: int, index: int) -> Worker:
        ready_read, ready_write = os.pipe()
        os.set_blocking(ready_read, False)
        env = dict(
            os.environ,
            **{
                CONFIG_ENV: payload,
                READY_FD_ENV: str(ready_write),
                INDEX_ENV: str(index),
                SERVER_PROCESSES: str(self.config.workers),
            },
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "djwire.server.worker_process"],
                env=env,
                pass_fds=(fd, ready_write),
            )
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        logger.info("Started worker pid %d", process.pid)
        return Worker(process, time.monotonic(), ready_read)

    def _reap(self, payload: str, fd: int) -> None:
        now = time.monotonic()
        for index, worker in enumerate(self.workers):
            if worker is None:
                if now >= self._due[index] and not self.stopping:
                    self.workers[index] = self._spawn(payload, fd, index)
                continue
            code = worker.process.poll()
            # After poll(): a worker that said "ready" and then died has its byte
            # in the pipe already.
            ready = worker.check_ready()
            if code is None:
                if now - worker.started > QUICK_DEATH * 5:
                    self._delays[index] = 0.0
                continue
            if self.stopping:
                return
            worker.close_pipe()
            if not ready and code > 0:
                # It failed to start: a restart would fail the same way. (Killed by
                # a signal, it is replaced below: that came from outside.)
                self.exit_code = code
                logger.error(
                    "Worker pid %d exited with %s before it was ready; stopping",
                    worker.process.pid,
                    code,
                )
                self.workers[index] = None
                self.stopping = True
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
        return self.exit_code
