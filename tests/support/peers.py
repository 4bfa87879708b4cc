"""A Python environment with the peers djwire is compared with (never djwire deps).

Some tests run djwire's framework under uvicorn and daphne, or djwire's Redis
layer inside a stock Django Channels project. Those packages must not be djwire
dependencies, so they live in a separate virtualenv: ``bench/.venv`` when
``bench/setup.sh`` made it, otherwise one this module makes once in the user's
cache directory (djwire installed editable, plus the peers). Where that cannot be
done (no network, no venv module), tests skip with the reason — and fail under CI.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
PEERS = ["uvicorn", "daphne", "channels==4.3.1", "channels_redis"]
MODULES = ["uvicorn", "daphne", "channels", "channels_redis", "redis", "hiredis", "djwire"]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "djwire" / "peers-venv"


def _has_modules(python: Path) -> bool:
    if not python.exists():
        return False
    code = "import " + ", ".join(MODULES)
    check = subprocess.run(
        [str(python), "-c", code], capture_output=True, cwd=ROOT, env=peers_env(), timeout=120
    )
    return check.returncode == 0


def peers_env() -> dict[str, str]:
    """Environment for running the peers python: djwire comes from this checkout.

    The cached environment may have been built from another checkout; PYTHONPATH
    puts this one first, so the code under test is always the code being tested.
    """
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _build(venv: Path) -> str | None:
    """Make the cached environment; None on success, else why it failed."""
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[redis]", *PEERS],
    ]
    for step in steps:
        if step[0] == str(python) and not python.exists():
            return "the virtualenv was not created"
        result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if result.returncode:
            return f"{' '.join(step[:4])} failed: {(result.stdout + result.stderr)[-800:]}"
    return None


def peers_python() -> Path:
    """A python with uvicorn, daphne, channels, channels_redis and djwire importable."""
    if _has_modules(BENCH_PYTHON):
        return BENCH_PYTHON
    venv = _cache_dir()
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "peers-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if not _has_modules(python):
            problem = _build(venv)
            if problem is None and not _has_modules(python):
                problem = "the peers are still not importable after installing them"
            if problem is not None:
                reason = f"cannot make the peers environment in {venv}: {problem}"
                if os.environ.get("CI"):
                    pytest.fail(reason)
                pytest.skip(reason)
    return python
