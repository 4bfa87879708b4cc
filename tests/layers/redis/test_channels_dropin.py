"""djwire's Redis layer as a drop-in backend for a stock Django Channels 4 project.

Channels is not a djwire dependency; it lives in bench/.venv (made by
bench/setup.sh). The app runs there as a subprocess against a private Redis.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parents[3]
BENCH_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
APP = Path(__file__).with_name("channels_dropin_app.py")


def test_stock_channels_project_runs_on_djwire_redis_layer(redis_server: RedisServer) -> None:
    if not BENCH_PYTHON.exists():
        pytest.skip("bench/.venv is missing (run bench/setup.sh to install Django Channels there)")
    check = subprocess.run(
        [str(BENCH_PYTHON), "-c", "import channels, djwire"], capture_output=True, timeout=60
    )
    if check.returncode:
        pytest.skip(f"bench/.venv lacks channels or djwire: {check.stderr.decode()[-300:]}")
    result = subprocess.run(
        [str(BENCH_PYTHON), str(APP), redis_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert result.stdout.strip().endswith("OK"), output[-3000:]
