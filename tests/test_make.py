"""The two commands: `make run` installs what the app needs, `make test` the test tools too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def planned(target: str) -> str:
    """What ``make <target>`` would run on a machine where nothing is installed yet (``-n -B``: dry, all)."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under make test
    out = subprocess.run(["make", "--no-print-directory", "-n", "-B", target], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=env)
    return out.stdout


@pytest.mark.subprocess
def test_make_run_installs_the_app_without_the_test_tools() -> None:
    plan = planned("run")
    installs = [line for line in plan.splitlines() if "pip install" in line and "-c requirements/lock.txt" in line]
    assert installs and all(line.rstrip().endswith("-e .") for line in installs), installs
    assert "[test]" not in plan and "creditdesk" in plan.splitlines()[-1]


@pytest.mark.subprocess
def test_make_test_installs_the_test_tools() -> None:
    plan = planned("test")
    assert '-e ".[test]"' in plan and "pytest" in plan


@pytest.mark.subprocess
def test_make_test_runs_in_parallel_and_test_fast_leaves_out_what_is_slow_to_start() -> None:
    assert " -n 4 " in planned("test")
    fast = planned("test-fast")
    assert '-m "not (postgresql or browser or subprocess or slow)"' in fast and " -n 4 " in fast
    assert "ruff" not in fast  # the loop runs tests only; `make lint` is its own target
