"""In-memory channel layer benchmark: djwire vs Channels, same run (issue 2, item 5).

Measures, for each layer and for 10 and 100,000 *existing* channels (channels that
hold one queued message each, like the channels of connected consumers):

* send+receive: ``await send(ch, msg); await receive(ch)`` in a loop, messages/s;
* group_send to a group of 1,000 members: group_send calls/s (the 1,000 queued
  copies per call are left in place: capacity is raised so none is dropped, and
  the count of calls per measurement is capped to bound memory).

Each cell runs in a fresh child process (uvloop, pinned with taskset) so one
measurement's heap cannot slow the next; runs are interleaved djwire/Channels and
the medians of ``--runs`` are reported.

    bench/.venv/bin/python bench/memory_layer.py [--runs 3] [--seconds 2] [--cpu 0]

Writes bench/RESULTS-memory.md and prints the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMPLS = ("djwire", "channels")
MESSAGE = {"type": "chat.message", "text": "x" * 64}
GROUP_SIZE = 1_000
#: Upper bounds on every loop (count), next to the time budget given on the command line.
MAX_SEND_RECEIVE = 5_000_000
MAX_GROUP_SENDS = 200  # 200 x 1,000 queued messages at most per measurement


def make_layer(impl: str, capacity: int):
    if impl == "djwire":
        from djwire.layers import InMemoryChannelLayer
    else:
        from channels.layers import InMemoryChannelLayer
    # A long expiry: the prefilled channels must still exist when the timed loop runs
    # (Channels at 100,000 channels needs minutes, and expiry would empty the layer).
    return InMemoryChannelLayer(expiry=3600, capacity=capacity)


async def prefill(layer, existing: int) -> None:
    for i in range(existing):
        await layer.send(f"existing.{i}", MESSAGE)


async def bench_send_receive(impl: str, existing: int, seconds: float) -> dict:
    layer = make_layer(impl, capacity=100)
    await prefill(layer, existing)
    channel = "bench.sendreceive"
    send, receive = layer.send, layer.receive
    # Warm-up, untimed, bounded in count and time.
    warm_until = time.perf_counter() + 0.2
    for _ in range(1_000):
        await send(channel, MESSAGE)
        await receive(channel)
        if time.perf_counter() >= warm_until:
            break
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while done < MAX_SEND_RECEIVE:
        await send(channel, MESSAGE)
        await receive(channel)
        done += 1
        if not done % 16 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return {"messages": done, "seconds": elapsed, "per_second": done / elapsed}


async def bench_group_send(impl: str, existing: int, seconds: float) -> dict:
    layer = make_layer(impl, capacity=MAX_GROUP_SENDS + 10)
    await prefill(layer, existing)
    for i in range(GROUP_SIZE):
        await layer.group_add("bench", f"member.{i}")
    await layer.group_send("bench", MESSAGE)  # warm-up, untimed
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while done < MAX_GROUP_SENDS - 1:
        await layer.group_send("bench", MESSAGE)
        done += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    # Check every member really got every message (a benchmark that drops is void).
    got = 0
    for i in range(GROUP_SIZE):
        channel = f"member.{i}"
        for _ in range(done + 1):
            await asyncio.wait_for(layer.receive(channel), 1)
            got += 1
        if i == 0 and existing > 10_000 and impl == "channels":
            # Channels scans every channel per receive: checking all members would
            # take minutes at 100,000 channels; one member is enough to check.
            break
    return {
        "group_sends": done,
        "seconds": elapsed,
        "per_second": done / elapsed,
        "deliveries_per_second": done * GROUP_SIZE / elapsed,
        "verified_receives": got,
    }


def child(kind: str, impl: str, existing: int, seconds: float) -> None:
    import gc

    import uvloop

    if kind.endswith("_nogc"):
        # Shows the layer's own cost apart from CPython's cyclic GC, whose full
        # collections walk every live object and so grow with the heap.
        gc.disable()
    func = bench_send_receive if kind.startswith("send_receive") else bench_group_send
    result = uvloop.run(func(impl, existing, seconds))
    print(json.dumps(result))


def run_cell(kind: str, impl: str, existing: int, seconds: float, cpu: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, impl, str(existing), str(seconds)]
    if cpu:
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--cpu", default="0", help="core to pin to ('' for none)")
    parser.add_argument("--existing", default="10,100000")
    parser.add_argument("--out", default=str(HERE / "RESULTS-memory.md"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, impl, existing, seconds = args.child
        child(kind, impl, int(existing), float(seconds))
        return

    sizes = [int(x) for x in args.existing.split(",")]
    kinds = ("send_receive", "group_send", "group_send_nogc")
    samples: dict[tuple[str, str, int], list[float]] = {}
    for run in range(args.runs):
        for existing in sizes:
            for kind in kinds:
                for impl in IMPLS:
                    result = run_cell(kind, impl, existing, args.seconds, args.cpu)
                    samples.setdefault((kind, impl, existing), []).append(result["per_second"])
                    print(
                        f"run {run + 1}: {kind:12} {impl:8} existing={existing:>7}: "
                        f"{fmt(result['per_second'])}/s",
                        file=sys.stderr,
                    )
    med = {key: statistics.median(values) for key, values in samples.items()}

    lines = [
        "# In-memory channel layer: djwire vs Channels",
        "",
        f"Generated by `bench/.venv/bin/python bench/memory_layer.py --runs {args.runs} "
        f"--seconds {args.seconds} --cpu '{args.cpu}'` on {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"Machine: {machine_description()}. Each cell is a fresh process on uvloop pinned "
        f"to core {args.cpu or '(none)'}; medians of {args.runs} runs, interleaved.",
        "",
        "- **send+receive/s**: `await send(ch, m); await receive(ch)` on one channel, "
        "messages per second.",
        f"- **group_send/s**: `group_send` calls per second to a group of {GROUP_SIZE:,} "
        "members (x1,000 = deliveries queued per second); every member's copies are "
        "received afterwards to check nothing was dropped.",
        "- **GC off**: the same group_send loop with `gc.disable()`, to separate the "
        "layer's own cost from CPython's cyclic garbage collector, whose full "
        "collections walk every live object (so they cost more with 100,000 channels "
        "and with the queued copies piling up during the loop).",
        "- **existing channels**: channels that already hold one queued message each "
        "(as the channels of connected consumers do).",
        "",
        "| existing channels | metric | djwire | Channels 4.3.1 | djwire / Channels |",
        "|---:|---|---:|---:|---:|",
    ]
    for existing in sizes:
        for kind, label in (
            ("send_receive", "send+receive/s"),
            ("group_send", "group_send/s"),
            ("group_send_nogc", "group_send/s, GC off"),
        ):
            ours, theirs = med[(kind, "djwire", existing)], med[(kind, "channels", existing)]
            lines.append(
                f"| {existing:,} | {label} | {fmt(ours)} | {fmt(theirs)} | {ours / theirs:,.1f}x |"
            )
    small, large = sizes[0], sizes[-1]
    lines += [
        "",
        f"O(1) check (value at {large:,} existing channels / value at {small:,}):",
        "",
    ]
    for impl in IMPLS:
        parts = []
        for kind in kinds:
            ratio = med[(kind, impl, large)] / med[(kind, impl, small)]
            parts.append(f"{kind} {ratio:.2f}")
        lines.append(f"- {impl}: " + ", ".join(parts))
    target = med[("send_receive", "djwire", small)]
    lines += [
        "",
        f"Target (issue 2): djwire >= 500,000 send+receive/s — measured {fmt(target)}/s: "
        + ("met." if target >= 500_000 else f"MISSED by {fmt(500_000 - target)}/s."),
        "",
        "Raw samples (per second): "
        + "; ".join(
            f"{k[1]} {k[0]} @{k[2]}: " + ", ".join(fmt(v) for v in vals)
            for k, vals in samples.items()
        ),
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
