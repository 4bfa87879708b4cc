"""Virtualenvs that some tests need besides the test environment, made once and cached.

They hold what must never be a djwire dependency (the peers djwire is compared
with) or another Python/Django pair than the one the suite runs on. Each lives in
``~/.cache/djwire/<name>`` (``XDG_CACHE_HOME`` honoured), is checked by importing
what it must provide, and is rebuilt when that check fails. Where it cannot be
made (no network, no suitable Python), the test skips with the reason, and fails
under CI, so a green CI proves it ran.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .unavailable import unavailable

ROOT = Path(__file__).resolve().parents[2]


def checkout_env() -> dict[str, str]:
    """Environment for a cached python: djwire comes from this checkout.

    A cached environment may have been built from another checkout; PYTHONPATH
    puts this one first, so the code under test is always the code being tested.
    """
    return dict(os.environ, PYTHONPATH=str(ROOT))


def usable(python: Path, check: str) -> bool:
    """Whether ``python`` exists and runs the ``check`` code successfully."""
    if not python.exists():
        return False
    result = subprocess.run(
        [str(python), "-c", check], capture_output=True, cwd=ROOT, env=checkout_env(), timeout=120
    )
    return result.returncode == 0


def _build(base_python: str, venv: Path, install: Sequence[str]) -> str | None:
    """Make the environment; None on success, else why it failed."""
    python = venv / "bin" / "python"
    steps = [
        [base_python, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *install],
    ]
    for step in steps:
        if step[0] == str(python) and not python.exists():
            return "the virtualenv was not created"
        result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if result.returncode:
            return f"{' '.join(step[:5])} failed: {(result.stdout + result.stderr)[-800:]}"
    return None


class EnvironmentUnavailable(RuntimeError):
    """A cached environment cannot be made here (the message says why)."""


def cache_dir() -> Path:
    """``~/.cache/djwire`` (``XDG_CACHE_HOME`` honoured), where cached things live."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "djwire"


def build_cached_python(name: str, base_python: str, install: Sequence[str], check: str) -> Path:
    """The python of the cached environment ``name``, built from ``base_python`` with
    ``pip install *install`` unless it already passes ``check`` (Python code).

    Raises :class:`EnvironmentUnavailable` when it cannot be made; for scripts that
    run without pytest (tests use :func:`cached_python`).
    """
    venv = cache_dir() / name
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if not usable(python, check):
            problem = _build(base_python, venv, install)
            if problem is None and not usable(python, check):
                problem = "what it must provide is still not importable after installing it"
            if problem is not None:
                raise EnvironmentUnavailable(
                    f"cannot make the {name} environment in {venv}: {problem}"
                )
    return python


def cached_python(name: str, base_python: str, install: Sequence[str], check: str) -> Path:
    """:func:`build_cached_python`, skipping the test (failing it under CI) when the
    environment cannot be made."""
    try:
        return build_cached_python(name, base_python, install, check)
    except EnvironmentUnavailable as exc:
        unavailable(str(exc))
