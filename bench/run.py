"""Run the interface-server benchmarks (issue 3, item 7) side by side; write RESULTS.md.

Stacks, one server process each, all in the same run:
  djwire serve + djwire consumers; djwire serve + the Channels app; daphne + Channels;
  uvicorn + Channels; gunicorn (sync worker, WSGI) for W4; and a bare ASGI echo
  (no Django) on uvicorn and djwire serve as a reference for what W1 can reach.

The server is pinned to one core (``--server-cpu``) and the load generator
(bench/loadgen.py on picows + uvloop, or wrk) to the other (``--client-cpu``).
Every run starts a fresh server per workload; the runs are interleaved across
stacks, and the tables show the medians of ``--runs`` runs.

    bench/.venv/bin/python bench/run.py                   # everything, 3 runs
    bench/.venv/bin/python bench/run.py --runs 1 --workloads w1,w4 --rows daphne,uvicorn

Writes bench/RESULTS.md, bench/results.png and bench/results.json (raw samples);
server logs go to bench/out/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROJECT = BENCH / "project"
OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
APP = "benchproj.asgi:application"
BARE_APP = "benchproj.bare:application"
NOTES = BENCH / "NOTES.md"
#: Above this CPU share the load generator, not the server, may be the limit.
CLIENT_BOUND = 0.9
#: --max-foreign-load and --retries, for the report
ARGS_MAX_FOREIGN: list[float] = [0.25, 2]
#: the command line the report names (that of the measuring run)
REPORT_ARGV = sys.argv[1:]


# -- servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    kind: str  # djwire | daphne | uvicorn | gunicorn
    stack: str  # BENCH_STACK: djwire | channels
    app: str = APP
    #: environment for bench/tools/variant.py (djwire only): an experimental change
    variant: tuple[tuple[str, str], ...] = ()
    #: extra command-line arguments
    extra: tuple[str, ...] = ()

    def command(self, port: int) -> list[str]:
        py = sys.executable
        if self.kind == "djwire":
            launcher = [str(BENCH / "tools" / "variant.py")] if self.variant else []
            return [
                py, *launcher, "-m", "djwire", "serve", self.app,
                "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning",
                *self.extra,
            ]  # fmt: skip
        if self.kind == "daphne":
            return [str(VENV_BIN / "daphne"), "-b", HOST, "-p", str(port), "-v", "0", self.app]
        if self.kind == "uvicorn":
            return [
                str(VENV_BIN / "uvicorn"), self.app, "--host", HOST, "--port", str(port),
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        if self.kind == "gunicorn":
            return [
                str(VENV_BIN / "gunicorn"), "-w", "1", "-k", "sync", "-b", f"{HOST}:{port}",
                "--log-level", "warning", "benchproj.wsgi:application",
            ]  # fmt: skip
        raise ValueError(self.kind)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    server: Server
    group_mode: str = "handler"  # W2: which trigger path


DJWIRE = Server("djwire", "djwire")
DJWIRE_CH = Server("djwire", "channels")
DAPHNE = Server("daphne", "channels")
UVICORN = Server("uvicorn", "channels")
GUNICORN = Server("gunicorn", "channels")

ROWS: dict[str, list[Row]] = {
    "w1": [
        Row("djwire", "djwire serve + djwire", DJWIRE),
        Row("djwire-channels", "djwire serve + Channels app", DJWIRE_CH),
        Row("daphne", "daphne + Channels", DAPHNE),
        Row("uvicorn", "uvicorn + Channels", UVICORN),
        Row(
            "djwire-bare",
            "djwire serve + bare ASGI echo (no Django)",
            Server("djwire", "djwire", BARE_APP),
        ),
        Row(
            "uvicorn-bare",
            "uvicorn + bare ASGI echo (no Django)",
            Server("uvicorn", "channels", BARE_APP),
        ),
    ],
    "w2": [
        Row("djwire-direct", "djwire serve + djwire, direct path", DJWIRE, "direct"),
        Row("djwire", "djwire serve + djwire, handler path", DJWIRE, "handler"),
        Row("djwire-channels", "djwire serve + Channels app", DJWIRE_CH),
        Row("daphne", "daphne + Channels", DAPHNE),
        Row("uvicorn", "uvicorn + Channels", UVICORN),
    ],
    # W3 (issue 10): group_send in a loop from one handler; one member client
    "w3": [
        Row("djwire-direct", "djwire serve + djwire, direct path", DJWIRE, "direct"),
        Row("djwire", "djwire serve + djwire, handler path", DJWIRE, "handler"),
        Row("djwire-channels", "djwire serve + Channels app", DJWIRE_CH),
        Row("uvicorn", "uvicorn + Channels", UVICORN),
    ],
    "w4": [
        Row("djwire", "djwire serve + djwire", DJWIRE),
        Row("djwire-channels", "djwire serve + Channels app", DJWIRE_CH),
        Row("daphne", "daphne + Channels", DAPHNE),
        Row("uvicorn", "uvicorn + Channels", UVICORN),
        Row("gunicorn", "gunicorn sync worker (WSGI)", GUNICORN),
        Row(
            "djwire-asgi",
            "djwire serve --no-django-fast-path + djwire (Django's ASGI handler)",
            Server("djwire", "djwire", extra=("--no-django-fast-path",)),
        ),
    ],
    "w5": [
        Row("djwire", "djwire serve + djwire", DJWIRE),
        Row("djwire-channels", "djwire serve + Channels app", DJWIRE_CH),
        Row("daphne", "daphne + Channels", DAPHNE),
        Row("uvicorn", "uvicorn + Channels", UVICORN),
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class RunningServer:
    def __init__(self, server: Server, cpu: str, log_name: str) -> None:
        self.server = server
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            **dict(server.variant),
            BENCH_STACK=server.stack,
            DJANGO_SETTINGS_MODULE="benchproj.settings",
            PYTHONPATH=os.pathsep.join([str(PROJECT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        )
        OUT.mkdir(exist_ok=True)
        self.log_path = OUT / f"{log_name}-{os.getpid()}.log"  # several runners may share out/
        self.command = ["taskset", "-c", cpu, *server.command(self.port)]
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command, cwd=PROJECT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.server.app == BARE_APP:
                    socket.create_connection((HOST, self.port), timeout=1).close()
                else:
                    url = f"http://{HOST}:{self.port}/hello/"
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status != 200:
                            raise OSError(response.status)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        tail = self.log_path.read_text()[-2000:]
        raise RuntimeError(f"server did not become ready: {shlex.join(self.command)}\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            # Our own child's process group (it was started in a new session).
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


# -- load -----------------------------------------------------------------------------------


def loadgen(cpu: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    cmd = ["taskset", "-c", cpu, sys.executable, str(BENCH / "loadgen.py"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        return {"error": f"loadgen exit {done.returncode}: {done.stderr[-1500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def server_cpu_seconds(pid: int) -> float:
    sys.path.insert(0, str(BENCH))
    from loadgen import server_cpu_seconds as measure_tree

    return measure_tree(pid)


def wrk(cpu: str, port: int, seconds: float, connections: int, pid: int) -> dict[str, Any]:
    url = f"http://{HOST}:{port}/hello/"
    base = ["taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", "--latency"]
    subprocess.run([*base, "-d2s", url], capture_output=True, timeout=60, check=False)  # warm-up
    server0, t0 = server_cpu_seconds(pid), time.monotonic()
    done = subprocess.run(
        [*base, f"-d{seconds:g}s", url], capture_output=True, text=True, timeout=seconds + 60
    )
    server_cpu = server_cpu_seconds(pid) - server0
    wall = time.monotonic() - t0
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s|m)\b", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if not rps or not p99 or not p50:
        return {"error": f"cannot parse wrk output: {out[-1500:]}{done.stderr[-500:]}"}
    return {
        "req_per_s": float(rps.group(1)),
        "p50_ms": float(p50.group(1)) * _UNITS[p50.group(2)],
        "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
        "server_cpu": server_cpu / wall,
        "req_per_server_cpu_s": float(rps.group(1)) * wall / server_cpu if server_cpu else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def cores_busy(cores: list[int]) -> float:
    """CPU seconds the given cores have spent busy (any process, and steal) since boot."""
    ticks = os.sysconf("SC_CLK_TCK")
    wanted = {f"cpu{core}" for core in cores}
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            busy += user + nice + system + irq + softirq + steal
    return busy / ticks


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(workload: str, row: Row, run: int, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one row; repeat (bounded) while other users load our two cores.

    Foreign load = busy time of the two cores minus the CPU time of our server and
    load generator, per second. Of the attempts, the least disturbed one is kept.
    """
    cores = sorted({int(args.server_cpu), int(args.client_cpu)})
    attempts = []
    for attempt in range(1 + args.retries):
        busy0, ours0, t0 = cores_busy(cores), children_cpu(), time.monotonic()
        result = measure_once(workload, row, f"run{run}-{attempt}", args)
        wall = time.monotonic() - t0
        foreign = max(0.0, (cores_busy(cores) - busy0) - (children_cpu() - ours0)) / wall
        result["foreign_load"] = round(foreign, 3)
        result["attempt"] = attempt + 1
        attempts.append(result)
        if foreign <= args.max_foreign_load:
            break
        print(
            f"  {workload} {row.key}: other processes used {foreign:.2f} cores meanwhile; "
            f"{'retrying' if attempt < args.retries else 'keeping the least disturbed'}",
            flush=True,
        )
        time.sleep(5)
    return min(attempts, key=lambda r: r["foreign_load"])


def measure_once(workload: str, row: Row, tag: str, args: argparse.Namespace) -> dict[str, Any]:
    server = RunningServer(row.server, args.server_cpu, f"{workload}-{row.key}-{tag}")
    try:
        server.wait_ready()
        if workload == "w1":
            result = {}
            for clients in (1, 100):
                result[f"c{clients}"] = loadgen(
                    args.client_cpu, "echo", "--port", str(server.port),
                    "--clients", str(clients), "--seconds", str(args.seconds),
                    "--server-pid", str(server.pid),
                )  # fmt: skip
            return result
        if workload == "w2":
            return loadgen(
                args.client_cpu, "group", "--port", str(server.port), "--mode", row.group_mode,
                "--members", str(args.members), "--burst", "50", "--paced", str(args.paced),
                "--server-pid", str(server.pid),
            )  # fmt: skip
        if workload == "w3":
            return loadgen(
                args.client_cpu, "loop", "--port", str(server.port), "--mode", row.group_mode,
                "--bursts", "20", "--count", "1000", "--size", "1024",
                "--server-pid", str(server.pid),
            )  # fmt: skip
        if workload == "w4":
            return wrk(args.client_cpu, server.port, args.seconds * 2, 64, server.pid)
        if workload == "w5":
            return loadgen(
                args.client_cpu, "idle", "--port", str(server.port),
                "--server-pid", str(server.pid), "--connections", str(args.connections),
            )  # fmt: skip
        raise ValueError(workload)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)[-2000:]}
    finally:
        server.stop()


# -- metrics, tables ------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    workload: str
    path: tuple[str, ...]  # where in the per-run result
    label: str
    higher_is_better: bool
    unit: str = ""
    digits: int = 0
    #: where the load generator's CPU share for this number is, to flag client-bound cells
    client_cpu: tuple[str, ...] | None = None


METRICS = [
    Metric("w1", ("c1", "msgs_per_s"), "1 client msgs/s", True, client_cpu=("c1", "client_cpu")),
    Metric("w1", ("c1", "p50_ms"), "1 client p50 ms", False, digits=3),
    Metric("w1", ("c1", "p99_ms"), "1 client p99 ms", False, digits=3),
    Metric(
        "w1", ("c100", "msgs_per_s"), "100 clients msgs/s", True, client_cpu=("c100", "client_cpu")
    ),
    Metric("w1", ("c100", "p50_ms"), "100 clients p50 ms", False, digits=2),
    Metric("w1", ("c100", "p99_ms"), "100 clients p99 ms", False, digits=2),
    Metric("w1", ("c100", "server_cpu"), "100 clients server CPU", False, digits=2),
    Metric("w1", ("c100", "msgs_per_server_cpu_s"), "100 clients msgs per server CPU-s", True),
    Metric(
        "w2",
        ("burst", "deliveries_per_s"),
        "burst deliveries/s",
        True,
        client_cpu=("burst", "client_cpu"),
    ),
    Metric("w2", ("burst", "p99_ms"), "burst p99 ms (send->last)", False, digits=1),
    Metric("w2", ("burst", "client_p99_ms"), "burst p99 ms (trigger->last)", False, digits=0),
    Metric(
        "w2",
        ("burst", "deliveries_per_server_cpu_s"),
        "burst deliveries per server CPU-s",
        True,
    ),
    Metric("w2", ("paced", "p50_ms"), "paced p50 ms", False, digits=2),
    Metric("w2", ("paced", "p99_ms"), "paced p99 ms", False, digits=2),
    Metric("w3", ("delivered",), "delivered of 20,000", True),
    Metric("w3", ("seconds",), "seconds to deliver", False, digits=2),
    Metric("w3", ("deliveries_per_s",), "deliveries/s", True, client_cpu=("client_cpu",)),
    Metric("w4", ("req_per_s",), "requests/s", True),
    Metric("w4", ("p50_ms",), "p50 ms", False, digits=2),
    Metric("w4", ("p99_ms",), "p99 ms", False, digits=2),
    Metric("w4", ("server_cpu",), "server CPU", False, digits=2),
    Metric("w4", ("req_per_server_cpu_s",), "requests per server CPU-s", True),
    Metric("w5", ("kib_per_connection",), "KiB per idle connection", False, digits=1),
    Metric("w5", ("connections",), "connections held", True),
]

TITLES = {
    "w1": "W1 — WebSocket echo, 64-byte text",
    "w2": "W2 — broadcast to 1,000 clients in one group, in-memory layer",
    "w3": "W3 — 20 bursts of 1,000 x 1 KiB group_send in a loop from one handler, one member",
    "w4": "W4 — Django hello-world sync view, wrk -c64",
    "w5": "W5 — idle WebSocket connections",
}

# Issue 3's numbers for the peers on this machine (medians of 3), to check the harness.
ISSUE_PEERS = {
    ("w1", "daphne", "100 clients msgs/s"): 6400,
    ("w1", "uvicorn", "100 clients msgs/s"): 12600,
    ("w1", "uvicorn-bare", "100 clients msgs/s"): 58000,
    ("w2", "daphne", "burst deliveries/s"): 2400,
    ("w2", "uvicorn", "burst deliveries/s"): 2700,
    ("w4", "daphne", "requests/s"): 690,
    ("w4", "uvicorn", "requests/s"): 840,
    ("w4", "gunicorn", "requests/s"): 4600,
    ("w5", "daphne", "KiB per idle connection"): 30.5,
    ("w5", "uvicorn", "KiB per idle connection"): 28.9,
}

# (workload, row, metric label, target, higher_is_better); a target naming a row is that
# row's value in the same run, divided by the factor after "/" (issue 11: the handler
# path within 1.25x of the direct path).
TARGETS = [
    ("w1", "djwire", "100 clients msgs/s", 30000, True),
    ("w1", "djwire", "1 client msgs/s", 10000, True),
    ("w2", "djwire-direct", "burst deliveries/s", 100000, True),
    ("w2", "djwire-direct", "paced p99 ms", 20, False),
    ("w2", "djwire", "burst deliveries/s", 100000, True),
    ("w2", "djwire", "burst deliveries/s", "djwire-direct/1.25", True),
    ("w4", "djwire", "requests/s", "gunicorn", True),
    ("w5", "djwire", "KiB per idle connection", 8, False),
]


def dig(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def errors_of(result: dict[str, Any]) -> list[str]:
    found = []
    if "error" in result:
        found.append(str(result["error"]))
    for value in result.values():
        if isinstance(value, dict):
            found += errors_of(value)
    return found


@dataclass
class Results:
    samples: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, workload: str, row: str, result: dict[str, Any]) -> None:
        self.samples.setdefault(workload, {}).setdefault(row, []).append(result)

    def median(self, workload: str, row: str, metric: Metric) -> float | None:
        values = [
            v
            for r in self.samples.get(workload, {}).get(row, [])
            if (v := dig(r, metric.path)) is not None
        ]
        return statistics.median(values) if values else None

    def by_label(self, workload: str, row: str, label: str) -> float | None:
        metric = next(m for m in METRICS if m.workload == workload and m.label == label)
        return self.median(workload, row, metric)


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(results: Results, workload: str, rows: list[Row]) -> list[str]:
    metrics = [m for m in METRICS if m.workload == workload]
    present = [r for r in rows if r.key in results.samples.get(workload, {})]
    if not present:
        return []
    head = "| stack | " + " | ".join(m.label for m in metrics) + " |"
    lines = [head, "|---|" + "---:|" * len(metrics)]
    bound = False
    for row in present:
        cells = []
        for m in metrics:
            cell = fmt(results.median(workload, row.key, m), m.digits)
            if m.client_cpu:
                share = results.median(workload, row.key, Metric(workload, m.client_cpu, "", True))
                if share is not None and share > CLIENT_BOUND:
                    cell += " †"
                    bound = True
            cells.append(cell)
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    if bound:
        lines += [
            "",
            f"† the load generator used more than {CLIENT_BOUND:.0%} of its core here: "
            "the server may be able to go faster than this number shows.",
        ]
    # Ratios of the djwire rows against each Channels peer on the headline metrics.
    ours = [r for r in present if r.key.startswith("djwire") and not r.key.endswith("bare")]
    peers = [r for r in present if r.key in ("daphne", "uvicorn", "gunicorn")]
    if ours and peers:
        lines += ["", "Ratios (djwire row / peer row; for ms and KiB lower is better):", ""]
        for row in ours:
            parts = []
            for peer in peers:
                for m in metrics:
                    a = results.median(workload, row.key, m)
                    b = results.median(workload, peer.key, m)
                    if a is None or b in (None, 0) or m.label.endswith(("held", "server CPU")):
                        continue
                    if "p50" in m.label and workload != "w2":
                        continue
                    parts.append(f"{m.label} {a / b:,.2f}x {peer.key}")
            if parts:
                lines.append(f"- {row.label}: " + "; ".join(parts))
    return lines


def least_disturbed(results: Results, workload: str, row: str, label: str) -> str:
    runs = results.samples.get(workload, {}).get(row, [])
    if not runs:
        return "n/a"
    best = min(runs, key=lambda r: r.get("foreign_load", 0.0))
    metric = next(m for m in METRICS if m.workload == workload and m.label == label)
    value = dig(best, metric.path)
    return f"{fmt(value, metric.digits)} ({best.get('foreign_load', 0.0):.2f})"


def target_lines(results: Results) -> list[str]:
    lines = [
        "| target | median | least disturbed run (foreign load) | status (median) |",
        "|---|---:|---:|---|",
    ]
    for workload, row, label, goal, higher in TARGETS:
        value = results.by_label(workload, row, label)
        if goal == "gunicorn":
            goal_value = results.by_label(workload, "gunicorn", label)
            goal_text = f">= gunicorn sync ({fmt(goal_value)})"
        elif isinstance(goal, str):
            other, _, factor = goal.partition("/")
            base = results.by_label(workload, other, label)
            goal_value = base / float(factor) if base is not None else None
            goal_text = f">= {other} / {factor} ({fmt(goal_value)})"
        else:
            goal_value = float(goal)
            goal_text = f"{'>=' if higher else '<='} {fmt(goal_value, 0)}"
        name = f"{workload.upper()} {row} {label} {goal_text}"
        if value is None or goal_value is None:
            lines.append(f"| {name} | n/a | n/a | not measured |")
            continue
        met = value >= goal_value if higher else value <= goal_value
        if met:
            status = "met"
        else:
            short = (
                (goal_value - value) / goal_value if higher else (value - goal_value) / goal_value
            )
            factor = goal_value / value if higher and value else value / goal_value
            status = f"MISSED by {short:.0%} ({factor:,.1f}x off)"
        metric = next(m for m in METRICS if m.workload == workload and m.label == label)
        calm = least_disturbed(results, workload, row, label)
        lines.append(f"| {name} | {fmt(value, metric.digits)} | {calm} | {status} |")
    return lines


def peer_check_lines(results: Results) -> list[str]:
    lines = [
        "| workload | stack | metric | issue 3 | this run | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for (workload, row, label), issue in ISSUE_PEERS.items():
        value = results.by_label(workload, row, label)
        ratio = f"{value / issue:.2f}" if value else "n/a"
        lines.append(
            f"| {workload.upper()} | {row} | {label} | {fmt(issue, 1 if issue < 100 else 0)} "
            f"| {fmt(value, 1 if issue < 100 else 0)} | {ratio} |"
        )
    return lines


# -- report ---------------------------------------------------------------------------------


def noise_lines(results: Results) -> list[str]:
    lines = [
        "CPU time other users' processes took on our two cores while each measurement ran "
        "(busy time from /proc/stat minus our server's and load generator's CPU time), in "
        f"cores; a measurement above {ARGS_MAX_FOREIGN[0]:g} was repeated (at most "
        f"{ARGS_MAX_FOREIGN[1]} times) and the least disturbed attempt kept.",
        "",
        "| workload | median | max | measurements repeated |",
        "|---|---:|---:|---:|",
    ]
    for workload, rows in results.samples.items():
        loads = [r.get("foreign_load", 0.0) for runs in rows.values() for r in runs]
        repeated = sum(1 for runs in rows.values() for r in runs if r.get("attempt", 1) > 1)
        if loads:
            lines.append(
                f"| {workload.upper()} | {statistics.median(loads):.2f} | {max(loads):.2f} "
                f"| {repeated} of {len(loads)} |"
            )
    return lines


#: The packages whose versions the report names.
VERSIONED = ["django", "asgiref", "channels", "daphne", "twisted", "uvicorn", "gunicorn",
             "websockets", "httptools", "uvloop", "picows"]  # fmt: skip


def versions(names: list[str] = VERSIONED) -> str:
    parts = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{name} {metadata.version(name)}")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "djwire"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    where = f"djwire @ {commit or '?'}" + (" plus uncommitted changes in djwire/" if dirty else "")
    return f"{where}; " + ", ".join(parts)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (
        f"{cpu}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB RAM, Linux "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def commands(args: argparse.Namespace) -> list[str]:
    port = "$PORT"
    lines = []
    seen = set()
    for rows in ROWS.values():
        for row in rows:
            cmd = shlex.join(["taskset", "-c", args.server_cpu, *row.server.command(65535)])
            cmd = cmd.replace("65535", port)
            cmd = cmd.replace(sys.executable, "bench/.venv/bin/python").replace(
                str(VENV_BIN), "bench/.venv/bin"
            )
            cmd = f"(cd bench/project && BENCH_STACK={row.server.stack} {cmd})"
            if cmd not in seen:
                seen.add(cmd)
                lines.append(cmd)
    c = args.client_cpu
    lines += [
        f"taskset -c {c} bench/.venv/bin/python bench/loadgen.py echo --port $PORT "
        f"--clients 1|100 --seconds {args.seconds:g}",
        f"taskset -c {c} bench/.venv/bin/python bench/loadgen.py group --port $PORT "
        f"--mode handler|direct --members {args.members} --burst 50 --paced {args.paced}",
        f"taskset -c {c} bench/.venv/bin/python bench/loadgen.py loop --port $PORT "
        "--mode handler|direct --bursts 20 --count 1000 --size 1024",
        f"taskset -c {c} wrk -t1 -c64 -d2s --latency http://127.0.0.1:$PORT/hello/   # warm-up",
        f"taskset -c {c} wrk -t1 -c64 -d{args.seconds * 2:g}s --latency http://127.0.0.1:$PORT/hello/",
        f"taskset -c {c} bench/.venv/bin/python bench/loadgen.py idle --port $PORT "
        f"--server-pid $SERVER_PID --connections {args.connections}",
    ]
    return lines


def chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [
        ("w1", "100 clients msgs/s", "W1 echo, 100 clients: msgs/s"),
        ("w1", "1 client msgs/s", "W1 echo, 1 client: msgs/s"),
        ("w2", "burst deliveries/s", "W2 burst: deliveries/s (log)"),
        ("w2", "paced p99 ms", "W2 paced: p99 ms (log, lower is better)"),
        ("w4", "requests/s", "W4 hello view: requests/s"),
        ("w5", "KiB per idle connection", "W5: KiB per idle socket (lower is better)"),
    ]
    fig, axes = plt.subplots(3, 2, figsize=(13, 12))
    for ax, (workload, label, title) in zip(axes.flat, panels, strict=True):
        names, values, colors = [], [], []
        for row in ROWS[workload]:
            value = results.by_label(workload, row.key, label)
            if value is None:
                continue
            names.append(row.key)
            values.append(value)
            colors.append("#2a7ab0" if row.key.startswith("djwire") else "#999999")
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if "log" in title:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        goal = next((t for t in TARGETS if t[0] == workload and t[2] == label), None)
        if goal is not None and goal[3] not in ("gunicorn",) and isinstance(goal[3], str):
            goal = None  # relative to another row: no line to draw
        if goal is not None:
            goal_value = (
                results.by_label(workload, "gunicorn", label) if goal[3] == "gunicorn" else goal[3]
            )
            if goal_value:
                ax.axvline(float(goal_value), color="#c0392b", linestyle="--", linewidth=1)
                ax.text(
                    float(goal_value), -0.6, " target", color="#c0392b", fontsize=8, va="bottom"
                )
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}" if v >= 100 else f" {v:,.1f}", va="center", fontsize=8)
    fig.suptitle(
        "djwire vs Channels stacks (medians; blue = djwire server or framework; "
        "red dashes = issue 3 target)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(
    results: Results,
    args: argparse.Namespace,
    started: float,
    loads: str,
    finished: float | None = None,
    versions_text: str | None = None,
) -> None:
    lines = [
        "# djwire benchmarks: interface server and consumers vs Channels stacks",
        "",
        f"Generated by `{shlex.join(['bench/.venv/bin/python', 'bench/run.py', *REPORT_ARGV])}` "
        f"on {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))} "
        f"({((finished or time.time()) - started) / 60:.0f} min). Medians of {args.runs} runs.",
        "",
        f"- Machine: {machine()}; load average before/after: {loads}.",
        "  Shared with other users, so expect some noise.",
        f"- Versions (when the run started): {versions_text or versions()}.",
        f"- Server pinned to core {args.server_cpu}, load generator to core {args.client_cpu} "
        "(`taskset`). One server process per stack; a fresh server per workload and run; "
        "runs interleave the stacks.",
        "- Load generator: bench/loadgen.py (picows on uvloop) for WebSockets, wrk for HTTP.",
        "- Application: bench/project (one Django project; `BENCH_STACK=djwire|channels` "
        "selects consumers, routers and in-memory channel layer; DEBUG off, four "
        "database-free middlewares).",
        "",
        "![chart](results.png)",
        "",
    ]
    for workload in ("w1", "w2", "w4", "w5"):
        body = table(results, workload, ROWS[workload])
        if body:
            lines += [f"## {TITLES[workload]}", "", *body, ""]
    # Gateway mode is measured by bench/gateway.py; its section is kept here.
    from gateway import section_lines

    lines += section_lines()
    lines += ["## Noise", "", *noise_lines(results), ""]
    lines += [
        "## Targets (issue 3; W2 handler path: issue 11)",
        "",
        *target_lines(results),
        "",
        "## Peers: this run vs the numbers in issue 3",
        "",
        *peer_check_lines(results),
        "",
        "## How each number is measured",
        "",
        "- **W1**: each client keeps one 64-byte text message in flight (send, wait for the "
        f"echo, send again); 1 s warm-up, then {args.seconds:g} s measured. msgs/s = "
        "round trips completed per second; p50/p99 = round-trip time.",
        f"- **W2**: {args.members} member clients on `/ws/member/` (consumer with "
        "`groups = ['bench']`), one control client on `/ws/trigger/<path>/`. The control "
        'client sends `"<seq> <monotonic_ns>"`; the trigger consumer stamps '
        "`time.monotonic_ns()` right before `group_send` and pads the text to 100 bytes. "
        "Members record `time.monotonic_ns()` on receipt (one system-wide clock). "
        "**send->last** = last member's receipt minus the server stamp (the group_send "
        "call); **trigger->last** = minus the control client's stamp (adds the trigger's "
        "trip and its wait behind earlier triggers in the trigger consumer). "
        "*Handler path*: `{'type': 'chat.message', 'text': ...}`, each member's "
        "`chat_message` calls `self.send` (the only path Channels has). *Direct path* "
        "(djwire only): `{'type': 'websocket.send', 'text': ...}`, which djwire writes to "
        "the attached sockets without waking the consumers, frame encoded once. "
        f"**Paced**: after one warm-up send, {args.paced} sends one at a time, each after "
        "the previous one reached every member. **Burst**: then 50 sends back to back; "
        "deliveries/s = deliveries / (first trigger -> last receipt).",
        "- **W3** (issue 10): one member client on `/ws/member/` (as in W2) reads as fast as "
        "it can; the control client sends 20 triggers back to back to "
        "`/ws/trigger/loop-<path>/`, and for each the trigger consumer's handler calls "
        "`group_send` 1,000 times in a loop (1 KiB text each), then answers. **delivered** = "
        "messages the member got once all 20 answers are in and nothing more arrived for "
        "1 s; a member that keeps up should get all 20,000. Handler and direct path as in "
        "W2. **seconds** = first trigger -> last receipt.",
        "- **W4**: `GET /hello/` (a sync view returning 13 bytes) with "
        f"`wrk -t1 -c64 -d{args.seconds * 2:g}s --latency` after a 2 s warm-up.",
        f"- **W5**: 20 warm-up connections echo once; server RSS (process tree, median of 5 "
        f"samples) is read; then {args.connections} connections to `/ws/echo/` from "
        "127.0.0.2-33 (to spread ephemeral ports), 2 s settle, RSS read again; "
        "KiB per connection = RSS delta / connections. A sample of the connections must "
        "still echo afterwards.",
        "",
        "## Exact commands",
        "",
        "```",
        *commands(args),
        "```",
        "",
    ]
    errors = []
    for workload, rows in results.samples.items():
        for row, runs in rows.items():
            for i, result in enumerate(runs, 1):
                errors += [f"- {workload} {row} run {i}: {e[:300]}" for e in errors_of(result)]
                for key in ("connect_failures",):
                    for part in (result, *[v for v in result.values() if isinstance(v, dict)]):
                        if isinstance(part, dict) and part.get(key):
                            errors.append(f"- {workload} {row} run {i}: {key}={part[key]}")
                for part in ("burst", "paced"):
                    sub = result.get(part)
                    if isinstance(sub, dict) and sub.get("deliveries") != sub.get(
                        "expected_deliveries"
                    ):
                        errors.append(
                            f"- {workload} {row} run {i}: {part} delivered "
                            f"{sub.get('deliveries')} of {sub.get('expected_deliveries')}"
                        )
    if errors:
        lines += ["## Errors and incomplete runs", "", *sorted(set(errors)), ""]
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    lines += ["Raw per-run results: bench/results.json.", ""]
    (BENCH / "RESULTS.md").write_text("\n".join(lines))


def rewrite_report(args: argparse.Namespace) -> None:
    saved = json.loads((BENCH / "results.json").read_text())
    for key, value in saved["args"].items():
        if key not in ("from_json",):
            setattr(args, key, value)
    for spec in args.variant:
        add_variant(spec)
    results = Results(saved["samples"])
    ARGS_MAX_FOREIGN[:] = [args.max_foreign_load, args.retries]
    global REPORT_ARGV
    REPORT_ARGV = saved["argv"]
    chart(results, BENCH / "results.png")
    write_report(
        results,
        args,
        saved["started"],
        saved["loads"],
        saved.get("finished"),
        saved.get("versions"),
    )
    print(f"wrote {BENCH / 'RESULTS.md'} from bench/results.json")


def add_variant(spec: str) -> None:
    name, _, settings = spec.partition("=")
    env = tuple(tuple(item.split("=", 1)) for item in settings.split("+") if item)
    for rows in ROWS.values():
        for row in list(rows):
            if row.server.kind == "djwire" and not row.server.variant:
                server = Server(
                    row.server.kind, row.server.stack, row.server.app, env, row.server.extra
                )
                label = f"{row.label} [{name}]"
                rows.append(Row(f"{row.key}~{name}", label, server, row.group_mode))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="w1,w2,w4,w5")
    parser.add_argument("--rows", default="", help="only these row keys (comma-separated)")
    parser.add_argument("--seconds", type=float, default=5, help="W1 per client count; W4 x2")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--paced", type=int, default=50)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--max-foreign-load",
        type=float,
        default=0.25,
        help="repeat a measurement when other processes used more than this many cores",
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats per measurement")
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="measure nothing: write RESULTS.md and the chart again from bench/results.json",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VAR=VALUE[+VAR=VALUE]",
        help="add a row per djwire-server row run through bench/tools/variant.py with these "
        "environment variables, e.g. gcfreeze=BENCH_GC_FREEZE=1",
    )
    parser.add_argument("--echo-chars", type=int, default=400, help="per-run output shown")
    args = parser.parse_args()
    if args.from_json:
        rewrite_report(args)
        return
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for spec in args.variant:
        add_variant(spec)
    only = {r.strip() for r in args.rows.split(",") if r.strip()}
    ARGS_MAX_FOREIGN[:] = [args.max_foreign_load, args.retries]
    # SIGTERM unwinds like Ctrl-C, so the running server and load generator are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The runner itself stays off the server's core.
    os.sched_setaffinity(0, {int(args.client_cpu)})
    started = time.time()
    versions_at_start = versions()
    load_before = os.getloadavg()
    results = Results()
    for run in range(1, args.runs + 1):
        for workload in workloads:
            for row in ROWS[workload]:
                if only and row.key not in only:
                    continue
                t0 = time.monotonic()
                result = measure(workload, row, run, args)
                results.add(workload, row.key, result)
                brief = json.dumps(result)[: args.echo_chars]
                print(
                    f"[run {run}] {workload} {row.key} ({time.monotonic() - t0:.0f}s): {brief}",
                    flush=True,
                )
    load_after = os.getloadavg()
    loads = f"{load_before[0]:.2f} / {load_after[0]:.2f}"
    for workload in workloads:
        print("\n".join(table(results, workload, ROWS[workload])))
    if args.no_write:
        return
    saved = {"args": vars(args), "argv": sys.argv[1:], "started": started, "loads": loads}
    saved["versions"] = versions_at_start
    saved["finished"] = time.time()
    saved["samples"] = results.samples
    (BENCH / "results.json").write_text(json.dumps(saved, indent=1))
    chart(results, BENCH / "results.png")
    write_report(results, args, started, loads, versions_text=versions_at_start)
    print(f"wrote {BENCH / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
