"""WebSocket load generator for the djwire benchmarks: picows clients on uvloop.

One workload per invocation; prints one JSON object on stdout. bench/run.py starts
it pinned to the core the server does not use. Every loop is bounded in count and
in time; only loopback addresses are used.

    loadgen.py echo  --port P --clients 100 [--seconds 5]
    loadgen.py group --port P --mode handler|direct [--members 1000] [--burst 50] [--paced 50]
    loadgen.py idle  --port P --server-pid PID [--connections 5000]
    loadgen.py loop  --port P --mode handler|direct [--bursts 20] [--count 1000] [--size 1024]

How W2 is triggered and timed: a control client connects to ``/ws/trigger/<mode>/``
and sends ``"<seq> <client_ns>"``; the trigger consumer appends the server's
``time.monotonic_ns()`` taken right before its ``group_send`` and pads the text to
100 bytes. Every member client records ``time.monotonic_ns()`` on receipt
(CLOCK_MONOTONIC is one clock for all processes of the machine). Latency of a send =
the last member's receipt - the stamp; reported both from the server stamp (the
group_send call: "send" in the table) and from the client stamp (includes the
trigger's trip to the server and any wait behind earlier triggers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

HOST = "127.0.0.1"
#: Loopback source addresses to spread many connections over (ephemeral ports).
SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 34)]
CONNECT_CONCURRENCY = 100
CONNECT_TIMEOUT = 60.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds(pid: int | None) -> float:
    """CPU time used so far by the server's process tree (0 when no pid is given).

    On a shared machine the server may not get its whole core; throughput per
    server CPU-second shows the cost per message regardless of that noise.
    """
    if not pid:
        return 0.0
    import psutil

    total = 0.0
    processes = [psutil.Process(pid)]
    processes += processes[0].children(recursive=True)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def connect_many(
    port: int, path: str, count: int, factory: Callable[[], WSListener]
) -> tuple[list[WSTransport], list[WSListener], int]:
    """Open ``count`` connections, ``CONNECT_CONCURRENCY`` at a time; returns failures too."""
    url = f"ws://{HOST}:{port}{path}"
    transports: list[WSTransport] = []
    listeners: list[WSListener] = []
    failures = 0
    deadline = time.monotonic() + CONNECT_TIMEOUT + count / 50

    async def one(index: int) -> None:
        nonlocal failures
        source = SOURCE_ADDRESSES[index % len(SOURCE_ADDRESSES)]
        try:
            transport, listener = await ws_connect(
                factory, url, local_addr=(source, 0), websocket_handshake_timeout=30
            )
        except Exception:
            failures += 1
            return
        transports.append(transport)
        listeners.append(listener)

    for start in range(0, count, CONNECT_CONCURRENCY):
        if time.monotonic() > deadline:
            failures += count - start
            break
        batch = range(start, min(count, start + CONNECT_CONCURRENCY))
        await asyncio.gather(*(one(i) for i in batch))
    return transports, listeners, failures


async def close_all(transports: list[WSTransport]) -> None:
    for transport in transports:
        transport.disconnect(graceful=False)
    await asyncio.sleep(0.2)


# -- W1: echo -----------------------------------------------------------------------------


class EchoState:
    def __init__(self, payload: bytes, max_samples: int) -> None:
        self.payload = payload
        self.phase = 0  # 0 warm-up, 1 measuring, 2 stopping
        self.max_samples = max_samples
        self.latencies: list[int] = []
        self.count = 0
        self.in_flight = 0


class EchoClient(WSListener):
    def __init__(self, state: EchoState) -> None:
        self.state = state
        self.sent_at = 0

    def send_one(self, transport: WSTransport) -> None:
        self.state.in_flight += 1
        self.sent_at = time.perf_counter_ns()
        transport.send(WSMsgType.TEXT, self.state.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        state = self.state
        state.in_flight -= 1
        if state.phase == 1:
            state.count += 1
            if len(state.latencies) < state.max_samples:
                state.latencies.append(time.perf_counter_ns() - self.sent_at)
        if state.phase < 2:
            self.send_one(transport)


async def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    state = EchoState(b"x" * 64, max_samples=5_000_000)
    transports, listeners, failures = await connect_many(
        args.port, "/ws/echo/", args.clients, lambda: EchoClient(state)
    )
    if not transports:
        return {"error": "no connection could be opened", "connect_failures": failures}
    for transport, listener in zip(transports, listeners, strict=True):
        listener.send_one(transport)  # type: ignore[attr-defined]
    await asyncio.sleep(args.warmup)
    cpu0, server0 = cpu_seconds(), server_cpu_seconds(args.server_pid)
    start = time.perf_counter()
    state.phase = 1
    await asyncio.sleep(args.seconds)
    state.phase = 2
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    server_cpu = server_cpu_seconds(args.server_pid) - server0
    count = state.count
    drain_until = time.monotonic() + 5
    while state.in_flight > 0 and time.monotonic() < drain_until:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await close_all(transports)
    latencies = sorted(state.latencies)
    return {
        "clients": len(transports),
        "connect_failures": failures,
        "messages": count,
        "seconds": elapsed,
        "msgs_per_s": count / elapsed,
        "p50_ms": percentile(latencies, 0.50) / 1e6,
        "p99_ms": percentile(latencies, 0.99) / 1e6,
        "client_cpu": cpu / elapsed,
        "server_cpu": server_cpu / elapsed,
        "msgs_per_server_cpu_s": count / server_cpu if server_cpu else None,
        "unanswered": state.in_flight,
    }


# -- W2: group broadcast ------------------------------------------------------------------


class GroupState:
    def __init__(self, max_seq: int) -> None:
        self.counts = [0] * (max_seq + 1)
        self.last = [0] * (max_seq + 1)
        self.server_ns = [0] * (max_seq + 1)
        self.client_ns = [0] * (max_seq + 1)
        self.total = 0


class MemberClient(WSListener):
    def __init__(self, state: GroupState) -> None:
        self.state = state

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        now = time.monotonic_ns()
        payload = frame.get_payload_as_bytes()
        state = self.state
        seq = int(payload[: payload.index(b" ")])
        if not state.counts[seq]:
            parts = payload.split(b" ", 3)
            state.server_ns[seq] = int(parts[2])
        state.counts[seq] += 1
        state.last[seq] = now
        state.total += 1


class ControlClient(WSListener):
    pass


async def wait_for(predicate: Callable[[], bool], limit: float) -> bool:
    """Poll ``predicate`` (cheap, set by frame callbacks) until true or ``limit`` s pass."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.001)
    return True


def latency_summary(state: GroupState, seqs: range, members: int) -> dict[str, Any]:
    complete = [s for s in seqs if state.counts[s] >= members]
    server = sorted((state.last[s] - state.server_ns[s]) / 1e6 for s in complete)
    client = sorted((state.last[s] - state.client_ns[s]) / 1e6 for s in complete)
    return {
        "sends": len(seqs),
        "complete_sends": len(complete),
        "deliveries": sum(state.counts[s] for s in seqs),
        "expected_deliveries": len(seqs) * members,
        "p50_ms": percentile(server, 0.50),
        "p99_ms": percentile(server, 0.99),
        "max_ms": server[-1] if server else float("nan"),
        "client_p50_ms": percentile(client, 0.50),
        "client_p99_ms": percentile(client, 0.99),
    }


async def run_group(args: argparse.Namespace) -> dict[str, Any]:
    members = args.members
    total_seqs = 1 + args.paced + args.burst
    state = GroupState(total_seqs)
    transports, _, failures = await connect_many(
        args.port, "/ws/member/", members, lambda: MemberClient(state)
    )
    members = len(transports)
    result: dict[str, Any] = {"members": members, "connect_failures": failures}
    if not members:
        result["error"] = "no member could connect"
        return result
    control, _ = await ws_connect(
        ControlClient, f"ws://{HOST}:{args.port}/ws/trigger/{args.mode}/"
    )
    # Group membership is in place once a member's handshake completes (Channels and
    # djwire both group_add before accept), but give the server a moment anyway.
    await asyncio.sleep(0.5)

    def trigger(seq: int) -> None:
        state.client_ns[seq] = stamp = time.monotonic_ns()
        control.send(WSMsgType.TEXT, f"{seq} {stamp}".encode())

    # Warm-up: one send that must reach everyone.
    trigger(0)
    if not await wait_for(lambda: state.counts[0] >= members, limit=60):
        result["error"] = f"warm-up send reached {state.counts[0]} of {members} members"
        await close_all([*transports, control])
        return result

    # Paced: one send at a time, the next once the last member has the previous one.
    paced = range(1, 1 + args.paced)
    paced_until = time.monotonic() + args.paced_budget
    for seq in paced:
        trigger(seq)
        if not await wait_for(lambda s=seq: state.counts[s] >= members, limit=10):
            break
        if time.monotonic() > paced_until:
            break
    result["paced"] = latency_summary(state, range(1, seq + 1), members)

    # Burst: all sends back to back, then wait for every delivery (bounded).
    burst = range(1 + args.paced, total_seqs)
    before = state.total
    cpu0, server0 = cpu_seconds(), server_cpu_seconds(args.server_pid)
    for seq in burst:
        trigger(seq)
    expected = before + len(burst) * members
    last_total, last_change = state.total, time.monotonic()
    deadline = time.monotonic() + args.burst_budget
    while state.total < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
        if state.total != last_total:
            last_total, last_change = state.total, time.monotonic()
        elif time.monotonic() - last_change > 10:
            break  # nothing arrived for 10 s: messages were lost
    cpu = cpu_seconds() - cpu0
    server_cpu = server_cpu_seconds(args.server_pid) - server0
    summary = latency_summary(state, burst, members)
    delivered = state.total - before
    end = max(state.last[s] for s in burst)
    span = (end - state.client_ns[burst[0]]) / 1e9
    summary["deliveries_per_s"] = delivered / span if span > 0 else float("nan")
    summary["span_s"] = span
    summary["client_cpu"] = cpu / span if span > 0 else float("nan")
    # Measured until the wait ended (a little after the last receipt): an upper bound.
    summary["server_cpu_s"] = server_cpu
    summary["deliveries_per_server_cpu_s"] = delivered / server_cpu if server_cpu else None
    result["burst"] = summary
    await close_all([*transports, control])
    return result


# -- W5: idle connections ----------------------------------------------------------------


def tree_rss(pid: int) -> int:
    import psutil

    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


async def steady_rss(pid: int) -> int:
    samples = []
    for _ in range(5):
        await asyncio.sleep(0.3)
        samples.append(tree_rss(pid))
    return int(statistics.median(samples))


class IdleClient(WSListener):
    def __init__(self) -> None:
        self.replies = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies += 1


async def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    # Warm the server's code paths with a few connections that each echo once.
    warm, warm_listeners, _ = await connect_many(args.port, "/ws/echo/", 20, IdleClient)
    for transport in warm:
        transport.send(WSMsgType.TEXT, b"warm")
    await wait_for(lambda: all(x.replies for x in warm_listeners), limit=10)  # type: ignore[attr-defined]
    await asyncio.sleep(1)
    rss0 = await steady_rss(args.server_pid)
    started = time.monotonic()
    transports, listeners, failures = await connect_many(
        args.port, "/ws/echo/", args.connections, IdleClient
    )
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(2)
    rss1 = await steady_rss(args.server_pid)
    # The connections must be live, not half-dead: a sample of them echoes once.
    sample = list(zip(transports, listeners, strict=True))[:: max(1, len(transports) // 50)]
    for transport, _ in sample:
        transport.send(WSMsgType.TEXT, b"alive?")
    alive = await wait_for(lambda: all(x.replies for _, x in sample), limit=10)  # type: ignore[attr-defined]
    connected = len(transports)
    await close_all([*transports, *warm])
    return {
        "connections": connected,
        "connect_failures": failures,
        "connect_seconds": connect_seconds,
        "rss_before": rss0,
        "rss_after": rss1,
        "kib_per_connection": (rss1 - rss0) / 1024 / connected if connected else float("nan"),
        "sample_alive": alive,
    }


# -- W3: group_send in a loop (issue 10) -----------------------------------------------


class LoopMember(WSListener):
    """The one member: reads as fast as it can, counts what arrives."""

    def __init__(self) -> None:
        self.received = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.received += 1


class LoopControl(WSListener):
    def __init__(self) -> None:
        self.replies = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies += 1


async def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    """One member client; the control client asks for ``bursts`` bursts of ``count``
    group messages of ``size`` bytes, each sent by one handler in a loop; how many
    reach the member."""
    base = f"ws://{HOST}:{args.port}"
    member_transport, member = await ws_connect(LoopMember, f"{base}/ws/member/")
    control_transport, control = await ws_connect(
        LoopControl, f"{base}/ws/trigger/loop-{args.mode}/"
    )
    await asyncio.sleep(0.5)  # the member's group_add, as in W2
    sent = args.bursts * args.count
    cpu0, server0, t0 = cpu_seconds(), server_cpu_seconds(args.server_pid), time.monotonic()
    for _ in range(args.bursts):
        control_transport.send(WSMsgType.TEXT, f"{args.count} {args.size}".encode())
    result: dict[str, Any] = {"sent": sent}
    if not await wait_for(lambda: control.replies >= args.bursts, limit=args.budget):
        result["error"] = f"{control.replies} of {args.bursts} bursts sent within the budget"
    # Then what is still on its way (bounded): until all arrived or 1 s of silence.
    last, quiet_since = member.received, time.monotonic()
    while member.received < sent and time.monotonic() - quiet_since < 1.0:
        await asyncio.sleep(0.01)
        if member.received != last:
            last, quiet_since = member.received, time.monotonic()
    seconds = (quiet_since if member.received < sent else time.monotonic()) - t0
    result.update(
        delivered=member.received,
        delivered_share=member.received / sent,
        seconds=seconds,
        deliveries_per_s=member.received / seconds if seconds > 0 else float("nan"),
        client_cpu=(cpu_seconds() - cpu0) / seconds if seconds > 0 else float("nan"),
        server_cpu=(server_cpu_seconds(args.server_pid) - server0) / seconds
        if seconds > 0
        else float("nan"),
    )
    await close_all([member_transport, control_transport])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="workload", required=True)
    echo = sub.add_parser("echo")
    echo.add_argument("--clients", type=int, default=100)
    echo.add_argument("--seconds", type=float, default=5)
    echo.add_argument("--warmup", type=float, default=1)
    group = sub.add_parser("group")
    group.add_argument("--mode", choices=("handler", "direct"), default="handler")
    group.add_argument("--members", type=int, default=1000)
    group.add_argument("--burst", type=int, default=50)
    group.add_argument("--paced", type=int, default=50)
    group.add_argument("--paced-budget", type=float, default=60)
    group.add_argument("--burst-budget", type=float, default=180)
    idle = sub.add_parser("idle")
    idle.add_argument("--server-pid", type=int, required=True)
    loop = sub.add_parser("loop")
    loop.add_argument("--mode", choices=("handler", "direct"), default="handler")
    loop.add_argument("--bursts", type=int, default=20)
    loop.add_argument("--count", type=int, default=1000)
    loop.add_argument("--size", type=int, default=1024)
    loop.add_argument("--budget", type=float, default=120)
    for p in (echo, group, loop):
        p.add_argument("--server-pid", type=int, default=0)
    idle.add_argument("--connections", type=int, default=5000)
    for p in (echo, group, idle, loop):
        p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    runner = {"echo": run_echo, "group": run_group, "idle": run_idle, "loop": run_loop}[
        args.workload
    ]
    result = uvloop.run(asyncio.wait_for(runner(args), timeout=900))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
