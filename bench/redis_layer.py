"""Redis channel layer benchmark: djwire vs channels_redis (core and pub/sub), same run.

Two workloads, each between two real processes (a sender and a receiver, so no
layer can short-cut through process memory), against a fresh private redis-server:

* **send+receive**: the receiver waits on one ``new_channel()`` channel; the sender
  sends N messages with up to ``WINDOW`` sends in flight (pipelined: what a busy
  process does). Messages/s = N / (last receipt - first send).
* **group_send** to a group of 10 / 100 / 1,000 / 10,000 members, all in the
  receiver process: time of the ``group_send`` call, and time until every member
  received it (CLOCK_MONOTONIC is shared by the processes), one send at a time;
  deliveries/s = members / that time. Median of the rounds after one warm-up.

Pinning (2 cores): sender and redis-server on core 0, receiver on core 1. Each
measurement is interleaved over the layers and repeated ``--runs`` times; medians
are reported. Every loop is bounded in count and time; loopback only.

    bench/.venv/bin/python bench/redis_layer.py [--runs 3] [--sizes 10,100,1000,10000]

Writes bench/redis_results.json (key "layer"); bench/redis_report.py renders it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.support.redis_servers starts the servers
sys.path.insert(0, str(HERE))
RESULTS = HERE / "redis_results.json"
MESSAGE_TEXT = "x" * 64
WINDOW = 64  # sends in flight (below redis-py 8's 100-connection pool cap)
#: Messages per send+receive measurement (bounded; slower layers get fewer).
SEND_COUNT = {"djwire": 60_000, "pubsub": 20_000, "core": 4_000}
CELL_TIMEOUT = 120.0

IMPLS = {
    "djwire": "djwire RedisChannelLayer",
    "core": "channels_redis RedisChannelLayer",
    "pubsub": "channels_redis RedisPubSubChannelLayer",
}


def make_layer(impl: str, url: str) -> Any:
    if impl == "djwire":
        from djwire.layers.redis import RedisChannelLayer

        return RedisChannelLayer(hosts=[url], capacity=100_000, inbox_capacity=100_000)
    if impl == "core":
        from channels_redis.core import RedisChannelLayer as Core

        return Core(hosts=[url], capacity=100_000)
    if impl == "pubsub":
        from channels_redis.pubsub import RedisPubSubChannelLayer

        return RedisPubSubChannelLayer(hosts=[url])
    raise ValueError(impl)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- child roles ---------------------------------------------------------------------------


async def take(layer: Any, channel: str, count: int) -> dict[str, Any]:
    """Receive ``count`` messages on ``channel``: when the first and last arrived."""
    first = last = 0
    received = 0

    async def loop() -> None:
        nonlocal first, last, received
        while received < count:
            await layer.receive(channel)
            last = time.monotonic_ns()
            if not received:
                first = last
            received += 1

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop(), CELL_TIMEOUT)
    return {"received": received, "first_ns": first, "last_ns": last}


async def pour(layer: Any, channel: str, count: int) -> dict[str, Any]:
    """Send ``count`` messages, ``WINDOW`` at a time (pipelined)."""
    message = {"type": "bench.message", "text": MESSAGE_TEXT}
    start = time.monotonic_ns()
    sent = 0
    deadline = time.monotonic() + CELL_TIMEOUT
    while sent < count and time.monotonic() < deadline:
        batch = min(WINDOW, count - sent)
        await asyncio.gather(*(layer.send(channel, dict(message)) for _ in range(batch)))
        sent += batch
    return {"sent": sent, "start_ns": start, "end_ns": time.monotonic_ns()}


async def receiver_send_receive(impl: str, url: str, count: int) -> None:
    layer = make_layer(impl, url)
    channel = await layer.new_channel()
    task = asyncio.ensure_future(take(layer, channel, count))
    await asyncio.sleep(0.3)  # subscriptions / feeds in place
    emit(channel=channel)
    emit(**await task)
    await layer.flush()


async def sender_send_receive(impl: str, url: str, count: int, channel: str) -> None:
    layer = make_layer(impl, url)
    await layer.send("warmup-sink", {"type": "bench.message"})  # connect before the clock
    emit(**await pour(layer, channel, count))


async def group_members(layer: Any, members: int) -> None:
    """``members`` channels in group "bench", each receiving in a loop; reports when
    all of them got a message, and runs until the driver closes stdin."""
    channels = [await layer.new_channel() for _ in range(members)]
    # 50 at a time: channels_redis on redis-py 8 raises MaxConnectionsError beyond 100.
    for start in range(0, members, 50):
        await asyncio.gather(*(layer.group_add("bench", c) for c in channels[start : start + 50]))
    counts: dict[int, int] = {}

    async def member(channel: str) -> None:
        while True:
            seq = (await layer.receive(channel))["seq"]
            counts[seq] = counts.get(seq, 0) + 1
            if counts[seq] == members:
                emit(seq=seq, all_ns=time.monotonic_ns())

    tasks = [asyncio.ensure_future(member(channel)) for channel in channels]
    await asyncio.sleep(0.5)
    emit(ready=members)
    # Runs until the driver closes stdin.
    await asyncio.to_thread(sys.stdin.read)
    for task in tasks:
        task.cancel()
    await layer.flush()


async def group_sender(layer: Any) -> None:
    """One group_send to "bench" per line the driver writes (its sequence number)."""
    await layer.send("warmup-sink", {"type": "x"})
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.strip():
            break
        seq = int(line)
        message = {"type": "bench.message", "seq": seq, "text": MESSAGE_TEXT}
        start = time.monotonic_ns()
        await layer.group_send("bench", message)
        emit(seq=seq, start_ns=start, end_ns=time.monotonic_ns())


def child(argv: list[str]) -> None:  # runs in the pinned child processes
    import uvloop

    role, impl, url, *rest = argv
    if impl == "djwire":
        import logging

        logging.basicConfig(level=logging.WARNING)
    coroutine = {
        "receiver-sr": lambda: receiver_send_receive(impl, url, int(rest[0])),
        "sender-sr": lambda: sender_send_receive(impl, url, int(rest[0]), rest[1]),
        "receiver-group": lambda: group_members(make_layer(impl, url), int(rest[0])),
        "sender-group": lambda: group_sender(make_layer(impl, url)),
    }[role]()
    uvloop.run(coroutine)


# -- driver --------------------------------------------------------------------------------


class Child:
    """A pinned child process speaking JSON lines on stdout (``script``: the benchmark
    whose ``_child`` roles it runs; bench/ipc_layer.py passes its own)."""

    def __init__(self, cpu: str, *args: str, script: str = __file__) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            ["taskset", "-c", cpu, sys.executable, script, "_child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def read(self, timeout: float = CELL_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    raise RuntimeError(f"child exited with {self.process.returncode}") from None
                continue
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]
        raise TimeoutError("child did not answer in time")

    def write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def fresh_redis() -> Any:
    from tests.support.redis_servers import RedisServer

    return RedisServer(cpu="0").start()


def measure_send_receive(impl: str) -> dict[str, Any]:
    server = fresh_redis()
    count = SEND_COUNT[impl]
    try:
        receiver = Child("1", "receiver-sr", impl, server.url, str(count))
        channel = receiver.read()["channel"]
        sender = Child("0", "sender-sr", impl, server.url, str(count), channel)
        sent = sender.read()
        got = receiver.read()
        sender.finish()
        receiver.finish()
    finally:
        server.cleanup()
    return pipelined_result(sent, got, count)


def pipelined_result(sent: dict[str, Any], got: dict[str, Any], count: int) -> dict[str, Any]:
    """messages/s from a sender's ``pour`` and a receiver's ``take``."""
    seconds = (got["last_ns"] - sent["start_ns"]) / 1e9
    return {
        "messages": count,
        "received": got["received"],
        "seconds": seconds,
        "per_second": got["received"] / seconds if seconds > 0 else 0.0,
    }


def measure_group(impl: str, members: int, rounds: int) -> dict[str, Any]:
    server = fresh_redis()
    try:
        receiver = Child("1", "receiver-group", impl, server.url, str(members))
        receiver.read(timeout=300)  # ready
        sender = Child("0", "sender-group", impl, server.url)
        return group_rounds(receiver, sender, members, rounds)
    finally:
        server.cleanup()


def group_rounds(receiver: Child, sender: Child, members: int, rounds: int) -> dict[str, Any]:
    """Drive ``group_members`` (ready) and ``group_sender`` children: one warm-up and
    ``rounds`` group sends, one at a time; medians of the call and of the time until all
    received."""
    calls, alls = [], []
    for seq in range(rounds + 1):
        sender.write(f"{seq}\n")
        sent = sender.read()
        done = receiver.read()
        assert done["seq"] == seq, (done, seq)
        if seq:  # round 0 warms up
            calls.append((sent["end_ns"] - sent["start_ns"]) / 1e6)
            alls.append((done["all_ns"] - sent["start_ns"]) / 1e6)
    sender.finish()
    receiver.finish()
    until_all = statistics.median(alls)
    return {
        "members": members,
        "call_ms": statistics.median(calls),
        "all_ms": until_all,
        "deliveries_per_s": members / (until_all / 1000),
        "rounds": rounds,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return
    from redis_noise import calm_measurement

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--impls", default=",".join(IMPLS))
    args = parser.parse_args()
    impls = args.impls.split(",")
    sizes = [int(size) for size in args.sizes.split(",")]
    samples: dict[str, list[dict[str, Any]]] = {}
    for run in range(args.runs):
        for impl in impls:  # interleaved, so drifting machine load hits every layer alike
            key = f"send_receive/{impl}"
            result = calm_measurement(lambda impl=impl: measure_send_receive(impl))
            samples.setdefault(key, []).append(result)
            print(f"run {run + 1} {key}: {result['per_second']:,.0f} msgs/s", flush=True)
            for members in sizes:
                rounds = 5 if members >= 10_000 else 10
                key = f"group/{impl}/{members}"
                result = calm_measurement(
                    lambda impl=impl, members=members, rounds=rounds: measure_group(
                        impl, members, rounds
                    )
                )
                samples.setdefault(key, []).append(result)
                print(
                    f"run {run + 1} {key}: call {result['call_ms']:.2f} ms, "
                    f"all received {result['all_ms']:.2f} ms",
                    flush=True,
                )
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["layer"] = {
        "command": "bench/.venv/bin/python bench/redis_layer.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "runs": args.runs,
        "samples": samples,
    }
    RESULTS.write_text(json.dumps(data, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
