"""Workers on named channels (issue 9, item 1): djwire's runworker vs Channels', same run.

Every row: a private redis-server, the benchmark project (bench/project) on a Redis
channel layer (bench/split_settings.py), and real ``runworker`` processes
(``python -m django runworker``, what ``manage.py runworker`` runs). The task consumer
is an ``AsyncConsumer`` (or ``SyncConsumer``) behind ``ChannelNameRouter`` whose
handler only counts (benchproj/tally.py): the consumer notes the monotonic time of
its first and last message and how often it handled each message number, so the rate
is the consumer's own (messages / (last - first)) and "each message exactly once" is
checked message by message.

Rows:

* ``djwire-async``, ``djwire-sync``, ``djwire-reliable``: one
  ``runworker CHANNEL --concurrency 32`` draining a backlog of ``--count`` messages
  that a feeding process put on the channel beforehand. ``bench.reliable`` is in
  ``DJWIRE_RELIABLE_CHANNELS`` (taken with leases, acknowledged after the handler).
* ``djwire-live``: the worker starts first; then the feeder sends ``--count``
  messages (64 sends in flight) while the worker consumes them.
* ``channels-async``, ``channels-sync``: Channels 4.3's ``runworker`` with
  channels_redis, draining a backlog of ``--channels-count`` messages (it is slow, so
  fewer: the rate does not depend on the backlog's size).
* ``fairness``: three djwire workers on one channel, started on an empty channel; the
  feeder then sends ``--count`` messages. Each worker's share, and every message handled
  exactly once across the three.

Plus, once per invocation, ``idle``: a djwire and a Channels worker on an empty channel
for ``--idle-seconds``; still running afterwards? (issue 9: Channels' runworker dies
after ~5 s idle on redis-py 8).

Pinning (2 cores): the consuming worker(s) alone on core 0 (``--worker-cpu``);
redis-server and the feeder on core 1 (``--feed-cpu``). Rows are interleaved,
``--runs`` times; medians. Each measurement records the CPU time other users'
processes took meanwhile and is repeated (at most ``--attempts`` times) when that was
more than 0.25 of a core. Every wait is bounded; only loopback is used; everything
started is stopped, also on Ctrl-C.

    bench/.venv/bin/python bench/workers.py [--runs 3] [--rows djwire-async,channels-async]
    bench/.venv/bin/python bench/workers.py --from-json    # rewrite the report only

Writes bench/RESULTS-workers.md and bench/workers_results.json (raw runs); logs in
bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
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
ROOT = HERE.parent
PROJECT = HERE / "project"
OUT = HERE / "out"
RESULTS_JSON = HERE / "workers_results.json"
RESULTS_MD = HERE / "RESULTS-workers.md"
TEXT = "x" * 64
#: sends in flight in the feeder (below redis-py 8's 100-connection cap for channels_redis)
WINDOW = 64
CONCURRENCY = 32
sys.path.insert(0, str(ROOT))  # tests.support.redis_servers starts the servers
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py: versions, machine)


@dataclass(frozen=True)
class Row:
    label: str
    stack: str  # djwire | channels
    channel: str
    mode: str  # backlog | live | fairness
    workers: int = 1


ROWS: dict[str, Row] = {
    "djwire-async": Row(
        "djwire runworker, AsyncConsumer, backlog", "djwire", "bench.async", "backlog",
    ),
    "djwire-sync": Row(
        "djwire runworker, SyncConsumer (threads), backlog", "djwire", "bench.sync", "backlog",
    ),
    "djwire-reliable": Row(
        "djwire runworker, AsyncConsumer, reliable channel (leases + acks), backlog",
        "djwire", "bench.reliable", "backlog",
    ),
    "djwire-live": Row(
        "djwire runworker, AsyncConsumer, fed at the same time by another process",
        "djwire", "bench.async", "live",
    ),
    "channels-async": Row(
        "Channels 4.3 runworker + channels_redis, AsyncConsumer, backlog",
        "channels", "bench.async", "backlog",
    ),
    "channels-sync": Row(
        "Channels 4.3 runworker + channels_redis, SyncConsumer, backlog",
        "channels", "bench.sync", "backlog",
    ),
    "fairness": Row(
        "3 djwire workers on one channel, fed live", "djwire", "bench.async", "fairness", 3,
    ),
}  # fmt: skip

#: djwire row -> the Channels row it is compared with
PEERS = {
    "djwire-async": "channels-async",
    "djwire-sync": "channels-sync",
    "djwire-reliable": "channels-async",
    "djwire-live": "channels-async",
}


# -- child: the feeder --------------------------------------------------------------------


async def feed(stack: str, channel: str, start: int, count: int, budget: float) -> dict[str, Any]:
    """Send messages ``start .. start+count-1`` to ``channel``, ``WINDOW`` in flight."""
    import django

    django.setup()
    if stack == "djwire":
        from djwire.layers import get_channel_layer
    else:
        from channels.layers import get_channel_layer
    layer = get_channel_layer()
    await layer.send("bench.warmup", {"type": "bench.warmup"})  # connect before the clock
    failures: list[str] = []
    window = asyncio.Semaphore(WINDOW)
    pending: set[asyncio.Future[None]] = set()

    async def one(number: int) -> None:
        try:
            await layer.send(channel, {"type": "bench.task", "i": number, "text": TEXT})
        except Exception as exc:
            failures.append(repr(exc)[:200])
        finally:
            window.release()

    started = time.monotonic_ns()
    deadline = time.monotonic() + budget
    sent = 0
    for number in range(start, start + count):
        if time.monotonic() > deadline:
            break
        await window.acquire()
        task = asyncio.ensure_future(one(number))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    await asyncio.gather(*pending)
    ended = time.monotonic_ns()
    if stack == "djwire":
        await layer.close()
    return {
        "sent": sent - len(failures),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "start_ns": started,
        "end_ns": ended,
        "per_second": (sent - len(failures)) / ((ended - started) / 1e9),
    }


def child(argv: list[str]) -> None:
    import uvloop

    stack, channel, start, count, budget = argv
    result = uvloop.run(feed(stack, channel, int(start), int(count), float(budget)))
    print(json.dumps(result), flush=True)


# -- processes ----------------------------------------------------------------------------


class Stack:
    """What one measurement starts: a redis-server, workers, feeders. ``close()`` stops
    all of it (also when the measurement is interrupted)."""

    def __init__(self, args: argparse.Namespace, tag: str) -> None:
        from tests.support.redis_servers import RedisServer

        self.args = args
        self.tag = tag
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.tally = Path(tempfile.mkdtemp(prefix="djwire-bench-tally-"))
        self.redis = RedisServer(cpu=args.feed_cpu)
        self.redis.start()

    def env(self, stack: str, size: int) -> dict[str, str]:
        return dict(
            os.environ,
            BENCH_STACK=stack,
            BENCH_REDIS_LAYER="djwire" if stack == "djwire" else "core",
            BENCH_REDIS_URL=self.redis.url,
            BENCH_TALLY_DIR=str(self.tally),
            BENCH_TALLY_SIZE=str(size),
            DJANGO_SETTINGS_MODULE="split_settings",
            PYTHONPATH=os.pathsep.join([str(PROJECT), str(HERE)]),
            PYTHONUNBUFFERED="1",
        )

    def start(
        self, command: list[str], cpu: str, env: dict[str, str], name: str
    ) -> subprocess.Popen[bytes]:
        OUT.mkdir(exist_ok=True)
        log = OUT / f"workers-{self.tag}-{name}-{os.getpid()}.log"
        self.logs.append(log)
        with log.open("w") as out:
            process = subprocess.Popen(
                ["taskset", "-c", cpu, *command], cwd=PROJECT, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def worker(self, stack: str, channel: str, size: int, name: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "django", "runworker", channel]
        if stack == "djwire":
            command += ["--concurrency", str(self.args.concurrency), "--noreload"]
        return self.start(command, self.args.worker_cpu, self.env(stack, size), name)

    def feeder(self, stack: str, channel: str, start: int, count: int) -> subprocess.Popen[bytes]:
        env = self.env(stack, 0)
        command = [sys.executable, __file__, "_feed", stack, channel, str(start), str(count)]
        command.append(str(self.args.budget))
        process = subprocess.Popen(
            ["taskset", "-c", self.args.feed_cpu, *command], cwd=PROJECT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            stop(process)
        self.redis.cleanup()
        shutil.rmtree(self.tally, ignore_errors=True)


def stop(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # our own child's session
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def feeder_result(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    if process.returncode:
        raise RuntimeError(f"feeder exited {process.returncode}: {err.decode()[-1500:]}")
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def redis_usage(stack: Stack) -> dict[str, float]:
    """redis-server's CPU seconds so far and its calls of each command."""
    from gateway import redis_commands

    usage: dict[str, float] = dict(redis_commands(stack.redis.port))
    assert stack.redis.process is not None
    usage["cpu_s"] = cpu_seconds(stack.redis.process.pid)
    return usage


def wait_log(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"worker not ready ({text!r}):\n{path.read_text(errors='replace')[-2000:]}")


def tallies(directory: Path) -> dict[int, dict[str, Any]]:
    found = {}
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            found[int(path.stem)] = json.loads(path.read_text())
    return found


def cpu_seconds(pid: int) -> float:
    import psutil

    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return float("nan")


def wait_drained(
    stack: Stack, workers: list[subprocess.Popen[bytes]], count: int, budget: float
) -> tuple[dict[int, dict[str, Any]], dict[int, float], str | None]:
    """Until the consumers together handled ``count`` messages (or nothing happened for
    10 s, or ``budget`` s passed, or a worker died): the tallies, the workers' CPU
    seconds when the last message was handled, and why it stopped early (or None)."""
    deadline = time.monotonic() + budget
    last_total, last_change = -1, time.monotonic()
    while True:
        found = tallies(stack.tally)
        total = sum(t["handled"] for t in found.values())
        if total >= count:
            cpu = {p.pid: cpu_seconds(p.pid) for p in workers}
            return found, cpu, None
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        dead = [p for p in workers if p.poll() is not None]
        problem = None
        if dead:
            problem = f"{len(dead)} worker(s) exited (code {dead[0].returncode})"
        elif now - last_change > 10 and total > 0:
            problem = "no message handled for 10 s"
        elif now > deadline:
            problem = f"budget of {budget:g} s used up"
        if problem:
            cpu = {p.pid: cpu_seconds(p.pid) for p in workers}
            return found, cpu, f"{problem}; handled {total} of {count}"
        time.sleep(0.05)


def log_tail(stack: Stack, limit: int = 1500) -> str:
    return "\n".join(
        f"== {log.name}\n{log.read_text(errors='replace')[-limit:]}" for log in stack.logs
    )


# -- measurements -------------------------------------------------------------------------


def measure(key: str, number: int, attempt: int, args: argparse.Namespace) -> dict[str, Any]:
    row = ROWS[key]
    count = args.channels_count if row.stack == "channels" else args.count
    stack = Stack(args, f"{key}-run{number}-{attempt}")
    try:
        if row.mode == "backlog":
            feeder = stack.feeder(row.stack, row.channel, 0, count)
            fed = feeder_result(feeder, args.budget + 60)
            redis_before = redis_usage(stack)
            worker = stack.worker(row.stack, row.channel, count, "worker")
            workers = [worker]
        else:
            workers = [
                stack.worker(row.stack, row.channel, count, f"worker{n}")
                for n in range(row.workers)
            ]
            for log, worker in zip(stack.logs, workers, strict=True):
                wait_log(log, "Running worker", worker, 60)
            time.sleep(1)  # the takers are waiting on the channel
            redis_before = redis_usage(stack)
            feeder = stack.feeder(row.stack, row.channel, 0, count)
            fed = None
        found, cpu_end, problem = wait_drained(stack, workers, count, args.budget)
        redis_after = redis_usage(stack)
        if fed is None:
            fed = feeder_result(feeder, 60)
        result = summarize(found, cpu_end, workers, count, stack.tally)
        result["feeder"] = fed
        result["mode"] = row.mode
        # Application instances that died (Channels logs "Exception inside application").
        result["app_exceptions"] = sum(
            log.read_text(errors="replace").count("Exception inside application")
            for log in stack.logs
        )
        # Redis's side of the drain (the feeder's sends too, in the live rows).
        result["redis"] = {
            name: round(redis_after.get(name, 0) - redis_before.get(name, 0), 3)
            for name in redis_after
            if redis_after.get(name, 0) != redis_before.get(name, 0)
        }
        # How each worker takes SIGTERM once idle (djwire: a graceful stop, exit 0).
        for worker in workers:
            stop(worker)
        result["exit_codes_on_sigterm"] = [worker.returncode for worker in workers]
        if problem:
            result["error"] = f"{problem}\n{log_tail(stack)}"
        return result
    finally:
        stack.close()


def summarize(
    found: dict[int, dict[str, Any]],
    cpu_end: dict[int, float],
    workers: list[subprocess.Popen[bytes]],
    count: int,
    tally: Path,
) -> dict[str, Any]:
    handled = sum(t["handled"] for t in found.values())
    result: dict[str, Any] = {"count": count, "handled": handled}
    if not found:
        return result
    first = min(t["first_ns"] for t in found.values())
    last = max(t["last_ns"] for t in found.values())
    seconds = (last - first) / 1e9
    result["seconds"] = seconds
    result["msgs_per_s"] = handled / seconds if seconds > 0 else None
    # The worker's CPU time when the last message was handled (psutil); for a worker
    # that has died, the one its tally wrote last.
    worker_cpu = sum(
        (cpu if (cpu := cpu_end.get(pid, math.nan)) == cpu else t.get("cpu", math.nan))
        - t["first_cpu"]
        for pid, t in found.items()
    )
    result["worker_cpu_s"] = worker_cpu
    result["msgs_per_worker_cpu_s"] = handled / worker_cpu if worker_cpu > 0 else None
    # Message by message: how many times each was handled, over all workers.
    times = bytearray(count)
    for pid in found:
        seen = (tally / f"{pid}.seen").read_bytes()
        for number, n in enumerate(seen):
            if n:
                times[number] += n
    result["missing"] = times.count(0)
    result["duplicates"] = count - result["missing"] - times.count(1)
    result["out_of_range"] = sum(t["out_of_range"] for t in found.values())
    shares = [found[p.pid]["handled"] / count if p.pid in found else 0.0 for p in workers]
    result["shares"] = shares
    if len(workers) > 1:
        result["max_share_deviation"] = max(abs(share * len(workers) - 1) for share in shares)
    return result


def measure_idle(args: argparse.Namespace) -> dict[str, Any]:
    """A djwire and a Channels worker, each on its empty channel, for ``idle_seconds``."""
    stack = Stack(args, "idle")
    try:
        workers = {
            "djwire": stack.worker("djwire", "bench.async", 0, "idle-djwire"),
            "channels": stack.worker("channels", "bench.async", 0, "idle-channels"),
        }
        started = time.monotonic()
        exited: dict[str, float | None] = dict.fromkeys(workers)
        while time.monotonic() - started < args.idle_seconds:
            for name, process in workers.items():
                if exited[name] is None and process.poll() is not None:
                    exited[name] = time.monotonic() - started
            time.sleep(0.1)
        # Still able to work afterwards? One message each.
        result: dict[str, Any] = {"idle_seconds": args.idle_seconds}
        for name, process in workers.items():
            log = next(
                path for path in stack.logs if path.name.startswith(f"workers-idle-idle-{name}")
            )
            text = log.read_text(errors="replace")
            result[name] = {
                "alive": process.poll() is None,
                "exited_after_s": None if exited[name] is None else round(exited[name], 1),
                "exit_code": process.returncode,
                "last_error": last_error_line(text),
            }
        return result
    finally:
        stack.close()


def last_error_line(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line.strip()[:300]
    return None


# -- profiling ---------------------------------------------------------------------------


def profile(key: str, args: argparse.Namespace) -> None:
    """py-spy on one worker draining a backlog (``key``: a backlog row). Writes
    bench/profiles/worker-<key>.txt (and .raw): shares of the samples taken while the
    worker's event loop ran (start-up left out)."""
    import spy

    row = ROWS[key]
    if row.mode != "backlog":
        raise SystemExit(f"--profile takes a backlog row, not {key}")
    count = args.channels_count if row.stack == "channels" else args.count
    stack = Stack(args, f"profile-{key}")
    spy.PROFILES.mkdir(exist_ok=True)
    raw = spy.PROFILES / f"worker-{key}.raw"
    try:
        fed = feeder_result(stack.feeder(row.stack, row.channel, 0, count), args.budget + 60)
        command = [sys.executable, "-m", "django", "runworker", row.channel]
        if row.stack == "djwire":
            command += ["--concurrency", str(args.concurrency), "--noreload"]
        # --native needs py-spy to pause the process for each sample (slower, but it
        # tells C frames and idle waits apart); otherwise sample without pausing.
        how = ["--native"] if args.native else ["--nonblocking"]
        recorder = [
            str(Path(sys.executable).parent / "py-spy"), "record", *how, "--rate", "250",
            "--format", "raw", "--output", str(raw), "--subprocesses", "--",
            "taskset", "-c", args.worker_cpu, *command,
        ]  # fmt: skip
        spyer = stack.start(recorder, args.feed_cpu, stack.env(row.stack, count), "py-spy")
        found, cpu, problem = wait_drained(stack, [spyer], count, args.budget)
        result = summarize(found, cpu, [], count, stack.tally)
        for pid in found:  # the worker: py-spy writes its output once it has exited
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        spyer.wait(30)
    finally:
        stack.close()
    # Keep the samples of the running worker (its loop and handler threads), not those
    # of Django's start-up.
    running = ("run_until_signalled", "StatelessServer", "concurrent/futures/thread.py")
    lines = [
        line for line in raw.read_text().splitlines() if any(mark in line for mark in running)
    ]
    text = spy.summarize("\n".join(lines), 45)
    brief = {k: result.get(k) for k in ("handled", "msgs_per_s", "seconds")}
    header = (
        f"# worker profile, row {key}: {row.label}\n# {brief}; feeder {fed['per_second']:,.0f} "
        f"sends/s{'; ' + problem if problem else ''}\n# py-spy {' '.join(how)}; the rate "
        "is lower than in the benchmark (py-spy shares the feeder's core and slows the "
        "worker)\n\n"
    )
    path = raw.with_suffix(".txt")
    path.write_text(header + text)
    print(header + text[:3000])
    print(f"wrote {path}")


# -- noise -------------------------------------------------------------------------------


def calm(work: Any, attempts: int) -> dict[str, Any]:
    """``work(attempt)``, repeated while other users disturbed it (redis_noise); each
    result also gets the load average before/after and its attempt number."""
    from redis_noise import calm_measurement

    tries = itertools.count(1)

    def once() -> dict[str, Any]:
        attempt = next(tries)
        load_before = os.getloadavg()[0]
        result: dict[str, Any] = work(attempt)
        result["loadavg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        result["attempt"] = attempt
        return result

    return calm_measurement(once, attempts)


# -- report ------------------------------------------------------------------------------


def versions() -> str:
    """run.py's line (djwire's commit and the packages), with Redis's side added."""
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    version = next((w[2:] for w in server.stdout.split() if w.startswith("v=")), "?")
    names = ["django", "asgiref", "channels", "channels_redis", "redis", "hiredis", "msgpack",
             "uvloop"]  # fmt: skip
    return f"redis-server {version}; " + run.versions(names)


def median(samples: list[dict[str, Any]], key: str) -> float | None:
    # Incomplete runs count too (their rate is the consumer's own); the report lists them.
    values = [s[key] for s in samples if isinstance(s.get(key), (int, float))]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def report(data: dict[str, Any]) -> str:
    args = data["args"]
    samples: dict[str, list[dict[str, Any]]] = data["samples"]
    lines = [
        "# Workers on named channels: djwire runworker vs Channels runworker (issue 9)",
        "",
        f"Generated by `bench/.venv/bin/python bench/workers.py {' '.join(data['argv'])}` on "
        f"{data['when']} ({data['minutes']:.0f} min). Medians of {args['runs']} runs; "
        "rows interleaved within each run.",
        "",
        f"- Machine: {data['machine']}; load average (1 min) before/after the whole "
        f"invocation: {data['loads']}; per measurement in the tables below. The machine is "
        "shared with other engineers' tests, so the per-second numbers move with their load; "
        "the per worker CPU-second column does much less.",
        f"- Versions: {data['versions']}.",
        f"- Pinning: each worker process on core {args['worker_cpu']} (the three of the "
        f"fairness row share it); redis-server and the feeding process on core "
        f"{args['feed_cpu']}. One private redis-server per measurement.",
        "- Application: bench/project with `DJANGO_SETTINGS_MODULE=split_settings` "
        "(bench/split_settings.py: djwire's RedisChannelLayer or channels_redis's core "
        "RedisChannelLayer, capacity 200,000, expiry 600 s); `ChannelNameRouter` -> "
        "`AsyncTaskConsumer`/`SyncTaskConsumer` whose `bench_task` handler only counts "
        "(benchproj/tally.py). Messages are `{'type': 'bench.task', 'i': N, 'text': 64 bytes}`.",
        f"- Workers: `python -m django runworker CHANNEL` (= `manage.py runworker`); djwire's "
        f"with `--concurrency {args['concurrency']} --noreload`. djwire rows handle "
        f"{args['count']:,} messages, Channels rows {args['channels_count']:,}.",
        "",
        "## Rates",
        "",
        "msgs/s = messages handled / (last - first message, on the consumer's clock); per "
        "worker CPU-s = messages / the worker processes' CPU time from their first message "
        "to the last. 'exactly once' = every message number handled once in all, none twice.",
        "",
        "| row | msgs/s | min - max | per worker CPU-s | feeder sends/s | exactly once | "
        "others' cores | load avg before/after (per run) |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for key, row in ROWS.items():
        runs = samples.get(key)
        if not runs:
            continue
        rates = [r["msgs_per_s"] for r in runs if r.get("msgs_per_s")]
        feeder = [r["feeder"]["per_second"] for r in runs if r.get("feeder")]
        missing = sum(r.get("missing") or 0 for r in runs)
        twice = sum(r.get("duplicates") or 0 for r in runs)
        short = sum(1 for r in runs if r.get("missing") or r.get("duplicates"))
        once = "yes" if not short else f"NO: {missing:,} lost, {twice:,} twice ({short} runs)"
        loads = "; ".join(f"{r['loadavg'][0]:.1f}/{r['loadavg'][1]:.1f}" for r in runs)
        lines.append(
            f"| {row.label} | {fmt(median(runs, 'msgs_per_s'))} | "
            f"{fmt(min(rates) if rates else None)} - {fmt(max(rates) if rates else None)} | "
            f"{fmt(median(runs, 'msgs_per_worker_cpu_s'))} | "
            f"{fmt(statistics.median(feeder) if feeder else None)} | "
            f"{once} | {fmt(median(runs, 'foreign_cores'), 2)} | {loads} |"
        )
    codes = {
        key: sorted({c for r in runs for c in r.get("exit_codes_on_sigterm", [])})
        for key, runs in samples.items()
    }
    if codes:
        lines += [
            "",
            "Exit codes when the drained workers were sent SIGTERM (0: a graceful stop; "
            "-15: killed by the signal, whatever was in hand lost): "
            + "; ".join(f"{key} {', '.join(map(str, c))}" for key, c in codes.items() if c)
            + ".",
        ]
    lines += ["", "Ratios against Channels, same run (medians of the per-run ratios):", ""]
    for ours, peer in PEERS.items():
        a, b = samples.get(ours, []), samples.get(peer, [])
        for field, name in (
            ("msgs_per_s", "msgs/s"),
            ("msgs_per_worker_cpu_s", "per worker CPU-s"),
        ):
            ratios = [
                x[field] / y[field]
                for x, y in zip(a, b, strict=False)
                if x.get(field) and y.get(field)
            ]
            if ratios:
                lines.append(
                    f"- {ROWS[ours].label} / {ROWS[peer].label}, {name}: "
                    f"**{statistics.median(ratios):,.1f}x** (runs: "
                    + ", ".join(f"{r:,.1f}x" for r in ratios)
                    + ")"
                )
    lines += ["", *limit_lines(samples)]
    fair = samples.get("fairness", [])
    if fair:
        lines += [
            "",
            "## Fairness: three workers on one channel",
            "",
            f"Three djwire workers (`--concurrency {args['concurrency']}`), started on an empty "
            f"channel; then the feeder sends {args['count']:,} messages. Share = messages "
            "a worker handled / all; deviation = |share x 3 - 1| (target <= 10 %).",
            "",
            "| run | shares | max deviation | missing | handled twice | msgs/s (all three) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for n, r in enumerate(fair, 1):
            shares = ", ".join(f"{s:.1%}" for s in r.get("shares", []))
            deviation = 100 * r.get("max_share_deviation", float("nan"))
            lines.append(
                f"| {n} | {shares} | {fmt(deviation, 1)} % | "
                f"{r.get('missing', 'n/a')} | {r.get('duplicates', 'n/a')} | "
                f"{fmt(r.get('msgs_per_s'))} |"
            )
    lines += ["", "## Targets (issue 9, item 1)", "", *target_lines(samples), ""]
    idle = data.get("idle")
    if idle:
        lines += ["## Idle workers", "", *idle_lines(idle), ""]
    errors = [
        f"- {key} run {n}: {r['error'].splitlines()[0]}; "
        f"{r.get('app_exceptions', 'n/a')} application instance(s) died; last error "
        f"logged: `{last_error_line(r['error']) or 'none'}`"
        for key, runs in samples.items()
        for n, r in enumerate(runs, 1)
        if "error" in r
    ]
    if errors:
        lines += [
            "## Incomplete runs and errors",
            "",
            "A run stops early when a worker exits, nothing is handled for 10 s, or the "
            "budget is used up; its rate (on the consumer's clock) still counts in the "
            "medians.",
            "",
            *errors,
            "",
        ]
    notes = HERE / "NOTES-workers.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    lines += ["Raw per-run results: bench/workers_results.json.", ""]
    return "\n".join(lines)


def takes(result: dict[str, Any], stack: str) -> float | None:
    """Take calls (QUEUE_TAKE scripts) the djwire workers made, from Redis's counts."""
    redis = result.get("redis", {})
    if stack != "djwire" or "evalsha" not in redis:
        return None
    calls = redis["evalsha"]
    if result.get("feeder") and result.get("mode") != "backlog":
        calls -= result["feeder"].get("sent", 0)  # one script call per send
    return float(calls) if calls > 0 else None


def limit_lines(samples: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Where the time goes, per row: how busy the worker was, batch sizes, Redis's cost."""
    lines = [
        "## What limits the rate",
        "",
        "worker busy = msgs/s / msgs per worker CPU-s (the share of its core the worker "
        "used while draining; the rest of the time it waited: for Redis's replies, or for "
        "its core when other users' processes had it); messages "
        "per take = handled / the take scripts Redis ran (djwire; on reliable channels the "
        "acknowledgement scripts are counted too); Redis CPU per message from "
        "redis-server's own CPU time (the feeder's sends included in the live rows).",
        "",
        "| row | worker busy | messages per take | Redis CPU us per message |",
        "|---|---:|---:|---:|",
    ]
    for key, row in ROWS.items():
        runs = samples.get(key, [])
        if not runs:
            continue
        busy = [
            r["msgs_per_s"] / r["msgs_per_worker_cpu_s"] / row.workers
            for r in runs
            if r.get("msgs_per_s") and r.get("msgs_per_worker_cpu_s")
        ]
        batch = [r["handled"] / n for r in runs if (n := takes(r, row.stack))]
        redis_us = [
            1e6 * r["redis"]["cpu_s"] / r["handled"]
            for r in runs
            if r.get("handled") and "cpu_s" in r.get("redis", {})
        ]
        lines.append(
            f"| {row.label} | {fmt(100 * statistics.median(busy) if busy else None)} % | "
            f"{fmt(statistics.median(batch) if batch else None, 1)} | "
            f"{fmt(statistics.median(redis_us) if redis_us else None, 1)} |"
        )
    return lines


def target_lines(samples: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| target | measured (median) | status |", "|---|---:|---|"]

    def status(value: float | None, goal: float) -> str:
        if value is None:
            return "not measured"
        if value >= goal:
            return "met"
        return f"MISSED by {(goal - value) / goal:.0%}"

    rate = median(samples.get("djwire-async", []), "msgs_per_s")
    lines.append(
        f"| one worker, concurrency 32, >= 20,000 msgs/s | {fmt(rate)} | {status(rate, 20000)} |"
    )
    live = median(samples.get("djwire-live", []), "msgs_per_s")
    lines.append(
        f"| ... fed by another process at the same time, >= 20,000 msgs/s | {fmt(live)} | "
        f"{status(live, 20000)} |"
    )
    a, b = samples.get("djwire-async", []), samples.get("channels-async", [])
    ratios = [
        x["msgs_per_s"] / y["msgs_per_s"]
        for x, y in zip(a, b, strict=False)
        if x.get("msgs_per_s") and y.get("msgs_per_s")
    ]
    ratio = statistics.median(ratios) if ratios else None
    lines.append(
        f"| >= 10x Channels' runworker (same run) | {fmt(ratio, 1)}x | {status(ratio, 10)} |"
    )
    fair = samples.get("fairness", [])
    deviations = [r["max_share_deviation"] for r in fair if "max_share_deviation" in r]
    worst = max(deviations) if deviations else None
    verdict = (
        "not measured" if worst is None else ("met" if worst <= 0.10 else f"MISSED ({worst:.0%})")
    )
    lines.append(
        f"| three workers each a third +-10 % (worst run) | "
        f"{'n/a' if worst is None else f'{worst:.1%}'} | {verdict} |"
    )
    once = [r.get("missing") == 0 and r.get("duplicates") == 0 for r in fair]
    lines.append(
        f"| ... every message handled exactly once | {sum(once)} of {len(once)} runs | "
        f"{'met' if once and all(once) else 'MISSED'} |"
    )
    return lines


def idle_lines(idle: dict[str, Any]) -> list[str]:
    lines = [
        f"Each worker alone on an empty channel for {idle['idle_seconds']:g} s.",
        "",
        "| worker | still running | exited after | last error in its log |",
        "|---|---|---:|---|",
    ]
    for name in ("djwire", "channels"):
        r = idle[name]
        exited = (
            ""
            if r["exited_after_s"] is None
            else f"{r['exited_after_s']:g} s (code {r['exit_code']})"
        )
        error = (r["last_error"] or "").replace("|", "\\|")
        lines.append(f"| {name} | {'yes' if r['alive'] else 'NO'} | {exited} | {error} |")
    return lines


# -- main --------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_feed":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--count", type=int, default=100_000, help="messages per djwire row")
    parser.add_argument("--channels-count", type=int, default=5_000, help="per Channels row")
    parser.add_argument(
        "--budget", type=float, default=120, help="seconds per measurement, at most"
    )
    parser.add_argument("--idle-seconds", type=float, default=20, help="0: no idle check")
    parser.add_argument("--attempts", type=int, default=2, help="per measurement, when disturbed")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="djwire workers")
    parser.add_argument("--worker-cpu", default="0")
    parser.add_argument("--feed-cpu", default="1")
    parser.add_argument("--from-json", action="store_true", help="only rewrite the report")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--profile", metavar="ROW", help="measure nothing: py-spy this backlog row"
    )
    parser.add_argument("--native", action="store_true", help="--profile with C frames")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args)
        return
    if args.from_json:
        RESULTS_MD.write_text(report(json.loads(RESULTS_JSON.read_text())))
        print(f"wrote {RESULTS_MD} from {RESULTS_JSON.name}")
        return
    # SIGTERM unwinds like Ctrl-C: every Stack's finally stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.sched_setaffinity(0, {int(args.feed_cpu)})  # the driver stays off the workers' core
    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; known: {', '.join(ROWS)}")
    started = time.time()
    load_before = os.getloadavg()[0]
    data: dict[str, Any] = {
        "argv": sys.argv[1:],
        "args": vars(args),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": run.machine(),
        "versions": versions(),
        "samples": {},
    }
    if args.idle_seconds > 0:
        data["idle"] = measure_idle(args)
        print(f"idle: {json.dumps(data['idle'])}", flush=True)
    for number in range(1, args.runs + 1):
        for key in rows:
            result = calm(
                lambda attempt, key=key, number=number: measure(key, number, attempt, args),
                args.attempts,
            )
            data["samples"].setdefault(key, []).append(result)
            brief = {
                k: result.get(k)
                for k in (
                    "msgs_per_s",
                    "msgs_per_worker_cpu_s",
                    "handled",
                    "missing",
                    "duplicates",
                    "shares",
                    "foreign_cores",
                    "redis",
                )
            }
            print(
                f"[run {number}] {key}: {json.dumps(brief)}"
                + (f" ERROR {result['error'][:300]}" if "error" in result else ""),
                flush=True,
            )
    data["loads"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
    data["minutes"] = (time.time() - started) / 60
    if args.no_write:
        return
    RESULTS_JSON.write_text(json.dumps(data, indent=1))
    RESULTS_MD.write_text(report(data))
    print(f"wrote {RESULTS_MD} and {RESULTS_JSON.name}")


if __name__ == "__main__":
    main()
