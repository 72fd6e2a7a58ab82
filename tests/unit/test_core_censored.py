"""A stage stopped at its limit bounds the planned max that follows it."""

from __future__ import annotations

from types import SimpleNamespace

from scaleup_ci.core import _censored_cap
from scaleup_ci.planner import Step
from scaleup_ci.report import Report


def _state() -> SimpleNamespace:
    return SimpleNamespace(report=Report(budget_seconds=30.0, out_dir="x", reason="plan"))


def test_max_below_the_stopped_stage_is_left_alone() -> None:
    st = _state()
    step = Step(action="max", n=400, predicted_seconds=5.0, limit_seconds=14.0, reason="r")
    assert _censored_cap(st, 400, (500, 9.5), step) == 400
    assert not st.report.warnings


def test_max_past_the_stopped_stage_is_cut_to_its_lower_bound_on_cost() -> None:
    """500 examples took more than 9.5 s: in 14 s at most 500 * 14 / 9.5 = 736 fit."""
    st = _state()
    step = Step(action="max", n=1154, predicted_seconds=12.0, limit_seconds=14.0, reason="r")
    assert _censored_cap(st, 1154, (500, 9.5), step) == 736
    assert "did not finish in 9.5 s" in st.report.warnings[0]
    assert "cut to 736" in st.report.reason


def test_less_time_than_the_stopped_stage_had_keeps_max_below_it() -> None:
    st = _state()
    step = Step(action="max", n=900, predicted_seconds=8.0, limit_seconds=9.0, reason="r")
    assert _censored_cap(st, 900, (500, 9.5), step) == 499
