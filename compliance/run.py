#!/usr/bin/env python3
"""Autobahn|Testsuite against ``djwire serve`` with an echo app.

    python compliance/run.py            # the full set: 1-7, 9, 10, 12, 13 (minutes)
    python compliance/run.py --fast     # 1-7 and 10 (well under a minute)
    python compliance/run.py --cases 6.4.* 7.*

Starts ``python -m djwire serve echo_app:app`` on a free loopback port, runs
``wstest -m fuzzingclient`` with spec.json (its url and cases filled in), then reads
reports/servers/index.json: every case must be OK, NON-STRICT or INFORMATIONAL.
Exit code 0 when all pass, 1 when some fail, 2 when wstest is unavailable.

wstest runs on Python 2.7 only. It is installed into ~/.cache/wstest27 from
pyenv's 2.7.18 when missing (see ../shared/compliance/README.md); set WSTEST to
use another copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
FAST_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
#: Pinned versions of the suite's Python 2.7 dependencies (the last that run on 2.7).
REQUIREMENTS = HERE / "autobahn-py27-requirements.txt"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wstest27"
#: Largest message Autobahn sends is 16 MiB (cases 9.1.6, 9.2.6).
SERVER_OPTIONS = [
    "--ws-max-size", str(20 * 1024 * 1024),
    "--ws-ping-interval", "0",
    "--no-access-log",
    "--log-level", "warning",
    "--lifespan", "off",
]  # fmt: skip


class Unavailable(Exception):
    """wstest cannot be found or installed here."""


def find_python27() -> str | None:
    candidates = []
    if shutil.which("pyenv"):
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
            candidates.append(Path(root) / "versions" / "2.7.18" / "bin" / "python")
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.append(Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python")
    for name in ("python2.7", "python2"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return None


def ensure_wstest() -> str:
    """Path of a working wstest, installing it from Python 2.7 if needed."""
    configured = os.environ.get("WSTEST")
    if configured:
        return configured
    wstest = CACHE / "bin" / "wstest"
    if wstest.exists():
        if wstest_works(wstest):
            return str(wstest)
        # A copy from an older requirements file (or a half-finished install):
        # bring its packages up to the pinned set rather than failing every run.
        repair = [str(CACHE / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)]
        subprocess.run(repair, capture_output=True, timeout=600)
        if wstest_works(wstest):
            return str(wstest)
        raise Unavailable(f"{wstest} is installed but does not run; delete {CACHE} to reinstall")
    python27 = find_python27()
    if python27 is None:
        raise Unavailable(
            "Autobahn wstest needs Python 2.7, which is not installed "
            "(pyenv install 2.7.18 needs the internet)"
        )
    if not REQUIREMENTS.exists():
        raise Unavailable(f"{REQUIREMENTS} is missing")
    tools = f"{CACHE}.tools"
    steps = [
        [python27, "-m", "pip", "install", "-q", "--target", tools, "virtualenv<20.22"],
        [python27, "-m", "virtualenv", "-q", str(CACHE)],
        [str(CACHE / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)],
        [str(CACHE / "bin" / "pip"), "install", "-q", "--no-deps", "autobahntestsuite==25.10.1"],
    ]
    # Only virtualenv itself runs from the tools directory. The venv's pip must not
    # see it: virtualenv's own dependencies there (the typing backport among them)
    # would count as installed, and the venv would then lack them at run time.
    clean_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for step in steps:
        env = dict(clean_env, PYTHONPATH=tools) if step[0] == python27 else clean_env
        result = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode:
            raise Unavailable(f"installing wstest failed at {step[:4]}: {result.stderr[-2000:]}")
    # Optional: C masking and UTF-8 checks for the client. Without it, cases 12 and
    # 13 (a thousand compressed messages of up to 128 KiB each) take far longer.
    subprocess.run(
        [str(CACHE / "bin" / "pip"), "install", "-q", "wsaccel"],
        capture_output=True,
        timeout=600,
    )
    if not wstest_works(wstest):
        raise Unavailable(f"wstest was installed into {CACHE} but does not run")
    return str(wstest)


def wstest_works(wstest: Path) -> bool:
    """Whether ``wstest -a`` (print versions) runs, i.e. every import resolves."""
    try:
        result = subprocess.run([str(wstest), "-a"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"djwire serve exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("djwire serve did not start listening")


def run(
    cases: list[str],
    *,
    reports: Path = HERE / "reports",
    python: str = sys.executable,
    limit: float = 1800.0,
) -> dict[str, dict[str, str]]:
    """Run the cases; return {case: {"behavior": ..., "behaviorClose": ...}}."""
    wstest = ensure_wstest()
    port = free_port()
    outdir = reports / "servers"
    if outdir.exists():
        shutil.rmtree(outdir)
    reports.mkdir(parents=True, exist_ok=True)
    spec = json.loads((HERE / "spec.json").read_text())
    spec["servers"][0]["url"] = f"ws://127.0.0.1:{port}"
    spec["cases"] = cases
    spec["outdir"] = str(outdir)
    spec_path = reports / "spec.generated.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    server = subprocess.Popen(
        [python, "-m", "djwire", "serve", "echo_app:app", "--port", str(port), *SERVER_OPTIONS],
        cwd=HERE,
        env=env,
    )
    try:
        wait_listening(port, server)
        subprocess.run(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_path)],
            cwd=reports,
            check=True,
            timeout=limit,
            stdout=subprocess.DEVNULL,
        )
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    index = json.loads((outdir / "index.json").read_text())
    results: dict[str, dict[str, str]] = index["djwire"]
    return results


def failures(results: dict[str, dict[str, str]]) -> dict[str, str]:
    return {
        case: f"{result['behavior']} (close: {result.get('behaviorClose')})"
        for case, result in results.items()
        if result["behavior"] not in PASSING or result.get("behaviorClose", "OK") not in PASSING
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fast", action="store_true", help="cases 1-7 and 10 only")
    parser.add_argument("--cases", nargs="*", help="explicit case patterns")
    parser.add_argument("--limit", type=float, default=3600.0, help="seconds for wstest")
    args = parser.parse_args()
    cases = args.cases or (
        FAST_CASES if args.fast else json.loads((HERE / "spec.json").read_text())["cases"]
    )
    try:
        results = run(cases, limit=args.limit)
    except Unavailable as exc:
        print(f"wstest unavailable: {exc}", file=sys.stderr)
        return 2
    counts = Counter(result["behavior"] for result in results.values())
    print(f"{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    bad = failures(results)
    for case, behaviour in sorted(bad.items()):
        print(f"  {case}: {behaviour}")
    print(f"report: {HERE / 'reports' / 'servers' / 'index.html'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
