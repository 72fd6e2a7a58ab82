"""The fault suite: every case in cases.CASES through the real CLI (contract: cases.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cases import CASES, Case, check_case, cleanup, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, tmp_path: Path) -> None:
    """The tool says what happened, exits with the right code, keeps finished work, ends in time."""
    if case.needs is not None:
        why = case.needs()
        if why:
            pytest.skip(why)
    outcome = run_case(case, tmp_path / "work")
    try:
        check_case(outcome)
    finally:
        cleanup(outcome)


def test_there_are_at_least_40_cases() -> None:
    """The suite keeps at least 40 fault cases."""
    assert len(CASES) >= 40
