"""Packages built on Channels pass their own suites on djwire as on Channels
(tools/ecosystem.py), and the script's verdict logic."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.unavailable import unavailable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "ecosystem.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecosystem", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ecosystem"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ecosystem = load_script()


@pytest.mark.timeout(1800)  # the first run builds two environments
def test_every_package_passes_on_djwire_what_it_passes_on_channels(tmp_path: Path) -> None:
    report = tmp_path / "ecosystem.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(report)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1700,
    )
    if result.returncode == ecosystem.UNAVAILABLE:
        unavailable(result.stderr.strip()[-1500:])
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(report.read_text())
    assert [r["package"] for r in results] == [p.name for p in ecosystem.PACKAGES]
    for package in results:
        assert package["channels"]["passed"] > 0, package
        assert package["djwire"]["passed"] >= package["channels"]["passed"], package


def run(tests: dict[str, str]) -> dict:
    return {"exit": 0, "tests": tests, "output": "..."}


def test_a_test_passing_on_channels_and_not_on_djwire_is_a_problem() -> None:
    package = ecosystem.PACKAGES[0]
    stock = run({"t::a": "passed", "t::b": "passed", "t::c": "failed"})
    ours = run({"t::a": "passed", "t::b": "error", "t::c": "passed"})
    assert ecosystem.compare(package, stock, ours) == ["t::b passes on Channels, error on djwire"]
    assert ecosystem.compare(package, stock, run({"t::a": "passed"})) == [
        "t::b passes on Channels, not run on djwire"
    ]


def test_a_suite_that_passes_nothing_on_channels_is_a_problem_not_a_tie() -> None:
    problems = ecosystem.compare(ecosystem.PACKAGES[0], run({}), run({}))
    assert len(problems) == 1 and "did not run" in problems[0]


def test_documented_reliance_on_channels_internals_is_excused() -> None:
    package = ecosystem.Package(
        name="p",
        version="1",
        kind="k",
        requirements=(),
        pytest_args=(),
        relies_on_internals={"t::b": "reads InMemoryChannelLayer internals"},
    )
    stock = run({"t::a": "passed", "t::b": "passed"})
    assert ecosystem.compare(package, stock, run({"t::a": "passed", "t::b": "failed"})) == []


def test_junit_outcomes_are_read(tmp_path: Path) -> None:
    junit = tmp_path / "r.xml"
    junit.write_text(
        """<testsuites><testsuite>
        <testcase classname="tests.m" name="ok"/>
        <testcase classname="tests.m" name="bad"><failure/></testcase>
        <testcase classname="tests.m" name="broken"><error/></testcase>
        <testcase classname="tests.m" name="later"><skipped/></testcase>
        </testsuite></testsuites>"""
    )
    assert ecosystem.outcomes(junit) == {
        "tests.m::ok": "passed",
        "tests.m::bad": "failed",
        "tests.m::broken": "error",
        "tests.m::later": "skipped",
    }


def test_tests_relying_on_channels_internals_are_listed_in_the_porting_guide() -> None:
    guide = (ROOT / "docs" / "porting.md").read_text()
    for package in ecosystem.PACKAGES:
        assert f"{package.name} {package.version}" in guide
        for test in package.relies_on_internals:
            assert test in guide, f"{package.name}: {test} is not in docs/porting.md"


def test_the_djwire_environment_has_djwires_dependencies_but_not_channels() -> None:
    requirements = ecosystem.djwire_requirements()
    assert any(req.startswith("websockets") for req in requirements)
    assert not any(req.lower().startswith(("django", "asgiref")) for req in requirements)
    check = ecosystem.environment_check(["channels==4.3.2"], without_channels=True)
    assert "find_spec('channels') is None" in check
