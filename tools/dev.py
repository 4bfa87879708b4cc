#!/usr/bin/env python3
"""Set up djwire's development environment and run the demo or the test suite.

    python3 tools/dev.py demo    # .venv + dependencies, then the demo site on :8000
    python3 tools/dev.py test    # .venv + dependencies, then ruff, mypy and pytest

Needs only Python 3.11+ and git. The virtualenv lives in .venv at the repository
root and is reused; dependencies are reinstalled when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"
STAMP = VENV / ".djwire-installed"


def run(*args: str | Path, cwd: Path = ROOT) -> None:
    result = subprocess.run([str(a) for a in args], cwd=cwd)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be run by an older python3
        sys.exit("djwire needs Python 3.11 or newer; run this script with python3.11+")
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        run(sys.executable, "-m", "venv", VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("Installing djwire and its development dependencies into .venv ...", flush=True)
    run(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "-q", "-e", ".[dev]")
    STAMP.write_text(digest)


def demo(args: list[str]) -> None:
    examples = ROOT / "examples"
    run(PYTHON, "manage.py", "migrate", "--noinput", cwd=examples)
    run(PYTHON, "manage.py", "demo_data", cwd=examples)
    addr = args[0] if args else "127.0.0.1:8000"
    print(f"\nThe demo runs on http://{addr}/ (Ctrl-C stops it)\n", flush=True)
    os.chdir(examples)
    os.execv(PYTHON, [str(PYTHON), "manage.py", "runserver", addr, *args[1:]])


def test(args: list[str]) -> None:
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy")
    # pytest runs last, so its summary line is the last thing printed.
    os.execv(PYTHON, [str(PYTHON), "-m", "pytest", *args])


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        sys.exit(__doc__)
    ensure_venv()
    {"demo": demo, "test": test}[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
