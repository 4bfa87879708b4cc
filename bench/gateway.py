"""Gateway mode (issue 9, item 7): echo and the Django hello view through gateway + worker,
next to in-process djwire serve and daphne + Channels, same run.

Rows (bench/project, the same consumers and view everywhere):

* ``djwire-gateway``: ``djwire serve --gateway`` + one ``runworker --connections`` +
  a private redis-server, **all three on the server core** (``--server-cpu``): the
  same CPU the in-process stacks get.
* ``djwire-gateway-spread`` (labelled): gateway and redis-server on the server core,
  the worker on the load generator's core (which it shares with the load generator):
  what a second core for workers buys, not a like-for-like row.
* ``djwire``: in-process ``djwire serve`` (the project's in-memory layer, as in the
  main tables).
* ``daphne``: daphne + Channels, in-process.

Workloads as in bench/run.py: W1 (WebSocket echo, 64-byte text, 1 and 100 clients,
bench/loadgen.py: picows on uvloop) and W4 (``GET /hello/``, a sync Django view,
``wrk -t1 -c64``). The load generator is on ``--client-cpu``. A gateway stack is one
process tree (``gateway.py _stack``: redis-server, worker, gateway), so "server CPU"
covers all three. Rows interleave; medians of ``--runs``; a measurement during which
other users' processes took more than ``--max-foreign-load`` cores is repeated
(``--retries``) and the least disturbed kept. Every wait is bounded; loopback only;
everything started is stopped, also on Ctrl-C.

    bench/.venv/bin/python bench/gateway.py [--runs 3] [--rows djwire-gateway,daphne]
    bench/.venv/bin/python bench/gateway.py --from-json   # rewrite the section only

Writes bench/gateway_results.json and the "Gateway mode" section of bench/RESULTS.md
(bench/run.py keeps that section when it rewrites the file). Logs in bench/out/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"
OUT = HERE / "out"
RESULTS_JSON = HERE / "gateway_results.json"
RESULTS_MD = HERE / "RESULTS.md"
SECTION = "## Gateway mode"
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py: servers, load generators, tables)


@dataclass(frozen=True)
class SplitServer(run.Server):
    """The gateway stack, started as one process tree by ``gateway.py _stack``."""

    worker_cpu: str = ""  # "": the same core as the gateway

    def command(self, port: int) -> list[str]:
        command = [sys.executable, str(Path(__file__).resolve()), "_stack", "--port", str(port)]
        if self.worker_cpu:
            command += ["--worker-cpu", self.worker_cpu]
        return command


def rows(args: argparse.Namespace) -> list[run.Row]:
    return [
        run.Row(
            "djwire-gateway",
            "djwire serve --gateway + runworker --connections + Redis, all on the server core",
            SplitServer("gateway", "djwire"),
        ),
        run.Row(
            "djwire-gateway-spread",
            f"(spread) the same, but the worker on core {args.client_cpu} with the load generator",
            SplitServer("gateway", "djwire", worker_cpu=args.client_cpu),
        ),
        run.Row("djwire", "djwire serve + djwire, in-process", run.DJWIRE),
        run.Row("daphne", "daphne + Channels, in-process", run.DAPHNE),
    ]


# -- the gateway stack: one process tree --------------------------------------------------


def serve_stack(argv: list[str]) -> None:
    """Run redis-server, a connection worker and a gateway until SIGTERM; then stop them
    (gateway, worker, redis-server) and exit. Exits too when any of them dies."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker-cpu", default="")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="djwire-bench-gateway-"))
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_term(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        redis_port = run.free_port()
        (directory / "redis.conf").write_text(
            f"port {redis_port}\nbind 127.0.0.1\nprotected-mode no\ndir {directory}\n"
            f"save ''\nappendonly no\nlogfile {directory / 'redis.log'}\n"
        )
        children.append(subprocess.Popen(["redis-server", str(directory / "redis.conf")]))
        wait_redis(redis_port)
        env = dict(
            os.environ,
            BENCH_STACK="djwire",
            BENCH_REDIS_LAYER="djwire",
            BENCH_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            BENCH_REDIS_CAPACITY="1000",
            DJANGO_SETTINGS_MODULE="split_settings",
            PYTHONPATH=os.pathsep.join([str(PROJECT), str(HERE)]),
            PYTHONUNBUFFERED="1",
        )
        worker = [sys.executable, "-m", "django", "runworker", "--connections", "--noreload"]
        if args.worker_cpu:
            worker = ["taskset", "-c", args.worker_cpu, *worker]
        children.append(subprocess.Popen(worker, env=env, cwd=PROJECT))
        gateway = [
            sys.executable, "-m", "djwire", "serve", "--gateway", "--host", run.HOST,
            "--port", str(args.port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        children.append(subprocess.Popen(gateway, env=env, cwd=PROJECT))
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.1)
    finally:
        for child in reversed(children):  # gateway, worker, then redis-server
            stop_child(child)
        shutil.rmtree(directory, ignore_errors=True)


def wrk_total(cpu: str, port: int, seconds: float) -> dict[str, Any]:
    """wrk -c64 with no warm-up: requests in all and per second."""
    url = f"http://{run.HOST}:{port}/hello/"
    command = ["taskset", "-c", cpu, "wrk", "-t1", "-c64", f"-d{seconds:g}s", url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not total or not rate:
        return {"error": f"cannot parse wrk output: {out[-500:]}"}
    return {"requests": int(total.group(1)), "req_per_s": float(rate.group(1))}


def redis_commands(port: int) -> dict[str, int]:
    """Calls so far of each Redis command (INFO commandstats)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def wait_redis(port: int, timeout: float = 10) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5).ping():
                return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(8)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


# -- report ------------------------------------------------------------------------------

#: (workload, metric label, per server CPU-s result path): gateway mode >= daphne in-process
TARGETS = [
    ("w1", "1 client msgs/s", ("c1", "msgs_per_server_cpu_s")),
    ("w1", "100 clients msgs/s", ("c100", "msgs_per_server_cpu_s")),
    ("w4", "requests/s", ("req_per_server_cpu_s",)),
]
TITLES = {"w1": "W1 — WebSocket echo, 64-byte text", "w4": "W4 — Django hello view, wrk -c64"}


def section_lines(data: dict[str, Any] | None = None) -> list[str]:
    """The "Gateway mode" section of RESULTS.md, from gateway_results.json."""
    if data is None:
        if not RESULTS_JSON.exists():
            return []
        data = json.loads(RESULTS_JSON.read_text())
    args = argparse.Namespace(**data["args"])
    results = run.Results(data["samples"])
    present = [row for row in rows(args) if any(row.key in r for r in data["samples"].values())]
    lines = [
        SECTION,
        "",
        f"Generated by `bench/.venv/bin/python bench/gateway.py {' '.join(data['argv'])}` on "
        f"{data['when']} ({data['minutes']:.0f} min). Medians of {args.runs} runs, rows "
        "interleaved; same workloads and load generator as W1 and W4 above, but measured "
        "in this separate run, so compare within these tables.",
        "",
        f"- Load average (1 min) before/after: {data['loads']}; other users' CPU per "
        "measurement in the last column of each table.",
        f"- Versions: {data['versions']}.",
        f"- Pinning: every server process on core {args.server_cpu} — for the gateway row "
        f"that is the gateway (`djwire serve --gateway`), the worker (`python -m django "
        f"runworker --connections`) and redis-server together, the CPU the in-process "
        f"stacks get alone; the load generator on core {args.client_cpu}. The *spread* row "
        f"moves the worker to core {args.client_cpu}, where it competes with the load "
        "generator: it is not a like-for-like row.",
        "- Gateway stack settings: bench/split_settings.py (djwire's RedisChannelLayer, "
        "`DJWIRE_GATEWAY` defaults). In-process rows: bench/project's own settings "
        "(in-memory layer), as in the tables above.",
        "",
    ]
    for workload in ("w1", "w4"):
        if workload not in data["samples"]:
            continue
        body = run.table(results, workload, present)
        noise = [
            f"{row.key} {statistics.median(loads):.2f}"
            for row in present
            if (
                loads := [
                    r.get("foreign_load", 0.0) for r in data["samples"][workload].get(row.key, [])
                ]
            )
        ]
        lines += [
            f"### {TITLES[workload]}",
            "",
            *body,
            "",
            "Other users' cores (median): " + ", ".join(noise) + ".",
            "",
        ]
    lines += [
        "### Targets (issue 9, item 7): gateway mode at least as fast as daphne in-process",
        "",
        "The status is judged on the per-second medians. The machine is shared: when "
        "other users' processes take part of the server core, a stack of three processes "
        "can get a bigger share of it than a single process, so the ratio of work per server "
        "CPU-second (the stack's processes' own CPU time) is given too.",
        "",
        "| metric | gateway (all on one core) | daphne in-process | ratio | "
        "ratio per server CPU-s | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for workload, label, per_cpu in TARGETS:
        ours = results.by_label(workload, "djwire-gateway", label)
        peer = results.by_label(workload, "daphne", label)
        if ours is None or not peer:
            lines.append(f"| {workload.upper()} {label} | n/a | n/a | n/a | n/a | not measured |")
            continue
        ratio = ours / peer
        metric = run.Metric(workload, per_cpu, "", True)
        ours_cpu = results.median(workload, "djwire-gateway", metric)
        peer_cpu = results.median(workload, "daphne", metric)
        cpu_ratio = f"{ours_cpu / peer_cpu:.2f}x" if ours_cpu and peer_cpu else "n/a"
        status = "met" if ratio >= 1 else f"MISSED by {1 - ratio:.0%}"
        lines.append(
            f"| {workload.upper()} {label} | {run.fmt(ours)} | {run.fmt(peer)} "
            f"| {ratio:.2f}x | {cpu_ratio} | {status} |"
        )
    errors = [
        f"- {workload} {key} run {n}: {error[:500]}"
        for workload, by_row in data["samples"].items()
        for key, runs in by_row.items()
        for n, result in enumerate(runs, 1)
        for error in run.errors_of(result)
    ]
    if errors:
        lines += ["", "Errors and incomplete runs:", "", *errors]
    notes = HERE / "NOTES-gateway.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    lines += ["", "Raw per-run results: bench/gateway_results.json.", ""]
    return lines


def write_section(lines: list[str]) -> None:
    """Put the section into RESULTS.md: in place of the old one, or before "## Noise"."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    block = "\n".join(lines).rstrip() + "\n\n"
    start = text.find(SECTION + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + (text[end + 1 :] if end >= 0 else "")
    else:
        anchor = text.find("## Noise")
        text = text[:anchor] + block + text[anchor:] if anchor >= 0 else text + "\n" + block
    RESULTS_MD.write_text(text)


# -- profiling ---------------------------------------------------------------------------


def profile(args: argparse.Namespace) -> None:
    """py-spy on the gateway and on the worker while one workload runs on the gateway
    stack; CPU seconds of each process of the stack. Writes
    bench/profiles/gateway-<workload>-{gateway,worker}.txt (and .raw)."""
    import psutil
    import spy

    row = next(r for r in rows(args) if r.key == "djwire-gateway")
    server = run.RunningServer(row.server, args.server_cpu, f"profile-gateway-{args.profile}")
    spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        server.wait_ready()
        processes = {"redis-server": None, "gateway": None, "worker": None}
        for child in psutil.Process(server.pid).children(recursive=True):
            line = " ".join(child.cmdline())
            if "--gateway" in line:
                processes["gateway"] = child
            elif "runworker" in line:
                processes["worker"] = child
            elif "redis-server" in line:
                processes["redis-server"] = child
        spy.PROFILES.mkdir(exist_ok=True)
        for name in ("gateway", "worker"):
            raw = spy.PROFILES / f"gateway-{args.profile}-{name}.raw"
            command = [
                str(run.VENV_BIN / "py-spy"), "record", "--pid", str(processes[name].pid),
                "--rate", "200", "--format", "raw", "--output", str(raw), "--duration", "60",
                "--nonblocking",
            ]  # fmt: skip
            if args.native:
                command.append("--native")
            spies[name] = (subprocess.Popen(["taskset", "-c", args.client_cpu, *command]), raw)
        time.sleep(1)
        redis_port = next(
            c.laddr.port
            for c in processes["redis-server"].net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        )
        commands_before = redis_commands(redis_port)
        before = {n: p.cpu_times() for n, p in processes.items() if p is not None}
        t0 = time.monotonic()
        if args.profile == "w4":
            result = wrk_total(args.client_cpu, server.port, args.seconds * 2)
        else:
            clients = "1" if args.profile == "w1-1" else "100"
            result = run.loadgen(
                args.client_cpu, "echo", "--port", str(server.port), "--clients", clients,
                "--seconds", str(args.seconds), "--warmup", "0",
            )  # fmt: skip
        wall = time.monotonic() - t0
        cpu = {
            n: (p.cpu_times().user + p.cpu_times().system - before[n].user - before[n].system)
            for n, p in processes.items()
            if p is not None
        }
        commands = redis_commands(redis_port)
        for name, calls in commands_before.items():
            commands[name] = commands.get(name, 0) - calls
    finally:
        for process, _ in spies.values():
            process.send_signal(signal.SIGINT)
            process.wait(60)
        server.stop()
    split = ", ".join(f"{n} {c / wall:.2f} cores" for n, c in cpu.items())
    units = result.get("requests") or result.get("messages") or 0
    split += "; redis commands per " + ("request" if args.profile == "w4" else "message") + ": "
    split += ", ".join(
        f"{name} {calls / units:.2f}"
        for name, calls in sorted(commands.items(), key=lambda item: -item[1])
        if calls and units
    )
    print(f"{args.profile}: {json.dumps(result)[:300]}\nCPU while loaded: {split}")
    for name, (_, raw) in spies.items():
        text = spy.summarize(raw.read_text(), 45)
        path = raw.with_suffix(".txt")
        path.write_text(
            f"# gateway stack, {args.profile}, the {name} process\n# load result: {result}\n"
            f"# CPU of the stack's processes during the load (wall {wall:.1f} s): {split}\n\n"
            + text
        )
        print(f"wrote {path}")


# -- main --------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_stack":
        serve_stack(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="w1,w4")
    parser.add_argument("--rows", default="", help="only these row keys (comma-separated)")
    parser.add_argument("--seconds", type=float, default=5, help="W1 per client count; W4 x2")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--max-foreign-load", type=float, default=0.25)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--from-json", action="store_true", help="only rewrite the section")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--profile",
        choices=("w1-1", "w1-100", "w4"),
        help="measure nothing: py-spy the gateway stack's gateway and worker under this load",
    )
    parser.add_argument("--native", action="store_true", help="--profile: with C frames")
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return
    if args.from_json:
        write_section(section_lines())
        print(f"wrote the gateway section of {RESULTS_MD} from {RESULTS_JSON.name}")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: servers are stopped
    os.sched_setaffinity(0, {int(args.client_cpu)})
    workloads = [w for w in args.workloads.split(",") if w]
    only = {r for r in args.rows.split(",") if r}
    started, load_before = time.time(), os.getloadavg()[0]
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for number in range(1, args.runs + 1):
        for workload in workloads:
            for row in rows(args):
                if only and row.key not in only:
                    continue
                t0 = time.monotonic()
                result = run.measure(workload, row, number, args)
                result["loadavg"] = round(os.getloadavg()[0], 2)
                samples.setdefault(workload, {}).setdefault(row.key, []).append(result)
                print(
                    f"[run {number}] {workload} {row.key} ({time.monotonic() - t0:.0f}s): "
                    f"{json.dumps(result)[:400]}",
                    flush=True,
                )
    data = {
        "argv": sys.argv[1:],
        "args": vars(args),
        "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "minutes": (time.time() - started) / 60,
        "loads": f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
        "versions": run.versions(),
        "samples": samples,
    }
    lines = section_lines(data)
    print("\n".join(lines))
    if args.no_write:
        return
    RESULTS_JSON.write_text(json.dumps(data, indent=1))
    write_section(lines)
    print(f"wrote {RESULTS_JSON.name} and the gateway section of {RESULTS_MD}")


if __name__ == "__main__":
    main()
