"""Unit tests for the cost-drift warning (per-example cost rising with the dataset position)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from scaleup_ci import core
from scaleup_ci.runner import StageResult


def _stages(cost, sizes=(3, 10, 50, 100, 200, 500, 1250), slowdown: float | None = None):
    out = []
    for n in sizes:
        r = StageResult(name="mini" if n == 3 else str(n), n=n, wall_seconds=cost(n), valid=True,
                        exit_code=0, records=n)
        out.append(r)
    out[-1].slowdown = slowdown
    return out


# Real timings of the benchmark's index-rising workload (noisy at the small stages), records
# written at the end.
REAL = [(3, 0.16), (10, 0.17), (50, 0.2205), (100, 0.3103), (200, 0.4609), (500, 1.2583),
        (1250, 4.8763)]


def _warnings(stages, sample: str = "first") -> list[str]:
    state = SimpleNamespace(config=SimpleNamespace(sample=sample),
                            report=SimpleNamespace(warnings=[]))
    core._drift_warning(state, stages)  # type: ignore[arg-type]
    return state.report.warnings


def index_rising(n: float) -> float:
    """The benchmark's index-rising workload: 0.001 + 4e-6 * index seconds per example."""
    return 0.15 + 0.001 * n + 2e-6 * n * n


def test_cost_rising_with_the_position_warns_and_suggests_random_sampling() -> None:
    """The benchmark's index-rising timings (marginal cost from about 1.3 to 4.5 ms) warn, from
    the model curve and from a real run whose small stages are noisy."""
    (msg,) = _warnings(_stages(index_rising))
    assert "rises with the position" in msg and "sample: random" in msg
    real = dict(REAL)
    (msg,) = _warnings(_stages(real.__getitem__, sizes=tuple(real)))
    assert "rose from" in msg


def test_records_slowing_within_the_stage_are_named_as_evidence() -> None:
    """A stage whose later records came 2.4x slower is the evidence, even when only stages up
    to 500 ran (the marginal cost rose only 1.5x there)."""
    (msg,) = _warnings(_stages(index_rising, sizes=(3, 10, 50, 100, 200, 500), slowdown=2.4))
    assert "later records took 2.4x" in msg


@pytest.mark.parametrize("cost", [lambda n: 0.15 + 0.004 * n,
                                  lambda n: 0.15 + 0.0006 * n * (1 + 0.1 * (n % 3))])
def test_flat_or_noisy_linear_cost_does_not_warn(cost) -> None:
    assert _warnings(_stages(cost)) == []


def test_records_arriving_at_an_even_pace_rule_out_a_sorted_dataset() -> None:
    """Cost that grows with N but not within a stage (each example compared with all N) is the
    script's doing, not the data's order: no warning."""
    assert _warnings(_stages(index_rising, slowdown=1.02)) == []


def test_random_sampling_never_warns() -> None:
    assert _warnings(_stages(index_rising), sample="random") == []
