"""Render bench/redis_results.json into bench/RESULTS-redis.md and bench/redis_results.png.

    bench/.venv/bin/python bench/redis_report.py

The measurements come from bench/redis_layer.py and bench/redis_e2e.py; this only
takes medians, ratios and draws. Hand-written analysis lives in the "Notes" part of
the template below and is kept in sync by hand.
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "redis_results.json"
REPORT = HERE / "RESULTS-redis.md"
CHART = HERE / "redis_results.png"

LAYERS = {
    "djwire": "djwire",
    "core": "channels_redis core",
    "pubsub": "channels_redis pubsub",
}
#: The issue's targets.
TARGET_SEND_RECEIVE = 30_000
TARGET_GROUP_1000_MS = 5.0


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def layer_tables(layer: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    samples = layer["samples"]
    lines = []
    summary: dict[str, Any] = {}
    lines += [
        "### send+receive between two processes",
        "",
        "| layer | messages/s (median) | runs | vs channels_redis core |",
        "|---|---:|---|---:|",
    ]
    rates = {}
    for impl in LAYERS:
        runs = samples.get(f"send_receive/{impl}")
        if runs:
            rates[impl] = median([r["per_second"] for r in runs])
    for impl, rate in rates.items():
        runs = ", ".join(fmt(r["per_second"]) for r in samples[f"send_receive/{impl}"])
        ratio = rate / rates["core"] if rates.get("core") else float("nan")
        lines.append(f"| {LAYERS[impl]} | {fmt(rate)} | {runs} | {fmt(ratio, 1)}x |")
    summary["send_receive"] = rates
    lines += [
        "",
        "### group_send, members all in one other process",
        "",
        "Time of the `group_send` call, time until every member received the message, "
        "and deliveries/s (= members / time until all received). Medians over runs of the "
        "per-run medians of 10 sends (5 at 10,000 members).",
        "",
        "| members | layer | call ms | all received ms | deliveries/s | all received vs core |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    sizes = sorted({int(key.split("/")[2]) for key in samples if key.startswith("group/")})
    groups: dict[str, dict[int, float]] = {}
    for members in sizes:
        core_all = median([r["all_ms"] for r in samples.get(f"group/core/{members}", [])])
        for impl in LAYERS:
            runs = samples.get(f"group/{impl}/{members}")
            if not runs:
                continue
            call = median([r["call_ms"] for r in runs])
            until_all = median([r["all_ms"] for r in runs])
            rate = median([r["deliveries_per_s"] for r in runs])
            groups.setdefault(impl, {})[members] = until_all
            speedup = core_all / until_all if until_all else float("nan")
            lines.append(
                f"| {members:,} | {LAYERS[impl]} | {fmt(call, 2)} | {fmt(until_all, 2)} | "
                f"{fmt(rate)} | {fmt(speedup, 1)}x faster |"
            )
    summary["group"] = groups
    return lines, summary


def e2e_table(e2e: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    lines = [
        "| row | burst deliveries/s | burst p50 ms | burst p99 ms | paced p50 ms | "
        "paced p99 ms | delivered | server exceptions per run |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    summary: dict[str, Any] = {}
    for row, runs in e2e["samples"].items():
        ok = [r for r in runs if "burst" in r]
        burst = [r["burst"] for r in ok]
        paced = [r["paced"] for r in ok if "paced" in r]
        rate = median([b["deliveries_per_s"] for b in burst])
        p50 = median([b["p50_ms"] for b in burst])
        p99 = median([b["p99_ms"] for b in burst])
        summary[row] = {"rate": rate, "p50": p50, "p99": p99}
        delivered = ", ".join(f"{b['deliveries']:,}/{b['expected_deliveries']:,}" for b in burst)
        errors = len(runs) - len(ok)
        if errors:
            delivered += f" ({errors} run(s) failed)"
        lines.append(
            f"| {e2e['labels'][row]} | {fmt(rate)} | {fmt(p50)} | {fmt(p99)} | "
            f"{fmt(median([p['p50_ms'] for p in paced]), 1)} | "
            f"{fmt(median([p['p99_ms'] for p in paced]), 1)} | {delivered} | "
            f"{exceptions(runs)} |"
        )
    return lines, summary


def exceptions(runs: list[dict[str, Any]]) -> str:
    counts = [r.get("server_errors") for r in runs if r.get("server_errors")]
    if not counts or not any(c["asgi_exceptions"] for c in counts):
        return "none"
    return ", ".join(
        f"{c['asgi_exceptions']} (MaxConnectionsError: {c['in_group_add']} in group_add, "
        f"{c['in_group_discard']} in group_discard)"
        for c in counts
    )


def chart(layer: dict[str, Any] | None, e2e_summary: dict[str, Any] | None, labels: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 9))
    grid = fig.add_gridspec(2, 2)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    colors = {"djwire": "#2a7ab9", "core": "#c0504d", "pubsub": "#e8a33d"}
    if layer:
        rates = layer["send_receive"]
        ax = axes[0]
        names = list(rates)
        ax.bar([LAYERS[n].replace("channels_redis ", "channels_redis\n") for n in names],
               [rates[n] for n in names],
               color=[colors[n] for n in names])  # fmt: skip
        ax.axhline(TARGET_SEND_RECEIVE, color="grey", linestyle="--", label="target")
        ax.set_title("send+receive between 2 processes")
        ax.set_ylabel("messages/s (higher is better)")
        ax.tick_params(axis="x", labelsize=8)
        ax.legend()
        ax = axes[1]
        for impl, points in layer["group"].items():
            sizes = sorted(points)
            ax.plot(sizes, [points[s] for s in sizes], marker="o", label=LAYERS[impl],
                    color=colors[impl])  # fmt: skip
        ax.scatter([1000], [TARGET_GROUP_1000_MS], marker="*", s=150, color="grey",
                   label="target (1,000)", zorder=5)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title("group_send: until every member received")
        ax.set_xlabel("members")
        ax.set_ylabel("ms (lower is better)")
        ax.legend(fontsize=8)
    if e2e_summary:
        ax = axes[2]
        rows = list(e2e_summary)
        ax.barh([labels[r] for r in rows], [e2e_summary[r]["rate"] for r in rows],
                color=["#2a7ab9" if "djwire" in r else "#c0504d" for r in rows])  # fmt: skip
        ax.set_title("end to end: 1,000 clients, 2 processes, 50-send burst")
        ax.set_xlabel("deliveries/s (higher is better)")
        ax.tick_params(axis="y", labelsize=9)
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)


def main() -> None:
    data = json.loads(RESULTS.read_text())
    out = [
        "# Redis channel layer: djwire vs channels_redis",
        "",
        f"Machine: {platform.machine()}, 2 cores (shared with teammates' jobs: expect noise), "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        "redis-server 7.0 (a fresh private server per measurement, no persistence), "
        "channels_redis 4.3.0 on redis-py 8.1, Channels 4.3.1.",
        "",
        "![chart](redis_results.png)",
        "",
    ]
    layer_summary = None
    e2e_summary = None
    labels: dict[str, str] = {}
    if "layer" in data:
        layer = data["layer"]
        out += [
            "## The layer between two processes",
            "",
            f"`{layer['command']}` ({layer['when']}; {layer['runs']} runs, interleaved). "
            "Sender and redis-server pinned to core 0, receiver to core 1; uvloop; 64 sends "
            "in flight; messages of ~100 bytes.",
            "",
        ]
        lines, layer_summary = layer_tables(layer)
        out += [*lines, ""]
    if "e2e" in data:
        e2e = data["e2e"]
        labels = e2e["labels"]
        out += [
            "## End to end: WebSocket clients over 2 server processes",
            "",
            f"`{e2e['command']}` ({e2e['when']}; {e2e['runs']} runs, interleaved). "
            f"{e2e['members']:,} member clients (picows, core 1) over 2 server processes "
            f"(core 0, with redis-server); {e2e['burst']} sends back to back (burst) and "
            f"{e2e['paced']} one at a time (paced). Latency: server stamp right before "
            "`group_send` -> the last member's receipt.",
            "",
        ]
        lines, e2e_summary = e2e_table(e2e)
        out += [*lines, ""]
    out += targets(layer_summary, e2e_summary)
    out += NOTES.splitlines()
    REPORT.write_text("\n".join(out) + "\n")
    chart(layer_summary, e2e_summary, labels)
    print(f"wrote {REPORT} and {CHART}")


def targets(layer: dict[str, Any] | None, e2e: dict[str, Any] | None) -> list[str]:
    lines = ["## Targets (issue 4)", ""]
    if layer:
        rate = layer["send_receive"].get("djwire", float("nan"))
        met = "met" if rate >= TARGET_SEND_RECEIVE else "NOT met"
        lines.append(
            f"- send+receive >= {TARGET_SEND_RECEIVE:,} msgs/s between two processes: "
            f"{fmt(rate)} — {met}."
        )
        group = layer["group"].get("djwire", {}).get(1000, float("nan"))
        met = "met" if group <= TARGET_GROUP_1000_MS else "NOT met"
        lines.append(
            f"- group_send to 1,000 until all received <= {TARGET_GROUP_1000_MS} ms: "
            f"{fmt(group, 2)} ms — {met}."
        )
    if e2e and "uvicorn-core" in e2e:
        core = e2e["uvicorn-core"]
        for row in ("djwire", "djwire-direct"):
            if row not in e2e:
                continue
            mine = e2e[row]
            ratio = mine["rate"] / core["rate"]
            p99_ratio = mine["p99"] / core["p99"]
            verdict = (
                "met" if ratio >= 10 and p99_ratio <= 0.1 else
                "p99 met, deliveries/s NOT met" if p99_ratio <= 0.1 else
                "deliveries/s met, p99 NOT met" if ratio >= 10 else "NOT met"
            )  # fmt: skip
            lines.append(
                f"- end to end, {row}: >= 10x channels_redis core's deliveries/s and p99 <= "
                f"1/10 of its, same run: {fmt(ratio, 1)}x, p99 {fmt(p99_ratio, 3)} of core's "
                f"— {verdict}. Against the issue's reference for core (2,900-3,400/s, p99 "
                f"1.3-1.9 s): {fmt(mine['rate'] / 3400, 1)}-{fmt(mine['rate'] / 2900, 1)}x, "
                f"p99 {fmt(mine['p99'] / 1900, 3)}-{fmt(mine['p99'] / 1300, 3)}."
            )
    return [*lines, ""]


NOTES = """## Notes

- **This machine state is slower than the previous run's, and one target is missed.**
  channels_redis core took 47-88 ms to reach 1,000 members here (issue 4: 48.5 ms),
  against 34 ms in the previous run. The interface-server run of the same hour needed
  about twice the server CPU per message for every stack (see bench/NOTES.md).
  - **group_send to 1,000 until all received: 4.91 ms against <= 5 ms (runs 8.74,
    4.91 and 4.90 ms; met by the median, by a hair).** An hour earlier, on the same
    machine, the tree before commit 211c4b8 measured 6.46 ms. What scales with members
    is the receiving process waking 1,000 waiting `receive()` calls. Before 211c4b8,
    each one was woken and then took its message from the queue. Now a message for an
    empty channel is handed to the waiting receive directly; a receive cancelled
    before it runs puts the message back. On one core, in-memory fan-out to 1,000 such
    receivers went from 5.3 to 3.3 ms, where waking 1,000 bare futures takes 1.1 ms.
    The Redis hop (group lookup, one inbox push, wake-up, take) adds about 1.5 ms.
  - **End to end, handler path: 9.9x core's deliveries/s against >= 10x (missed by
    1 %).** The per-run ratios are 10.0x, 8.4x and 9.6x; in the previous run the same
    code measured 11.6x. p99 is 0.048 of core's (target <= 0.1: met). The direct path
    meets both (27.7x, p99 0.019). The limit is the consumer work per delivery on
    core 0, which both server processes and redis-server share (see the last note).
    Consumers wait on claims, which were already handed over, so 211c4b8 does not
    change this path, and the end-to-end table was not re-run after it.
- **Why djwire's layer is faster.** A group message crosses Redis once per process
  that has members (one inbox item, serialized once) and is fanned out in memory;
  channels_redis core runs one Lua push per member channel, and its receivers poll
  with BZPOPMIN. Commands are auto-pipelined: what a process issues in one event-loop
  turn goes out in one write on one connection per node per event loop, so 64
  concurrent sends cost about one round trip and there is no pool to exhaust.
- **channels_redis core fails under 1,000 concurrent clients on redis-py 8.** In every
  end-to-end run its consumers raised `MaxConnectionsError` (redis-py 8 caps an
  asyncio pool at 100 connections): a few handshakes (`group_add`), and ~700 of the
  1,000 disconnects (`group_discard`), which leaves stale members in Redis until
  `group_expiry` (a day by default). djwire's layer and the pub/sub layer logged no
  exception. The micro-benchmark sets members up 50 at a time so core can run at all.
- **pubsub is close on group_send latency** because it is O(processes) too (one PUBLISH
  per group) and takes one hop less than djwire's inbox (djwire: read the group's
  processes, push to each inbox, wake, take: ~0.15-0.3 ms more up to 1,000 members;
  at 10,000 members djwire is faster). The price of pub/sub is delivery at most once:
  whatever is published while a subscriber is disconnected is gone (Redis docs,
  "Pub/Sub: delivery semantics"). djwire's inbox is a list: a reconnecting reader
  loses nothing, a Redis restart's losses are counted (tests/layers/redis/test_faults.py).
- **The end-to-end handler path is bounded by consumer work, not by the layer.** Both
  server processes and redis-server share core 0, so the burst is bounded by that
  core's CPU per delivery: a member consumer's dispatch plus its frame write. djwire's
  handler path over Redis with 2 processes is at the level of the single-process
  in-memory W2 handler path in bench/RESULTS.md. It was 7.5x core (48.6k/s) before
  consumers waited on the layer with a plain future and claims lost their per-message
  done-callback (commit d634f0d); this table is after. With Channels' consumers on
  uvicorn, swapping channels_redis for djwire's layer (the drop-in row) helps only
  modestly for the same reason. The direct row (a `websocket.send` group message
  written to every socket as one pre-encoded frame) removes the per-member consumer
  work.
- **Noise.** The machine is shared. Each sample records the CPU other processes used
  meanwhile; a sample where they used more than a quarter of a core is repeated (up to 3
  attempts, the least disturbed is kept). channels_redis core's end-to-end numbers vary
  most (p99 from ~0.6 s to ~3.6 s between runs).
"""


if __name__ == "__main__":
    main()
