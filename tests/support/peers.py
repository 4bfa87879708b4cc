"""A Python environment with the peers djwire is compared with (never djwire deps).

Some tests run djwire's framework under uvicorn and daphne, or djwire's Redis
layer inside a stock Django Channels project. Those packages must not be djwire
dependencies, so they live in a separate virtualenv: ``bench/.venv`` when
``bench/setup.sh`` made it, otherwise a cached one (see :mod:`.cached_venv`) with
djwire installed editable plus the peers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cached_venv import ROOT, cached_python, usable

BENCH_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
PEERS = ["uvicorn", "daphne", "channels==4.3.1", "channels_redis"]
CHECK = "import uvicorn, daphne, channels, channels_redis, redis, hiredis, djwire"


def peers_python() -> Path:
    """A python with uvicorn, daphne, channels, channels_redis and djwire importable."""
    if usable(BENCH_PYTHON, CHECK):
        return BENCH_PYTHON
    return cached_python("peers-venv", sys.executable, ["-e", f"{ROOT}[redis]", *PEERS], CHECK)
