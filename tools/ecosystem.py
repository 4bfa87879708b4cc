#!/usr/bin/env python3
"""Run the test suites of packages built on Django Channels on Channels and on djwire.

    python3 tools/ecosystem.py [--only NAME] [--json FILE] [--keep DIR]

For each package in ``PACKAGES`` it downloads the source distribution from PyPI (never
kept in this repository), unpacks it twice and runs the package's own test suite:

* on stock Channels 4.3, as the package's authors run it;
* on djwire, after ``python -m djwire.porting`` rewrote the copy: the same mechanical
  rewrite of ``channels.`` to ``djwire.`` a user runs on a project.

It fails (exit 1) when a test that passes on Channels does not pass on djwire, unless
the package's entry lists that test as relying on Channels internals (those are
listed in docs/porting.md too). Exit 3 means something could not be downloaded or
installed; under CI (``CI`` set) the test suite turns that into a failure.

Both environments are virtualenvs cached in ``~/.cache/djwire`` (see
tests/support/cached_venv.py) with the same pinned versions of Django, asgiref and the
test tools; the djwire one has no Channels in it, and takes djwire from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from djwire.porting import rewrite_tree  # noqa: E402
from tests.support.cached_venv import (  # noqa: E402
    EnvironmentUnavailable,
    build_cached_python,
    cache_dir,
)

#: Our own files for suites whose sdist leaves some out (tools/ecosystem_harness/NAME/).
HARNESS = ROOT / "tools" / "ecosystem_harness"
#: One package's suite may take this long on one side, in seconds.
RUN_TIMEOUT = 600
#: Exit status when something could not be downloaded or installed.
UNAVAILABLE = 3


@dataclass(frozen=True)
class Package:
    """A package on PyPI whose sdist carries its test suite."""

    name: str
    version: str
    #: What kind of package it is, for the report.
    kind: str
    #: What its suite needs besides Channels and the COMMON pins.
    requirements: tuple[str, ...]
    #: pytest arguments, run from the unpacked sdist.
    pytest_args: tuple[str, ...]
    #: Directory under HARNESS copied over the unpacked sdist, if its tests need more.
    harness: str | None = None
    #: Tests (junit "classname::name") that need Channels internals djwire does not
    #: have, with the reason; each is in docs/porting.md's table.
    relies_on_internals: dict[str, str] = field(default_factory=dict)


PACKAGES = (
    Package(
        name="djangochannelsrestframework",
        version="1.3.0",
        kind="REST over WebSocket (Django REST framework)",
        requirements=("djangorestframework==3.18.3",),
        pytest_args=("tests",),
        # The sdist has the test modules but not tests/__init__.py, conftest.py (the
        # settings), models.py and communicator.py they import.
        harness="djangochannelsrestframework",
    ),
    Package(
        name="channels-demultiplexer",
        version="2.2.0",
        kind="JSON stream multiplexing over one WebSocket",
        requirements=("django-appconf==1.2.0",),
        pytest_args=("-p", "pytest_django", "--ds=tests.settings", "tests/tests.py"),
    ),
)

#: Pinned in both environments, so only Channels vs djwire differs.
COMMON = (
    "Django==5.2.19",
    "asgiref==3.13.0",
    "pytest==9.2.0",
    "pytest-django==4.14.0",
    "pytest-asyncio==1.5.0",
)
#: Stock Channels; channels.testing imports daphne.
CHANNELS = ("channels[daphne]==4.3.2",)


def djwire_requirements() -> tuple[str, ...]:
    """djwire's own dependencies (from pyproject.toml) but those COMMON pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {pin.split("==")[0].lower() for pin in COMMON}
    return tuple(
        dep
        for dep in project["dependencies"]
        if dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() not in pinned
    )


def environment_check(requirements: Sequence[str], *, without_channels: bool) -> str:
    """Python code that passes when an environment has exactly the pinned versions."""
    pins = {}
    for requirement in requirements:
        if "==" in requirement:
            name, version = requirement.split("==")
            pins[name.split("[")[0]] = version
    code = [
        "from importlib.metadata import version",
        "from importlib.util import find_spec",
        f"pins = {pins!r}",
        "wrong = {n: version(n) for n in pins if version(n) != pins[n]}",
        "assert not wrong, wrong",
        "import django, pytest, pytest_django, pytest_asyncio",
    ]
    if without_channels:
        code.append("assert find_spec('channels') is None, 'Channels must not be installed'")
    return "\n".join(code)


def environments() -> dict[str, Path]:
    """{"channels": python, "djwire": python}, built once and cached."""
    extra = tuple(req for package in PACKAGES for req in package.requirements)
    stock = (*COMMON, *CHANNELS, *extra)
    ours = (*COMMON, *djwire_requirements(), *extra)
    return {
        "channels": build_cached_python(
            "ecosystem-channels",
            sys.executable,
            stock,
            environment_check(stock, without_channels=False),
        ),
        "djwire": build_cached_python(
            "ecosystem-djwire",
            sys.executable,
            ours,
            environment_check(ours, without_channels=True),
        ),
    }


def sdist(package: Package) -> Path:
    """The package's source distribution, downloaded from PyPI once and cached."""
    folder = cache_dir() / "ecosystem-sdists" / f"{package.name}-{package.version}"
    found = sorted(folder.glob("*.tar.gz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            package.name,
            "--dest",
            str(folder),
            f"{package.name}=={package.version}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = sorted(folder.glob("*.tar.gz"))
    if result.returncode or not found:
        raise EnvironmentUnavailable(
            f"cannot download the sdist of {package.name}=={package.version}: "
            f"{(result.stdout + result.stderr)[-800:]}"
        )
    return found[0]


def unpack(archive: Path, into: Path, harness: str | None) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (tree,) = into.iterdir()
    if harness is not None:
        shutil.copytree(HARNESS / harness, tree / "tests", dirs_exist_ok=True)
    return tree


def outcomes(junit: Path) -> dict[str, str]:
    """{test id: "passed" | "failed" | "error" | "skipped"} from a junit XML report."""
    results = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "error" in kinds:
            results[test] = "error"
        elif "failure" in kinds:
            results[test] = "failed"
        elif "skipped" in kinds:
            results[test] = "skipped"
        else:
            results[test] = "passed"
    return results


def run_suite(python: Path, tree: Path, package: Package, side: str, djwire_path: Path) -> dict:
    junit = tree.parent / f"{side}.xml"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTEST_ADDOPTS")
        and not key.startswith("PYTEST_")
    }
    if side == "djwire":
        env["PYTHONPATH"] = str(djwire_path)
    command = [
        str(python),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-q",
        *package.pytest_args,
    ]
    try:
        result = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return {"exit": None, "tests": {}, "output": f"timed out after {RUN_TIMEOUT} s"}
    tests = outcomes(junit) if junit.exists() else {}
    return {"exit": result.returncode, "tests": tests, "output": result.stdout[-3000:]}


def counts(tests: dict[str, str]) -> dict[str, int]:
    summary = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for outcome in tests.values():
        summary[outcome] += 1
    return summary


def compare(package: Package, stock: dict, ours: dict) -> list[str]:
    """What is wrong with djwire's run: empty when it passes all that Channels passes."""
    problems = []
    passed_on_channels = {t for t, o in stock["tests"].items() if o == "passed"}
    if not passed_on_channels:
        problems.append(
            f"no test passed on Channels (exit {stock['exit']}): the suite did not run; "
            f"its output ends with:\n{stock['output']}"
        )
    for test in sorted(passed_on_channels - set(package.relies_on_internals)):
        outcome = ours["tests"].get(test, "not run")
        if outcome != "passed":
            problems.append(f"{test} passes on Channels, {outcome} on djwire")
    return problems


def check_package(package: Package, pythons: dict[str, Path], keep: Path | None) -> dict:
    archive = sdist(package)
    with tempfile.TemporaryDirectory(prefix=f"ecosystem-{package.name}-") as scratch:
        work = Path(scratch)
        # djwire from this checkout, without the checkout's own "tests" package.
        djwire_path = work / "djwire-path"
        djwire_path.mkdir()
        (djwire_path / "djwire").symlink_to(ROOT / "djwire")
        runs = {}
        for side in ("channels", "djwire"):
            tree = unpack(archive, work / side, package.harness)
            if side == "djwire":
                rewrite_tree([tree])
            runs[side] = run_suite(pythons[side], tree, package, side, djwire_path)
        if keep is not None:
            shutil.copytree(work, keep / package.name, dirs_exist_ok=True, symlinks=True)
    problems = compare(package, runs["channels"], runs["djwire"])
    return {
        "package": package.name,
        "version": package.version,
        "kind": package.kind,
        "channels": counts(runs["channels"]["tests"]),
        "djwire": counts(runs["djwire"]["tests"]),
        "relies_on_internals": package.relies_on_internals,
        "problems": problems,
        "djwire_output": runs["djwire"]["output"] if problems else "",
    }


def report(results: list[dict]) -> str:
    lines = [
        "| package | Channels 4.3: passed / failed / errors | djwire: passed / failed / errors |",
        "|---|---|---|",
    ]
    for result in results:
        stock, ours = result["channels"], result["djwire"]
        lines.append(
            f"| {result['package']} {result['version']} "
            f"| {stock['passed']} / {stock['failed']} / {stock['error']} "
            f"| {ours['passed']} / {ours['failed']} / {ours['error']} |"
        )
    for result in results:
        for problem in result["problems"]:
            lines.append(f"{result['package']}: {problem}")
        if result["djwire_output"]:
            lines.append(f"{result['package']} on djwire, output ends with:")
            lines.append(result["djwire_output"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run only this package (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--keep", type=Path, help="keep the unpacked trees and reports here")
    args = parser.parse_args(argv)
    packages = [p for p in PACKAGES if not args.only or p.name in args.only]
    if not packages:
        parser.error(f"no such package; known: {', '.join(p.name for p in PACKAGES)}")
    try:
        pythons = environments()
        results = [check_package(package, pythons, args.keep) for package in packages]
    except EnvironmentUnavailable as exc:
        print(f"ecosystem check unavailable: {exc}", file=sys.stderr)
        return UNAVAILABLE
    print(report(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(result["problems"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
