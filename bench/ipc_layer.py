"""IPC channel layer benchmark: djwire's IPC vs in-memory vs Redis layers, same run.

Rows (issue 12), each between two real processes for the IPC and Redis layers (a
sender and a receiver, so no layer can short-cut through process memory); the
in-memory layer cannot cross processes, so its rows run both sides in one process
on one core, as the reference for what the layer itself costs:

* **in turn**: one coroutine sends to the other process's channel and waits for the
  echo on its own channel, over and over (one message in flight).
* **in flight**: ``WINDOW`` such coroutines at once (what a busy process does), so
  ``WINDOW`` round trips are in flight all the time. Closed loop: a layer that
  accepts sends faster than it delivers them cannot look fast by queueing.

  Both rows report messages/s (both directions count) and the round trip's p50/p99.
* **pipelined**: bench/redis_layer.py's send+receive, for comparison with its
  results: the sender sends N messages ``WINDOW`` at a time (gathered), the receiver
  takes them; messages/s = N / (last receipt - first send). No latency: the sender
  may run ahead of the receiver (open loop), so latency would only measure the queue.
* **group_send** to 1,000 members (and the other ``--sizes``), all in the receiving
  process: time of the ``group_send`` call, and time until every member received
  it; median of the rounds after one warm-up.

Pinning (2 cores): sender (and redis-server) on core 0, receiver on core 1; the
in-memory rows on core 0. Every cell is a fresh process (and a fresh Redis, a fresh
IPC space); rows are interleaved over the layers, ``--runs`` times, medians
reported. Every loop is bounded in count and time; loopback only.

    bench/.venv/bin/python bench/ipc_layer.py [--runs 3] [--sizes 1000,10000]

Writes bench/ipc_results.json and bench/RESULTS-ipc.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support.redis_servers starts Redis
sys.path.insert(0, str(HERE))

from memory_layer import machine_description  # noqa: E402
from redis_layer import (  # noqa: E402
    Child,
    emit,
    fresh_redis,
    group_members,
    group_rounds,
    group_sender,
    pipelined_result,
    pour,
    take,
)

RESULTS = HERE / "ipc_results.json"
REPORT = HERE / "RESULTS-ipc.md"
MESSAGE_TEXT = "x" * 64
WINDOW = 64  # sends in flight, as in bench/redis_layer.py
CELL_TIMEOUT = 120.0
#: Round trips in flight at once, per row.
IN_FLIGHT = {"in_turn": 1, "in_flight": WINDOW}
#: Round trips per measurement: bounded; slower layers get fewer.
ROUND_TRIPS = {
    "in_turn": {"memory": 50_000, "ipc": 10_000, "redis": 5_000},
    "in_flight": {"memory": 100_000, "ipc": 60_000, "redis": 30_000},
}
#: Messages per pipelined measurement (one direction).
PIPELINED = {"memory": 200_000, "ipc": 100_000, "redis": 60_000}

IMPLS = {
    "ipc": "djwire IPCChannelLayer",
    "redis": "djwire RedisChannelLayer",
    "memory": "djwire InMemoryChannelLayer (one process)",
}
BIG = 1_000_000  # capacities: nothing in these runs may be dropped


def make_layer(impl: str, where: str) -> Any:
    if impl == "ipc":
        from djwire.layers.ipc import IPCChannelLayer

        return IPCChannelLayer(path=where, capacity=BIG)
    if impl == "redis":
        from djwire.layers.redis import RedisChannelLayer

        return RedisChannelLayer(hosts=[where], capacity=BIG, inbox_capacity=BIG)
    from djwire.layers import InMemoryChannelLayer

    return InMemoryChannelLayer(capacity=BIG)


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    if not ordered:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "p50_ms": ordered[len(ordered) // 2] / 1e6,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6,
    }


# -- roles (each runs in a child process, or both in one for the in-memory layer) ---------


async def echo(layer: Any, channel: str) -> None:
    while True:
        message = await layer.receive(channel)
        await layer.send(message["reply_to"], message)


async def ping(layer: Any, target: str, count: int, in_flight: int = 1) -> dict[str, Any]:
    """``in_flight`` coroutines, each sending to ``target`` and waiting for the echo on
    its own channel in turn, ``count`` round trips in all."""
    rtts: list[int] = []
    deadline = time.monotonic() + CELL_TIMEOUT

    async def pinger(rounds: int, warm_up: int) -> None:
        mine = await layer.new_channel()
        message = {"type": "bench.ping", "text": MESSAGE_TEXT, "reply_to": mine}
        for _ in range(warm_up):
            await layer.send(target, message)
            await layer.receive(mine)
        warm.append(mine)
        if len(warm) == in_flight:
            all_warm.set()
        await started.wait()
        for _ in range(rounds):
            sent = time.monotonic_ns()
            await layer.send(target, message)
            await layer.receive(mine)
            rtts.append(time.monotonic_ns() - sent)
            if time.monotonic() > deadline:
                break

    started, all_warm, warm = asyncio.Event(), asyncio.Event(), []
    rounds, warm_up = count // in_flight, max(1, 200 // in_flight)
    pingers = [asyncio.ensure_future(pinger(rounds, warm_up)) for _ in range(in_flight)]
    await asyncio.wait_for(all_warm.wait(), CELL_TIMEOUT)
    start = time.monotonic_ns()
    started.set()
    await asyncio.gather(*pingers)
    seconds = (time.monotonic_ns() - start) / 1e9
    return {
        "round_trips": len(rtts),
        "in_flight": in_flight,
        "seconds": seconds,
        "per_second": 2 * len(rtts) / seconds,  # messages, both directions
        **percentiles(rtts),
    }


async def child_role(role: str, impl: str, where: str, rest: list[str]) -> None:
    layer = make_layer(impl, where)
    if role == "echo":
        channel = await layer.new_channel()
        echoing = asyncio.ensure_future(echo(layer, channel))
        emit(channel=channel)
        await asyncio.to_thread(sys.stdin.read)  # until the driver closes stdin
        echoing.cancel()
    elif role == "ping":
        emit(**await ping(layer, rest[1], int(rest[0]), int(rest[2])))
    elif role == "take":
        channel = await layer.new_channel()
        task = asyncio.ensure_future(take(layer, channel, int(rest[0])))
        await asyncio.sleep(0.3)  # feeds and subscriptions in place
        emit(channel=channel)
        emit(**await task)
    elif role == "pour":
        await layer.send("warmup-sink", {"type": "x"})  # connect before the clock starts
        emit(**await pour(layer, rest[1], int(rest[0])))
    elif role == "members":
        await group_members(layer, int(rest[0]))
    elif role == "group-sender":
        await group_sender(layer)
    with contextlib.suppress(Exception):
        await layer.flush()


def child(argv: list[str]) -> None:
    import logging

    import uvloop

    if argv[0] == "_memory":
        memory_child(argv[1], int(argv[2]))
        return
    logging.basicConfig(level=logging.WARNING)
    role, impl, where, *rest = argv
    uvloop.run(child_role(role, impl, where, rest))


# -- the in-memory reference, both sides in one process --------------------------------------


async def memory_cell(kind: str, arg: int) -> dict[str, Any]:
    layer = make_layer("memory", "")
    if kind == "pipelined":
        channel = await layer.new_channel()
        taking = asyncio.ensure_future(take(layer, channel, arg))
        poured = await pour(layer, channel, arg)
        return pipelined_result(poured, await taking, arg)
    if kind in IN_FLIGHT:
        channel = await layer.new_channel()
        echoing = asyncio.ensure_future(echo(layer, channel))
        result = await ping(layer, channel, arg, IN_FLIGHT[kind])
        echoing.cancel()
        return result
    # group: members waiting in this process, one send at a time
    channels = [await layer.new_channel() for _ in range(arg)]
    for channel in channels:
        await layer.group_add("bench", channel)
    calls, alls = [], []
    for seq in range(11):
        receivers = [asyncio.ensure_future(layer.receive(c)) for c in channels]
        await asyncio.sleep(0)
        start = time.monotonic_ns()
        message = {"type": "bench.message", "seq": seq, "text": MESSAGE_TEXT}
        await layer.group_send("bench", message)
        called = time.monotonic_ns()
        await asyncio.gather(*receivers)
        done = time.monotonic_ns()
        if seq:
            calls.append((called - start) / 1e6)
            alls.append((done - start) / 1e6)
    return group_result(arg, calls, alls)


def memory_child(kind: str, arg: int) -> None:
    import uvloop

    print(json.dumps(uvloop.run(memory_cell(kind, arg))), flush=True)


# -- the driver ------------------------------------------------------------------------------


class Place:
    """Where a cell's layers meet: a fresh IPC space or a fresh Redis."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.redis: Any = None
        self.space = ""
        if impl == "redis":
            self.redis = fresh_redis()
            self.where = self.redis.url
        else:
            self.space = tempfile.mkdtemp(prefix="djw-bench-")
            self.where = self.space

    def close(self) -> None:
        if self.redis is not None:
            self.redis.cleanup()
        if self.space:
            shutil.rmtree(self.space, ignore_errors=True)


def run_memory(kind: str, arg: int) -> dict[str, Any]:
    child_ = Child("0", "_memory", kind, str(arg), script=__file__)
    result = child_.read()
    child_.finish()
    return result


def group_result(members: int, calls: list[float], alls: list[float]) -> dict[str, Any]:
    until_all = statistics.median(alls)
    return {
        "members": members,
        "call_ms": statistics.median(calls),
        "all_ms": until_all,
        "deliveries_per_s": members / (until_all / 1000),
        "rounds": len(alls),
    }


def measure_round_trips(kind: str, impl: str) -> dict[str, Any]:
    count = ROUND_TRIPS[kind][impl]
    if impl == "memory":
        return run_memory(kind, count)
    place = Place(impl)
    try:
        echoer = Child("1", "echo", impl, place.where, str(count), script=__file__)
        channel = echoer.read()["channel"]
        pinger = Child(
            "0",
            "ping",
            impl,
            place.where,
            str(count),
            channel,
            str(IN_FLIGHT[kind]),
            script=__file__,
        )
        result = pinger.read()
        pinger.finish()
        echoer.finish()
    finally:
        place.close()
    return result


def measure_pipelined(impl: str) -> dict[str, Any]:
    count = PIPELINED[impl]
    if impl == "memory":
        return run_memory("pipelined", count)
    place = Place(impl)
    try:
        taker = Child("1", "take", impl, place.where, str(count), script=__file__)
        channel = taker.read()["channel"]
        pourer = Child("0", "pour", impl, place.where, str(count), channel, script=__file__)
        poured = pourer.read()
        got = taker.read()
        pourer.finish()
        taker.finish()
    finally:
        place.close()
    return pipelined_result(poured, got, count)


def measure_group(impl: str, members: int, rounds: int) -> dict[str, Any]:
    if impl == "memory":
        return run_memory("group", members)
    place = Place(impl)
    try:
        receiver = Child("1", "members", impl, place.where, str(members), script=__file__)
        receiver.read(timeout=300)  # ready
        sender = Child("0", "group-sender", impl, place.where, script=__file__)
        return group_rounds(receiver, sender, members, rounds)
    finally:
        place.close()


def median_of(samples: list[dict[str, Any]], field: str) -> float:
    return statistics.median(sample[field] for sample in samples)


def runs_of(samples: list[dict[str, Any]], field: str, fmt: str) -> str:
    return ", ".join(format(sample[field], fmt) for sample in samples)


ROWS = {
    "in_turn": "one coroutine sending and receiving in turn",
    "in_flight": f"{WINDOW} coroutines doing so at once",
    "pipelined": f"pipelined, {WINDOW} sends at a time, one way (as bench/redis_layer.py)",
}


def write_report(data: dict[str, Any], sizes: list[int]) -> str:
    samples = data["samples"]
    impls = [impl for impl in IMPLS if f"in_flight/{impl}" in samples]
    lines = [
        "# IPC channel layer: djwire's IPC vs in-memory vs Redis layers",
        "",
        f"Generated by `{data['command']}` on {data['when']}.",
        "",
        f"Machine: {machine_description()}; redis-server "
        f"{data.get('redis_version', '?')} (a fresh private server per measurement, no "
        "persistence). Sender (and redis-server) pinned to core 0, receiver to core 1; "
        "the in-memory layer cannot cross processes, so its rows run both sides in one "
        "process on core 0. uvloop; messages of ~100 bytes. Medians of "
        f"{data['runs']} runs, interleaved over the layers; every run is listed.",
        "",
        "## Messages between two processes",
        "",
        "Messages/s count both directions of a round trip; latencies are round trips "
        "(there and back).",
        "",
        "| row | layer | messages/s | p50 ms | p99 ms | runs (messages/s) | IPC / this |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for kind, label in ROWS.items():
        ipc_rate = median_of(samples[f"{kind}/ipc"], "per_second")
        for impl in impls:
            cell = samples[f"{kind}/{impl}"]
            rate = median_of(cell, "per_second")
            latency = (
                f"{median_of(cell, 'p50_ms'):.3f} | {median_of(cell, 'p99_ms'):.3f}"
                if "p99_ms" in cell[0]
                else "— | —"
            )
            lines.append(
                f"| {label} | {IMPLS[impl]} | {rate:,.0f} | {latency} "
                f"| {runs_of(cell, 'per_second', ',.0f')} | {ipc_rate / rate:.2f}x |"
            )
    lines += [
        "",
        "## group_send, all members in one other process",
        "",
        "Time of the `group_send` call, and time until every member received the "
        "message (medians over runs of the per-run medians of 10 sends; 5 at 10,000).",
        "",
        "| members | layer | call ms | all received ms | deliveries/s | runs (all received ms) "
        "| this / IPC |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]
    for members in sizes:
        ipc_all = median_of(samples[f"group/ipc/{members}"], "all_ms")
        for impl in impls:
            cell = samples[f"group/{impl}/{members}"]
            all_ms = median_of(cell, "all_ms")
            lines.append(
                f"| {members:,} | {IMPLS[impl]} | {median_of(cell, 'call_ms'):.2f} "
                f"| {all_ms:.2f} | {median_of(cell, 'deliveries_per_s'):,.0f} "
                f"| {runs_of(cell, 'all_ms', '.2f')} | {all_ms / ipc_all:.2f}x |"
            )
    lines += ["", "## Targets (issue 12)", ""]
    lines += targets(samples, sizes, impls)
    return "\n".join(lines) + "\n"


def targets(samples: dict[str, Any], sizes: list[int], impls: list[str]) -> list[str]:
    lines = []
    flight = median_of(samples["in_flight/ipc"], "per_second")
    piped = median_of(samples["pipelined/ipc"], "per_second")
    met = flight >= 30_000 and piped >= 30_000
    lines.append(
        f"- >= 30,000 messages/s between two processes with many in flight: {flight:,.0f} "
        f"({WINDOW} round trips in flight), {piped:,.0f} (pipelined) — "
        f"{'met' if met else 'NOT met'}."
    )
    for kind in ("in_turn", "in_flight"):
        p99 = median_of(samples[f"{kind}/ipc"], "p99_ms")
        lines.append(
            f"- p99 under 2 ms, {ROWS[kind]}: {p99:.3f} ms round trip — "
            f"{'met' if p99 < 2 else 'NOT met'}."
        )
    if "redis" in impls:
        missed = []
        for kind in ROWS:
            mine, theirs = (
                median_of(samples[f"{kind}/{i}"], "per_second") for i in ("ipc", "redis")
            )
            if mine <= theirs:
                missed.append(f"{kind} messages/s")
            if kind != "pipelined":
                mine, theirs = (
                    median_of(samples[f"{kind}/{i}"], "p99_ms") for i in ("ipc", "redis")
                )
                if mine >= theirs:
                    missed.append(f"{kind} p99")
        for members in sizes:
            mine, theirs = (
                median_of(samples[f"group/{i}/{members}"], "all_ms") for i in ("ipc", "redis")
            )
            if mine >= theirs:
                missed.append(f"group_send to {members:,}")
        lines.append(
            "- faster than the Redis layer on every row: "
            + ("met." if not missed else f"NOT met on: {', '.join(missed)}.")
        )
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return
    from redis_noise import calm_measurement

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--report-only", action="store_true", help="re-render the last results")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.report_only:
        data = json.loads(RESULTS.read_text())
        REPORT.write_text(write_report(data, sizes))
        return
    impls = args.impls.split(",")
    samples: dict[str, list[dict[str, Any]]] = {}
    for run in range(args.runs):
        for impl in impls:  # interleaved, so drifting machine load hits every layer alike
            for kind in IN_FLIGHT:
                result = calm_measurement(lambda k=kind, i=impl: measure_round_trips(k, i))
                samples.setdefault(f"{kind}/{impl}", []).append(result)
                print(
                    f"run {run + 1} {kind}/{impl}: {result['per_second']:,.0f} msgs/s, "
                    f"p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms",
                    flush=True,
                )
            result = calm_measurement(lambda i=impl: measure_pipelined(i))
            samples.setdefault(f"pipelined/{impl}", []).append(result)
            print(
                f"run {run + 1} pipelined/{impl}: {result['per_second']:,.0f} msgs/s", flush=True
            )
            for members in sizes:
                rounds = 5 if members >= 10_000 else 10
                result = calm_measurement(
                    lambda i=impl, m=members, r=rounds: measure_group(i, m, r)
                )
                samples.setdefault(f"group/{impl}/{members}", []).append(result)
                print(
                    f"run {run + 1} group/{impl}/{members}: call {result['call_ms']:.2f} ms, "
                    f"all received {result['all_ms']:.2f} ms",
                    flush=True,
                )
    data = {
        "command": "bench/.venv/bin/python bench/ipc_layer.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "runs": args.runs,
        "redis_version": redis_version(),
        "samples": samples,
    }
    RESULTS.write_text(json.dumps(data, indent=1))
    REPORT.write_text(write_report(data, sizes))
    print(REPORT.read_text())


def redis_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    except OSError:
        return "?"
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return "?"


if __name__ == "__main__":
    main()
