"""WebSocket conformance: Autobahn|Testsuite cases 1-7 and 10 against ``djwire serve``.

The full set (adding 9, 12 and 13, several minutes) runs with
``python compliance/run.py``. wstest needs Python 2.7; it is installed on first use
when pyenv has 2.7.18. Without Python 2.7 this test skips, except under CI.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from tests.support.unavailable import unavailable

ROOT = Path(__file__).resolve().parents[2]


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "djwire_compliance", ROOT / "compliance" / "run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_autobahn_cases_1_to_7_and_10_all_pass(tmp_path: Path) -> None:
    runner = load_runner()
    try:
        runner.ensure_wstest()
    except runner.Unavailable as exc:
        unavailable(f"Autobahn wstest unavailable: {exc}")
    results = runner.run(runner.FAST_CASES, reports=tmp_path, limit=600)
    assert len(results) >= 240, "fewer cases ran than cases 1-7 and 10 hold"
    assert runner.failures(results) == {}
    assert {"1.1.1", "5.19", "6.4.1", "7.1.5", "10.1.1"} <= set(results)
