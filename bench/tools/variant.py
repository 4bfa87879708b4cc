"""Run ``python -m djwire serve ...`` with an experimental change, to measure a
proposal before anyone edits djwire (bench/run.py --variant NAME=VAR=VALUE+VAR=VALUE).

Settings (environment variables set by run.py):
  BENCH_GC_FREEZE=1          import the app, gc.collect() and gc.freeze() before serving
  BENCH_GC_THRESHOLD=a,b,c   gc.set_threshold(a, b, c)
  BENCH_CACHED_LOOP=1        djwire.layers.local and djwire.utils get the running loop
                             from a cache instead of asyncio.get_running_loop() (which
                             makes a getpid() system call each time on Python 3.11);
                             single-threaded apps only: an experiment, not a fix
  BENCH_DJWIRE_PATH=DIR      import djwire from DIR/djwire (another branch's tree, e.g.
                             from `git archive main djwire`) to compare two trees in
                             one run; PYTHONPATH cannot do it (run.py sets it)
"""

import gc
import importlib
import os
import runpy
import sys
import types

if sys.argv[1] != "-m":
    raise SystemExit("usage: variant.py -m djwire serve APP ...")
module = sys.argv[2]
rest = sys.argv[3:]

if tree := os.environ.get("BENCH_DJWIRE_PATH"):
    sys.path.insert(0, tree)

if os.environ.get("BENCH_CACHED_LOOP"):
    import asyncio

    from djwire.layers import local
    from djwire.server import loops

    current: list = [None]
    make_factory = loops.loop_factory

    def loop_factory(kind):
        factory = make_factory(kind)

        def new_loop():
            loop = current[0] = factory()
            return loop

        return new_loop

    loops.loop_factory = loop_factory
    cached = types.SimpleNamespace(**vars(asyncio))
    cached.get_running_loop = lambda: current[0]
    local.asyncio = cached
    local._running_loop = lambda: current[0]
    import djwire.utils

    djwire.utils.asyncio = cached

if os.environ.get("BENCH_GC_FREEZE"):
    app = next(a for a in rest[1:] if not a.startswith("-"))
    importlib.import_module(app.split(":")[0])
    gc.collect()
    gc.freeze()

if threshold := os.environ.get("BENCH_GC_THRESHOLD"):
    gc.set_threshold(*(int(x) for x in threshold.split(",")))

sys.argv = [module, *rest]
runpy.run_module(module, run_name="__main__", alter_sys=True)
