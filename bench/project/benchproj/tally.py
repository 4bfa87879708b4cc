"""Counting inside the consumer, for bench/workers.py (stack-neutral: no Channels, no djwire).

The task consumers call :func:`record` with each message's number. The process keeps
one byte per message number (how many times it was handled here) and the monotonic
time of its first and last message; a daemon thread writes them to
``$BENCH_TALLY_DIR/<pid>.json`` (with the process's CPU time at the first message) and
``<pid>.seen`` every ``WRITE_EVERY`` seconds
(atomically, by rename) while they change. So the rate comes from the consumer's own
clock, not from when somebody outside looked, and the files are complete even when
the process is killed (Channels' runworker has no graceful stop).

Disabled (``record`` does nothing) unless ``BENCH_TALLY_DIR`` and ``BENCH_TALLY_SIZE``
are set.
"""

import json
import os
import threading
import time

WRITE_EVERY = 0.1

_directory = os.environ.get("BENCH_TALLY_DIR", "")
_size = int(os.environ.get("BENCH_TALLY_SIZE", "0") or 0)
_seen = bytearray(_size)
_first_ns = 0
_first_cpu = 0.0
_last_ns = 0
_out_of_range = 0
_writer = None
_start_lock = threading.Lock()


def record(number):
    """One message handled (``number`` in ``range(BENCH_TALLY_SIZE)``)."""
    global _first_ns, _first_cpu, _last_ns, _out_of_range
    now = time.monotonic_ns()
    if not _first_ns:
        _first_ns = now
        _first_cpu = time.process_time()  # the whole process: every thread
        _start_writer()
    _last_ns = now
    if 0 <= number < _size:
        # Different threads (sync consumers) never share a number, except when a
        # message is handled twice, which is what the byte counts are for.
        if _seen[number] < 255:
            _seen[number] += 1
    else:
        _out_of_range += 1


def _start_writer():
    global _writer
    if not _directory:
        return
    with _start_lock:
        if _writer is None:
            _writer = threading.Thread(target=_write_forever, name="bench-tally", daemon=True)
            _writer.start()


def _write_forever():
    written = None
    while True:
        state = (_last_ns, _out_of_range)
        if state != written:
            _write()
            written = state
        time.sleep(WRITE_EVERY)


def _write():
    pid = os.getpid()
    base = os.path.join(_directory, str(pid))
    seen = bytes(_seen)
    with open(base + ".seen.tmp", "wb") as out:
        out.write(seen)
    os.replace(base + ".seen.tmp", base + ".seen")
    summary = {
        "pid": pid,
        "handled": sum(seen),
        "first_ns": _first_ns,
        "first_cpu": _first_cpu,
        "last_ns": _last_ns,
        "out_of_range": _out_of_range,
        "cpu": time.process_time(),  # at most WRITE_EVERY after the last message
        "written_ns": time.monotonic_ns(),
    }
    with open(base + ".json.tmp", "w") as out:
        json.dump(summary, out)
    os.replace(base + ".json.tmp", base + ".json")
