"""Run a Python server module under tracemalloc; SIGUSR1 dumps a snapshot.

    python bench/tools/traced.py OUT_PREFIX -m djwire serve app:application ...

Each SIGUSR1 writes OUT_PREFIX.<n> (n = 1, 2, ...) with tracemalloc's snapshot
format; bench/memory_per_socket.py compares them.
"""

import os
import runpy
import signal
import sys
import tracemalloc

prefix = sys.argv[1]
if sys.argv[2] != "-m":
    raise SystemExit("usage: traced.py OUT_PREFIX -m module [args...]")
module = sys.argv[3]
tracemalloc.start(int(os.environ.get("TRACE_DEPTH", "12")))
dumps = 0


def dump(signum, frame):
    global dumps
    dumps += 1
    tracemalloc.take_snapshot().dump(f"{prefix}.{dumps}")
    with open(f"{prefix}.{dumps}.done", "w"):
        pass


signal.signal(signal.SIGUSR1, dump)
sys.argv = [module, *sys.argv[4:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
