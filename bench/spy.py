"""Profile one benchmark row's server with py-spy while its workload runs.

    bench/.venv/bin/python bench/spy.py w1 djwire            # W1, 100 clients
    bench/.venv/bin/python bench/spy.py w2 djwire-direct
    bench/.venv/bin/python bench/spy.py w4 djwire

Writes bench/profiles/<workload>-<row>.raw (py-spy collapsed stacks, for flame
graph tools) and .txt (functions by own and by total sample share, and with
--native the syscalls by the Python line that made them), using the same server
command, pinning and load generator as bench/run.py. Profiles sample one run:
read shares, not absolute times (py-spy slows the server while it samples, and
ptrace sampling over-represents time spent in system calls).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

PROFILES = bench.BENCH / "profiles"


#: Leaf frames of threads that are only waiting for work (py-spy does not always see
#: them as idle): their samples are left out.
WAITING = (
    "_worker (concurrent/futures/thread.py:81)",
    "wait (threading.py:",
    "ThreadPool._work (djwire/django_http/thread_pool.py:",
)
#: C frames of a thread blocked on a lock or queue (with --native).
BLOCKED = ("PyThread_acquire_lock_timed", "_queue_SimpleQueue_get")


def summarize(raw: str, top: int) -> str:
    """Own and total shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    syscalls: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        python = [f for f in frames if ".py:" in f]
        if not frames or (python and python[-1].startswith(WAITING)):
            continue
        if any(f.startswith(BLOCKED) for f in frames):
            continue
        samples += count
        own[frames[-1]] += count
        if "libc" in frames[-1]:
            leaf = frames[-1].split(" ")[0]
            syscalls[f"{leaf} <- {python[-1] if python else '?'}"] += count
        for frame in set(frames):
            total[frame] += count
    out = [
        f"{samples} samples (threads waiting for work left out)",
        "",
        "own %  function (file:line)",
    ]
    out += [f"{100 * n / samples:5.1f}  {name}" for name, n in own.most_common(top)]
    out += ["", "total %  function (file:line)"]
    out += [f"{100 * n / samples:5.1f}  {name}" for name, n in total.most_common(top)]
    if syscalls:
        out += ["", "own %  C leaf in libc <- nearest Python frame (with --native)"]
        out += [f"{100 * n / samples:5.1f}  {k}" for k, n in syscalls.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=sorted(bench.ROWS))
    parser.add_argument("row")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", type=int, default=100, help="W1 clients")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--native", action="store_true", help="include C frames (uvloop etc.)")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument(
        "--from-raw", action="store_true", help="only summarize the existing .raw again"
    )
    args = parser.parse_args()
    if args.from_raw:
        name = f"{args.workload}-{args.row}"
        text = summarize((PROFILES / f"{name}.raw").read_text(), args.top)
        (PROFILES / f"{name}.txt").write_text(f"# {name}\n\n{text}")
        print(text)
        return
    row = next((r for r in bench.ROWS[args.workload] if r.key == args.row), None)
    if row is None:
        keys = ", ".join(r.key for r in bench.ROWS[args.workload])
        raise SystemExit(f"unknown row {args.row!r} for {args.workload}; one of: {keys}")

    PROFILES.mkdir(exist_ok=True)
    name = f"{args.workload}-{row.key}"
    server = bench.RunningServer(row.server, args.server_cpu, f"profile-{name}")
    try:
        server.wait_ready()
        raw_path = PROFILES / f"{name}.raw"
        spy = [
            str(bench.VENV_BIN / "py-spy"), "record", "--pid", str(server.pid),
            "--rate", str(args.rate), "--format", "raw", "--output", str(raw_path),
            "--duration", str(int(args.seconds + 30)), "--subprocesses",
        ]  # fmt: skip
        if args.native:
            spy.append("--native")
        # py-spy runs on the load generator's core so that it does not steal the server's.
        profiler = subprocess.Popen(["taskset", "-c", args.client_cpu, *spy])
        time.sleep(1)
        port = str(server.port)
        pid = str(server.pid)
        if args.workload == "w1":
            load = ["echo", "--port", port, "--clients", str(args.clients)]
            result = bench.loadgen(
                args.client_cpu, *load, "--seconds", str(args.seconds), "--server-pid", pid
            )
        elif args.workload == "w2":
            load = ["group", "--port", port, "--mode", row.group_mode, "--server-pid", pid]
            result = bench.loadgen(args.client_cpu, *load, "--paced", "200", "--burst", "200")
        elif args.workload == "w4":
            result = bench.wrk(args.client_cpu, server.port, args.seconds, 64, server.pid)
        else:
            load = ["idle", "--port", port, "--server-pid", pid]
            result = bench.loadgen(args.client_cpu, *load)
        profiler.send_signal(2)  # SIGINT: py-spy writes what it has
        profiler.wait(60)
        print(result)
    finally:
        server.stop()
    raw = raw_path.read_text()
    (PROFILES / f"{name}.txt").write_text(
        f"# {name}: {row.label}\n# load result: {result}\n\n" + summarize(raw, args.top)
    )
    print(f"wrote {PROFILES / (name + '.txt')}")


if __name__ == "__main__":
    main()
