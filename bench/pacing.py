"""What pacing (djwire/layers/pacing.py, issue 10) costs fan-out, in one process.

The in-memory layer, no sockets and no server, so the layer's own cost per call is
what is measured (bench/run.py W2 and W3 measure it end to end). Scenarios:

* ``direct-1000``: ``group_send`` of a ``websocket.send`` to 1,000 members with an
  attached (fake) socket each, 50 calls back to back (W2's burst): deliveries/s.
* ``handler-1000``: the same to 1,000 consumer-like members (a task each, waiting on
  ``claim_receive``, one more event-loop step per message), 50 calls back to back,
  until every member has all 50: deliveries/s.
* ``loop-1``: one member, 10,000 calls back to back from one coroutine (W3 in
  small): deliveries/s and how many arrived.

Variants: ``paced`` (the default, ``backpressure_timeout=1``), ``off``
(``backpressure_timeout=0``: Channels' behaviour, drops past capacity) and
``yield`` (off, plus one ``await asyncio.sleep(0)`` after every call: the other
fix the issue names). Run it on this tree, or on another checkout with
``PYTHONPATH=<that tree>`` (its djwire is then imported) to compare code versions.

    bench/.venv/bin/python bench/pacing.py [--runs 5] [--variants paced,off,yield]

Each cell runs in a fresh child process (uvloop), pinned with taskset; prints one
line of JSON per cell and a table of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

MEMBERS = 1_000
BURST = 50
LOOP_CALLS = 10_000
TEXT = "x" * 100


class FakeSocket:
    """Takes every frame at once: the layer's cost alone, no transport. Slots, as the
    server's session has."""

    __slots__ = ("frame_encoder", "frames", "write_paused")

    def __init__(self) -> None:
        self.frames = 0
        self.write_paused = False
        self.frame_encoder = self.encode

    def encode(self, text: str | None, data: bytes | None) -> bytes:
        return (text or "").encode() if data is None else data

    def write_frame(self, frame: bytes) -> bool:
        self.frames += 1
        return True

    def drain_future(self) -> asyncio.Future[None]:  # never paused here
        raise AssertionError


def make_layer(variant: str) -> Any:
    from djwire.layers import InMemoryChannelLayer

    timeout = 1.0 if variant == "paced" else 0
    # An older djwire ignores the unknown keyword (extra CONFIG keys are tolerated).
    return InMemoryChannelLayer(capacity=100, backpressure_timeout=timeout)


async def send_all(layer: Any, group: str, message: dict[str, Any], calls: int, variant: str):
    for _ in range(calls):
        await layer.group_send(group, message)
        if variant == "yield":
            await asyncio.sleep(0)


async def direct(variant: str) -> dict[str, Any]:
    layer = make_layer(variant)
    encoder_socket = FakeSocket()
    sockets = []
    for _ in range(MEMBERS):
        channel = await layer.new_channel()
        socket = FakeSocket()
        socket.frame_encoder = encoder_socket.encode  # one encoder: one frame
        layer.attach_socket(channel, socket)
        await layer.group_add("fans", channel)
        sockets.append(socket)
    message = {"type": "websocket.send", "text": TEXT}
    await send_all(layer, "fans", message, 5, variant)  # warm-up
    t0 = time.perf_counter()
    await send_all(layer, "fans", message, BURST, variant)
    seconds = time.perf_counter() - t0
    delivered = sum(socket.frames for socket in sockets) - 5 * MEMBERS
    return {"deliveries_per_s": delivered / seconds, "delivered": delivered}


async def handler(variant: str) -> dict[str, Any]:
    layer = make_layer(variant)
    counts = [0] * MEMBERS
    loop = asyncio.get_running_loop()
    # Set when every member has this many messages: after the warm-up, and at the end.
    milestones = {5: loop.create_future(), 5 + BURST: loop.create_future()}
    reached = dict.fromkeys(milestones, 0)

    async def member(index: int, channel: str) -> None:
        while True:
            await layer.claim_receive(channel)
            await asyncio.sleep(0)  # a handler's await (its self.send)
            counts[index] += 1
            if counts[index] in reached:
                reached[counts[index]] += 1
                if reached[counts[index]] == MEMBERS:
                    milestones[counts[index]].set_result(None)

    tasks = []
    for index in range(MEMBERS):
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        tasks.append(asyncio.ensure_future(member(index, channel)))
    await asyncio.sleep(0.05)
    message = {"type": "chat.message", "text": TEXT}
    await send_all(layer, "room", message, 5, variant)  # warm-up
    await asyncio.wait_for(milestones[5], 60)
    t0 = time.perf_counter()
    await send_all(layer, "room", message, BURST, variant)
    await asyncio.wait_for(milestones[5 + BURST], 60)
    seconds = time.perf_counter() - t0
    for task in tasks:
        task.cancel()
    delivered = sum(counts) - 5 * MEMBERS
    return {"deliveries_per_s": delivered / seconds, "delivered": delivered}


async def loop_one(variant: str) -> dict[str, Any]:
    layer = make_layer(variant)
    channel = await layer.new_channel()
    await layer.group_add("one", channel)
    got = [0]

    async def member() -> None:
        while True:
            await layer.claim_receive(channel)
            await asyncio.sleep(0)
            got[0] += 1

    task = asyncio.ensure_future(member())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    await send_all(layer, "one", {"type": "chat.message", "text": TEXT}, LOOP_CALLS, variant)
    deadline = time.monotonic() + 10
    last = -1
    while got[0] != last and time.monotonic() < deadline:  # until nothing more comes
        last = got[0]
        for _ in range(10):
            await asyncio.sleep(0)
    seconds = time.perf_counter() - t0
    task.cancel()
    return {"deliveries_per_s": got[0] / seconds, "delivered": got[0]}


SCENARIOS = {"direct-1000": direct, "handler-1000": handler, "loop-1": loop_one}


def child(scenario: str, variant: str) -> None:
    import uvloop

    result = uvloop.run(SCENARIOS[scenario](variant))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--variants", default="paced,off,yield")
    parser.add_argument("--cpu", default="0")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import djwire

    print(f"djwire from {os.path.dirname(djwire.__file__)}", flush=True)
    variants = args.variants.split(",")
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for scenario in SCENARIOS:
            for variant in variants:  # interleaved, so drift hits every variant alike
                pin = ["taskset", "-c", args.cpu] if args.cpu else []
                command = [*pin, sys.executable, __file__, "--child", scenario, variant]
                out = subprocess.run(command, capture_output=True, text=True, timeout=120)
                if out.returncode:
                    raise SystemExit(out.stderr[-2000:])
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(scenario, variant, json.dumps(result), flush=True)
                samples.setdefault((scenario, variant), []).append(result)
    print("\n| scenario | variant | deliveries/s (median) | delivered (median) |")
    print("|---|---|---:|---:|")
    for (scenario, variant), results in samples.items():
        rate = statistics.median(r["deliveries_per_s"] for r in results)
        delivered = statistics.median(r["delivered"] for r in results)
        print(f"| {scenario} | {variant} | {rate:,.0f} | {delivered:,.0f} |")


if __name__ == "__main__":
    main()
