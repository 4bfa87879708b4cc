"""djwire supports Django 5.2 LTS and 6.x; the suite itself runs on 5.2 (Python 3.11).

Django 6 needs Python 3.12 or newer, so this runs the Django-facing part of the
suite (consumers, routing, sessions, auth, checks, the classic API, communicators,
the live server, Django served by ``djwire serve`` and ``runserver``, the demo
site) in a cached environment with such a Python and the newest Django 6, and
fails on a failing test or on a warning that djwire's own code causes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cached_venv import ROOT, cached_python, checkout_env, unavailable

DJANGO = "django>=6.0,<7"
TEST_DEPENDENCIES = [
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "pytest-django>=4.8",
    "pytest-timeout>=2.3",
    "hypothesis>=6",
]
CHECK = "import django, djwire, pytest_django; assert django.VERSION[0] == 6, django.VERSION"
DJANGO_FACING = [
    "tests/test_auth.py",
    "tests/test_checks.py",
    "tests/test_consumer.py",
    "tests/test_db.py",
    "tests/test_middleware.py",
    "tests/test_private_apis.py",
    "tests/test_public_api.py",
    "tests/test_routing.py",
    "tests/test_sessions.py",
    "tests/worker",
    "tests/gateway/test_in_process.py",
    "tests/classic",
    "tests/generic",
    "tests/security",
    "tests/testing",
    "tests/layers/test_memory.py",
    "tests/layers/test_contract.py",
    "tests/django_http",
    "tests/server/test_serve_django.py",
    "tests/server/test_runserver.py",
    "tests/examples/test_demo_site.py",
]


def python_for_django_6() -> str | None:
    """A Python >= 3.12: this one, one on PATH, or one pyenv installed."""
    if sys.version_info >= (3, 12):
        return sys.executable
    candidates = [found for name in ("python3.13", "python3.12") if (found := shutil.which(name))]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for pattern in ("3.13.*", "3.12.*"):
        found = sorted((pyenv_root / "versions").glob(f"{pattern}/bin/python"), reverse=True)
        candidates += [str(path) for path in found]
    for candidate in candidates:
        # pyenv's shims are on PATH for every version and fail for inactive ones.
        probe = [candidate, "-c", "import sys, venv; assert sys.version_info >= (3, 12)"]
        if subprocess.run(probe, capture_output=True, timeout=60).returncode == 0:
            return candidate
    return None


def djwire_warnings(output: str) -> list[str]:
    """Lines of pytest's warnings summary that point into djwire's own code."""
    summary = output.partition("warnings summary")[2].partition("short test summary")[0]
    return [line.strip() for line in summary.splitlines() if "/djwire/" in line]


@pytest.mark.timeout(900)
def test_the_django_facing_tests_pass_on_django_6() -> None:
    base = python_for_django_6()
    if base is None:
        unavailable("Django 6 needs Python 3.12+, and none is installed (PATH or pyenv)")
    install = ["-e", f"{ROOT}[redis]", DJANGO, *TEST_DEPENDENCIES]
    python = cached_python("django6-venv", base, install, CHECK)
    # The cached environment keeps the Django 6 it was made with; take a newer
    # 6.x when one is out (quick when there is none).
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--upgrade", DJANGO],
        capture_output=True,
        timeout=300,
    )
    version = subprocess.run(
        [str(python), "-c", "import django, sys; print(django.get_version(), sys.version)"],
        capture_output=True,
        text=True,
        check=True,
        env=checkout_env(),
    ).stdout.strip()
    assert version.startswith("6."), version
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not redis",
            *DJANGO_FACING,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=checkout_env(),
        timeout=840,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"Django {version}:\n{output[-6000:]}"
    assert re.search(r"\b\d{3,} passed\b", output.splitlines()[-1]), output[-2000:]
    assert " skipped" not in output.splitlines()[-1], output[-2000:]
    assert not djwire_warnings(output), f"Django {version}:\n" + "\n".join(djwire_warnings(output))
