"""How much CPU other people's processes took while a measurement ran.

The machine is shared; a measurement during which foreign processes used a good
part of a core is repeated (bounded) by the Redis benchmarks, and every sample
records the foreign load it ran under.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

T = TypeVar("T")
#: A measurement is "disturbed" when others used more than this many cores on average.
DISTURBED = 0.25
TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def _our_seconds() -> float:
    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def foreign_load(work: Callable[[], T]) -> tuple[T, float]:
    """Run ``work``; return its result and the cores used meanwhile by others."""
    busy0, ours0, start = _busy_seconds(), _our_seconds(), time.monotonic()
    result = work()
    busy1, ours1, elapsed = _busy_seconds(), _our_seconds(), time.monotonic() - start
    return result, max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / max(elapsed, 1e-6))


def calm_measurement(work: Callable[[], dict[str, Any]], attempts: int = 3) -> dict[str, Any]:
    """``work()`` repeated (at most ``attempts`` times) until others stayed below
    DISTURBED; the least disturbed sample is kept, with its foreign load."""
    best: dict[str, Any] | None = None
    for _ in range(attempts):
        result, load = foreign_load(work)
        result["foreign_cores"] = round(load, 3)
        if best is None or load < best["foreign_cores"]:
            best = result
        if load <= DISTURBED:
            break
        time.sleep(2)
    assert best is not None
    return best
