"""djwire's Redis layer as a drop-in backend for a stock Django Channels 4 project.

Channels is not a djwire dependency; the app runs as a subprocess in the peers
environment (tests/support/peers.py) against a private Redis.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cached_venv import checkout_env
from tests.support.peers import peers_python
from tests.support.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parents[3]
APP = Path(__file__).with_name("channels_dropin_app.py")


def test_stock_channels_project_runs_on_djwire_redis_layer(redis_server: RedisServer) -> None:
    result = subprocess.run(
        [str(peers_python()), str(APP), redis_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=checkout_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert result.stdout.strip().endswith("OK"), output[-3000:]
