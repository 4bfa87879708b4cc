"""What a test does when something it needs cannot be had here: skip, but fail under CI.

CI sets ``CI``; there every tool must be present, so a green CI proves the tests ran.
"""

from __future__ import annotations

import os
from typing import NoReturn


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI (env ``CI`` set), fail with it instead."""
    import pytest  # not at import time: benchmarks use these helpers without pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)
