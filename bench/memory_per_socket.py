"""Where the memory of an idle WebSocket goes: tracemalloc diff per connection.

    bench/.venv/bin/python bench/memory_per_socket.py djwire [--connections 2000]
    bench/.venv/bin/python bench/memory_per_socket.py uvicorn

Starts the row's server (W5 rows; python-module servers only: djwire, uvicorn)
under tracemalloc (bench/tools/traced.py), opens warm-up connections, snapshots,
opens ``--connections`` idle connections to /ws/echo/, snapshots again, and prints
the allocation sites that grew, in bytes per connection, plus the total next to
the RSS delta (the rest of RSS is allocator overhead and memory Python does not
trace). Writes bench/profiles/memory-<row>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench
import uvloop
from loadgen import IdleClient, close_all, connect_many, tree_rss

PROFILES = bench.BENCH / "profiles"
TRACED = bench.BENCH / "tools" / "traced.py"


class TracedServer(bench.Server):
    def command(self, port: int) -> list[str]:
        base = super().command(port)
        if self.kind == "djwire":
            module_args = base[base.index("-m") + 1 :]
        elif self.kind == "uvicorn":
            module_args = ["uvicorn", *base[1:]]
        else:
            raise SystemExit(f"{self.kind}: only python-module servers can be traced")
        prefix = str(PROFILES / f"snapshot-{self.kind}-{self.stack}-{os.getpid()}")
        return [sys.executable, str(TRACED), prefix, "-m", *module_args]


async def snapshot(server: bench.RunningServer, prefix: str, n: int) -> tracemalloc.Snapshot:
    done = Path(f"{prefix}.{n}.done")
    done.unlink(missing_ok=True)  # noqa: ASYNC240
    server.process.send_signal(10)  # SIGUSR1
    deadline = time.monotonic() + 120
    while not done.exists():  # noqa: ASYNC240
        if time.monotonic() > deadline:
            raise SystemExit("the server wrote no snapshot")
        await asyncio.sleep(0.1)
    return tracemalloc.Snapshot.load(f"{prefix}.{n}")


async def measure(row: bench.Row, connections: int, top: int) -> str:
    traced = TracedServer(row.server.kind, row.server.stack, row.server.app)
    prefix = str(PROFILES / f"snapshot-{traced.kind}-{traced.stack}-{os.getpid()}")
    server = bench.RunningServer(traced, "0", f"memory-{row.key}")
    try:
        server.wait_ready(timeout=60)
        warm, _, _ = await connect_many(server.port, "/ws/echo/", 20, IdleClient)
        await asyncio.sleep(1)
        before = await snapshot(server, prefix, 1)
        rss0 = tree_rss(server.pid)
        conns, _, failures = await connect_many(server.port, "/ws/echo/", connections, IdleClient)
        await asyncio.sleep(2)
        rss1 = tree_rss(server.pid)
        after = await snapshot(server, prefix, 2)
        await close_all([*conns, *warm])
    finally:
        server.stop()
    n = len(conns)
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(filters), after.filter_traces(filters)
    by_line = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in by_line)
    lines = [
        f"# {row.label}: {n} idle connections ({failures} failed)",
        f"RSS delta per connection (under tracemalloc): {(rss1 - rss0) / n / 1024:.1f} KiB",
        f"traced Python allocations per connection: {total / n / 1024:.2f} KiB",
        "",
        f"traced blocks per connection: {sum(s.count_diff for s in by_line) / n:.1f}",
        "",
        "bytes/conn  blocks/conn  allocation site",
    ]
    for stat in by_line[:top]:
        frame = stat.traceback[0]
        where = f"{frame.filename}:{frame.lineno}"
        lines.append(f"{stat.size_diff / n:10.0f}  {stat.count_diff / n:11.2f}  {where}")
    lines += ["", "largest sites with their callers:"]
    by_trace = after.compare_to(before, "traceback")
    for stat in by_trace[:8]:
        lines.append(
            f"\n{stat.size_diff / n:.0f} bytes/conn, {stat.count_diff / n:.2f} blocks/conn"
        )
        for frame in list(stat.traceback)[-6:]:
            lines.append(f"    {frame.filename}:{frame.lineno}")
    for n_ in (1, 2):
        Path(f"{prefix}.{n_}").unlink(missing_ok=True)  # noqa: ASYNC240
        Path(f"{prefix}.{n_}.done").unlink(missing_ok=True)  # noqa: ASYNC240
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("row", help="a W5 row key: djwire, djwire-channels, uvicorn")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    row = next((r for r in bench.ROWS["w5"] if r.key == args.row), None)
    if row is None:
        raise SystemExit(f"unknown W5 row {args.row!r}")
    PROFILES.mkdir(exist_ok=True)
    report = uvloop.run(measure(row, args.connections, args.top))
    out = PROFILES / f"memory-{row.key}.txt"
    out.write_text(report)
    print(report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
