"""Fast simulation of whole runs against synthetic noisy cost curves (no sleeping).

Each simulated run calls the real planner exactly as the engine does (:func:`planner.next_step`
after every stage), draws each stage's time as ``cost(n)`` times lognormal noise, and reports
whether ``max`` overran the time that remained when it started.

``python -m scaleup_ci.simulate [--sims 2000] [--seed 1]`` prints overrun rates and utilisation
for several curves, for the fitted planner and for the rule-of-thumb baseline.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scaleup_ci import planner
from scaleup_ci.planner import Point

MINI_N = 3
DEFAULT_STAGES = (10, 50, 100, 200)


@dataclass(frozen=True)
class SimResult:
    """One simulated run."""

    max_n: int
    overrun: bool  # max took longer than the time remaining when it started
    utilisation: float  # max seconds / remaining at its start (0 when max did not run)
    completed_whole_dataset: bool
    stopped_early: bool
    stages_run: tuple[int, ...]
    remaining_at_max: float
    max_seconds: float
    oracle_n: int  # largest n whose noise-free cost fits the remaining time at max's start

    @property
    def budget_limited(self) -> bool:
        """``max`` was sized by the budget (not by the dataset, and it ran)."""
        return not self.completed_whole_dataset and not self.stopped_early and self.max_n > 0


def _noisy(rng: random.Random, noise: float) -> float:
    return math.exp(rng.gauss(0.0, noise)) if noise > 0 else 1.0


def _oracle(cost: Callable[[int], float], remaining: float, dataset_size: int) -> int:
    if cost(dataset_size) <= remaining:
        return dataset_size
    if cost(1) > remaining:
        return 0
    lo, hi = 1, dataset_size
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cost(mid) <= remaining:
            lo = mid
        else:
            hi = mid
    return lo


def simulate(
    cost: Callable[[int], float],
    *,
    noise: float,
    budget: float,
    dataset_size: int,
    stages: Sequence[int] = (MINI_N, *DEFAULT_STAGES),
    margin: float = 0.1,
    rule: str = planner.RULE_FIT,
    rng: random.Random,
    overhead_per_stage: float = 0.05,
    warmup: float = 0.0,
) -> SimResult:
    """Play one run: the stages in order while they fit, then ``max``.

    ``stages[0]`` is the mini stage, which always runs (and carries ``warmup`` extra seconds,
    like a first run's imports and caches). Each stage costs ``cost(n) * noise +
    overhead_per_stage``; a stage that exceeds its limit (:func:`planner.stage_limit`) is killed
    and ends the staging.
    """
    elapsed = 0.0
    points: list[Point] = []
    done: list[int] = []
    first_n, *fixed = list(stages)

    def run(n: int, first: bool) -> float:
        extra = warmup if first else 0.0
        return (cost(n) + extra) * _noisy(rng, noise) + overhead_per_stage

    # mini: always runs (it is the correctness check).
    n0 = min(first_n, dataset_size)
    t = run(n0, True)
    elapsed += t
    points.append(Point(n0, t, stage="mini", first=True))
    done.append(n0)
    pending = [s for s in fixed if s > n0]
    killed = False
    while True:
        remaining = budget - elapsed
        step = planner.next_step(
            points,
            pending=pending,
            remaining=remaining,
            margin=margin,
            dataset_size=dataset_size,
            largest_done=max(done),
            rule=rule,
            intermediate=not killed,
        )
        if step.action == "stage":
            pending = [s for s in pending if s > step.n]
            t = run(step.n, False)
            if t > step.limit_seconds:  # killed: the engine goes straight to planning max
                elapsed += step.limit_seconds
                pending, killed = [], True
                continue
            elapsed += t
            points.append(Point(step.n, t, stage=str(step.n)))
            done.append(step.n)
            continue
        if step.action == "stop":
            return SimResult(
                max_n=0,
                overrun=False,
                utilisation=0.0,
                completed_whole_dataset=max(done) >= dataset_size,
                stopped_early=True,
                stages_run=tuple(done),
                remaining_at_max=remaining,
                max_seconds=0.0,
                oracle_n=_oracle(cost, remaining, dataset_size),
            )
        t = run(step.n, False)
        return SimResult(
            max_n=step.n,
            overrun=t > remaining,
            utilisation=t / remaining if remaining > 0 else 0.0,
            completed_whole_dataset=step.n >= dataset_size,
            stopped_early=False,
            stages_run=tuple(done),
            remaining_at_max=remaining,
            max_seconds=t,
            oracle_n=_oracle(cost, remaining, dataset_size),
        )


# ------------------------------------------------------------------------------------ scenarios


def _curve(a: float, b: float, kind: str, k: float = 1.0) -> Callable[[int], float]:
    def cost(n: int) -> float:
        if kind == "nlogn":
            return a + b * n * math.log(max(n, 1))
        return a + b * n**k

    return cost


@dataclass(frozen=True)
class Scenario:
    name: str
    cost: Callable[[int], float]
    noise: float
    warmup: float = 0.0


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("linear", _curve(0.5, 0.05, "power"), 0.10),
    Scenario("linear, 20s startup", _curve(20.0, 0.01, "power"), 0.10),
    Scenario("linear, 5s first-run warm-up", _curve(0.5, 0.05, "power"), 0.10, warmup=5.0),
    Scenario("n log n", _curve(0.5, 0.005, "nlogn"), 0.10),
    Scenario("n^1.3", _curve(0.5, 0.01, "power", 1.3), 0.10),
    Scenario("n^2", _curve(0.5, 1e-4, "power", 2.0), 0.10),
    Scenario("n^0.7 (sublinear)", _curve(0.5, 0.2, "power", 0.7), 0.10),
    Scenario("index-rising (n + n^2)", lambda n: 0.5 + 0.01 * n + 2e-5 * n * n, 0.10),
    Scenario("n + n^1.5", lambda n: 0.5 + 0.01 * n + 2e-4 * n**1.5, 0.10),
    Scenario("linear, 25% noise", _curve(0.5, 0.05, "power"), 0.25),
    Scenario("n^1.3, 25% noise", _curve(0.5, 0.01, "power", 1.3), 0.25),
)


def run_scenario(
    scenario: Scenario,
    *,
    sims: int,
    seed: int,
    rule: str,
    dataset_size: int = 100_000,
    target_range: tuple[float, float] = (300.0, 30_000.0),
    margin: float = 0.1,
) -> list[SimResult]:
    """``sims`` runs, each with a budget that lets ``max`` reach a target ``n`` drawn
    log-uniformly from ``target_range`` (after the fixed stages), so extrapolation factors range
    from about 1.5 to 150."""
    rng = random.Random(seed)
    out = []
    lo, hi = math.log(target_range[0]), math.log(target_range[1])
    for _ in range(sims):
        target = int(math.exp(rng.uniform(lo, hi)))
        fixed_cost = sum(scenario.cost(s) + 0.05 for s in (MINI_N, *DEFAULT_STAGES))
        budget = fixed_cost + scenario.warmup + scenario.cost(target)
        out.append(
            simulate(
                scenario.cost,
                noise=scenario.noise,
                budget=budget,
                dataset_size=dataset_size,
                margin=margin,
                rule=rule,
                rng=rng,
                warmup=scenario.warmup,
            )
        )
    return out


@dataclass(frozen=True)
class Summary:
    overrun_rate: float
    median_utilisation: float
    median_n_ratio: float  # max_n / oracle_n over budget-limited runs
    stopped_early_rate: float
    mean_extra_stages: float


def summarise(results: Sequence[SimResult]) -> Summary:
    ran = [r for r in results if r.max_n > 0]
    limited = [r for r in results if r.budget_limited]
    util = [r.utilisation for r in limited]
    ratio = [r.max_n / r.oracle_n for r in limited if r.oracle_n > 0]
    extra = [sum(1 for s in r.stages_run if s > max(DEFAULT_STAGES)) for r in results]
    return Summary(
        overrun_rate=sum(r.overrun for r in ran) / len(ran) if ran else 0.0,
        median_utilisation=statistics.median(util) if util else 0.0,
        median_n_ratio=statistics.median(ratio) if ratio else 0.0,
        stopped_early_rate=sum(r.stopped_early for r in results) / max(1, len(results)),
        mean_extra_stages=sum(extra) / max(1, len(extra)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sims", type=int, default=1000, help="runs per curve and rule")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--margin", type=float, default=0.1)
    args = parser.parse_args(argv)
    header = (
        f"{'curve':<30} {'rule':<14} {'overrun':>8} {'med util':>9} {'med n/oracle':>13} "
        f"{'stopped':>8} {'extra stages':>13}"
    )
    print(f"{args.sims} simulated runs per row; margin {args.margin:.0%}; max target n 300-30000")
    print(header)
    print("-" * len(header))
    pooled: dict[str, list[SimResult]] = {planner.RULE_FIT: [], planner.RULE_OF_THUMB: []}
    for i, scenario in enumerate(SCENARIOS):
        for rule in (planner.RULE_FIT, planner.RULE_OF_THUMB):
            res = run_scenario(
                scenario, sims=args.sims, seed=args.seed + i, rule=rule, margin=args.margin
            )
            pooled[rule].extend(res)
            s = summarise(res)
            print(
                f"{scenario.name:<30} {rule:<14} {s.overrun_rate:>8.1%} "
                f"{s.median_utilisation:>9.2f} {s.median_n_ratio:>13.2f} "
                f"{s.stopped_early_rate:>8.1%} {s.mean_extra_stages:>13.2f}"
            )
    for rule, res in pooled.items():
        s = summarise(res)
        print(
            f"{'ALL (pooled)':<30} {rule:<14} {s.overrun_rate:>8.1%} "
            f"{s.median_utilisation:>9.2f} {s.median_n_ratio:>13.2f} "
            f"{s.stopped_early_rate:>8.1%} {s.mean_extra_stages:>13.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
