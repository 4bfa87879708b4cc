"""End to end over Redis: 1,000 WebSocket clients on 2 server processes, one group.

The W2 workload of bench/loadgen.py (``group``): 1,000 member clients connect to
``/ws/member/`` (spread by the kernel over the 2 server processes, which share the
port), one control client triggers ``group_send``s; each send is stamped on the
server right before ``group_send``, each member stamps its receipt. Reported:
*paced* (one send at a time) and *burst* (50 back-to-back sends, as in issue 4):
p50/p99 from the server stamp to the last member's receipt, and burst deliveries/s.

Rows (same benchmark project, bench/project; only the server and layer differ):

* djwire serve --workers 2 + djwire consumers + djwire RedisChannelLayer, with the
  group message handled by each member's consumer (``handler``) and sent straight
  to the sockets (``direct``: a ``websocket.send`` group message);
* uvicorn --workers 2 + Channels 4 + channels_redis RedisChannelLayer / RedisPubSubChannelLayer;
* uvicorn --workers 2 + Channels 4 + djwire's RedisChannelLayer (the drop-in).

Server processes and redis-server on core 0, the load generator on core 1; rows
interleaved, ``--runs`` times, medians. Every wait is bounded; loopback only.

    bench/.venv/bin/python bench/redis_e2e.py [--runs 3] [--rows ...]

Writes bench/redis_results.json (key "e2e"); bench/redis_report.py renders it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROJECT = HERE / "project"
VENV_BIN = Path(sys.executable).parent
RESULTS = HERE / "redis_results.json"
OUT = HERE / "out"
HOST = "127.0.0.1"
SERVER_CPU, CLIENT_CPU = "0", "1"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from redis_noise import calm_measurement  # noqa: E402

#: key -> (label, server kind, BENCH_STACK, layer, loadgen mode)
ROWS: dict[str, tuple[str, str, str, str, str]] = {
    "djwire": (
        "djwire serve x2 + djwire layer (consumer handler)",
        "djwire", "djwire", "djwire", "handler",
    ),
    "djwire-direct": (
        "djwire serve x2 + djwire layer (straight to sockets)",
        "djwire", "djwire", "djwire", "direct",
    ),
    "uvicorn-core": (
        "uvicorn x2 + Channels + channels_redis core",
        "uvicorn", "channels", "core", "handler",
    ),
    "uvicorn-pubsub": (
        "uvicorn x2 + Channels + channels_redis pubsub",
        "uvicorn", "channels", "pubsub", "handler",
    ),
    "uvicorn-djwire": (
        "uvicorn x2 + Channels + djwire layer (drop-in)",
        "uvicorn", "channels", "djwire", "handler",
    ),
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def server_command(kind: str, port: int) -> list[str]:
    app = "benchproj.asgi:application"
    if kind == "djwire":
        return [
            sys.executable, "-m", "djwire", "serve", app, "--workers", "2", "--host", HOST,
            "--port", str(port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    return [
        str(VENV_BIN / "uvicorn"), app, "--workers", "2", "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def start_server(row: str, redis_url: str, run: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    _, kind, stack, layer, _ = ROWS[row]
    port = free_port()
    env = dict(
        os.environ,
        BENCH_STACK=stack,
        BENCH_REDIS_LAYER=layer,
        BENCH_REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="redis_settings",
        PYTHONPATH=os.pathsep.join([str(PROJECT), str(HERE)]),
    )
    OUT.mkdir(exist_ok=True)
    log = OUT / f"redis-e2e-{row}-run{run}.log"
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *server_command(kind, port)],
        cwd=PROJECT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/hello/", timeout=2):
                return process, port, log
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{row} did not start:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # our own child's session
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def server_errors(log: Path) -> dict[str, int]:
    """Exceptions the server logged, by kind (e.g. redis-py's MaxConnectionsError)."""
    text = log.read_text(errors="replace")
    return {
        "asgi_exceptions": text.count("Exception in ASGI application"),
        "max_connections_errors": text.count("MaxConnectionsError: Too many connections"),
        "in_group_add": text.count(", in group_add"),
        "in_group_discard": text.count(", in group_discard"),
    }


def measure(row: str, run: int, members: int, burst: int, paced: int) -> dict[str, Any]:
    from tests.support.redis_servers import RedisServer

    redis = RedisServer(cpu=SERVER_CPU).start()
    try:
        process, port, log = start_server(row, redis.url, run)
        try:
            mode = ROWS[row][4]
            command = [
                "taskset", "-c", CLIENT_CPU, sys.executable, str(HERE / "loadgen.py"), "group",
                "--port", str(port), "--mode", mode, "--members", str(members),
                "--burst", str(burst), "--paced", str(paced), "--server-pid", str(process.pid),
                "--burst-budget", "120", "--paced-budget", "60",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode:
                return {"error": done.stderr[-1500:]}
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            result["server_errors"] = server_errors(log)
            return result
        finally:
            stop(process)
    finally:
        redis.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--paced", type=int, default=20)
    args = parser.parse_args()
    rows = args.rows.split(",")
    samples: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    for run in range(args.runs):
        for row in rows:  # interleaved
            result = calm_measurement(
                lambda row=row, run=run: measure(
                    row, run + 1, args.members, args.burst, args.paced
                )
            )
            samples[row].append(result)
            burst = result.get("burst", {})
            print(
                f"run {run + 1} {row}: members {result.get('members')}, "
                f"burst {burst.get('deliveries_per_s', 0):,.0f} deliveries/s, "
                f"p50 {burst.get('p50_ms', float('nan')):.0f} ms, "
                f"p99 {burst.get('p99_ms', float('nan')):.0f} ms "
                f"({burst.get('deliveries')}/{burst.get('expected_deliveries')}), "
                f"others used {result['foreign_cores']:.2f} cores"
                + (f" ERROR {result['error'][-300:]}" if "error" in result else ""),
                flush=True,
            )
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["e2e"] = {
        "command": "bench/.venv/bin/python bench/redis_e2e.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "runs": args.runs,
        "members": args.members,
        "burst": args.burst,
        "paced": args.paced,
        "labels": {row: ROWS[row][0] for row in rows},
        "samples": samples,
    }
    RESULTS.write_text(json.dumps(data, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
