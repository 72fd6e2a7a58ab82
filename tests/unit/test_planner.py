"""Unit tests for the planner: fitting, uncertainty, sizing ``max``, and simulated whole runs."""

from __future__ import annotations

import json
import math
import random

import pytest

from scaleup_ci import planner
from scaleup_ci.planner import Model, Point
from scaleup_ci.simulate import SCENARIOS, SimResult, Summary, run_scenario, simulate, summarise

STAGES = (3, 10, 50, 100, 200)


def exact(cost, sizes=STAGES, *, first_extra: float = 0.0) -> list[Point]:
    return [
        Point(n, cost(n) + (first_extra if i == 0 else 0.0), stage=str(n), first=i == 0)
        for i, n in enumerate(sizes)
    ]


def test_exact_linear_data_fits_linear_and_extrapolates_within_one_percent() -> None:
    """Noise-free a + b*n timings select the linear kind and predict 50x out within 1%."""
    model = planner.fit(exact(lambda n: 0.5 + 0.05 * n))
    assert model is not None
    assert model.kind == "linear"
    assert model.predict(10_000) == pytest.approx(0.5 + 0.05 * 10_000, rel=0.01)
    assert model.per_example_seconds == pytest.approx(0.05, rel=0.01)


def test_exact_quadratic_data_fits_an_exponent_of_two() -> None:
    """Noise-free a + b*n**2 timings: the power fit finds k close to 2, and the kind used is the
    power law or the (here identical) linear-plus-quadratic curve."""
    models = planner.fit_all(exact(lambda n: 0.5 + 1e-4 * n * n))
    power = next(md for md in models if md.kind == "power")
    assert power.params["k"] == pytest.approx(2.0, abs=0.05)
    model = planner.fit(exact(lambda n: 0.5 + 1e-4 * n * n))
    assert model is not None
    assert model.kind in ("power", "quadratic")
    assert model.predict(2000) == pytest.approx(0.5 + 1e-4 * 2000**2, rel=0.05)


def test_fixed_overhead_is_recovered_as_a() -> None:
    """A 20 s start-up plus 0.01 s per example gives an overhead a of about 20 s."""
    model = planner.fit(exact(lambda n: 20.0 + 0.01 * n, sizes=(3, 10, 50, 100, 200, 800, 3200)))
    assert model is not None
    assert model.params["a"] == pytest.approx(20.0, rel=0.02)


def _model(kind: str, criterion: float, **params: float) -> Model:
    return Model(kind=kind, params=params, goodness={"criterion": criterion}, sigma_rel=0.1)


def test_choose_takes_the_more_pessimistic_of_tied_models() -> None:
    """Among models within 2 of the best criterion, choose() predicts with the largest one at n."""
    lin = _model("linear", 10.0, a=1.0, b=1.0)
    steep = _model("power", 11.0, a=1.0, b=0.1, k=1.5)
    assert planner.choose([lin, steep], 10_000) is steep  # 0.1 * 10000**1.5 > 10000
    assert planner.choose([lin, steep], 10) is lin  # and the other way round at small n


def test_choose_ignores_models_clearly_worse_than_the_best() -> None:
    """A model more than 2 worse in the criterion is not used, however pessimistic."""
    lin = _model("linear", 10.0, a=1.0, b=1.0)
    steep = _model("power", 20.0, a=1.0, b=0.1, k=1.5)
    assert planner.choose([lin, steep], 10_000) is lin


def test_first_run_warm_up_is_dropped_and_does_not_change_the_slope() -> None:
    """A first run 5 s slower than the curve is dropped; the slope stays the true one."""
    model = planner.fit(exact(lambda n: 0.5 + 0.05 * n, first_extra=5.0))
    assert model is not None
    assert model.goodness["dropped_first"] is True
    assert model.per_example_seconds == pytest.approx(0.05, rel=0.02)
    assert model.predict(5000) == pytest.approx(0.5 + 0.05 * 5000, rel=0.02)


def test_first_run_on_the_curve_is_kept() -> None:
    """A first run without warm-up stays in the fit."""
    model = planner.fit(exact(lambda n: 0.5 + 0.05 * n))
    assert model is not None
    assert model.goodness["dropped_first"] is False
    assert model.goodness["n_points"] == len(STAGES)


def test_no_points_give_no_model() -> None:
    """Nothing to fit gives None."""
    assert planner.fit([]) is None


def test_one_point_predicts_per_example_time() -> None:
    """With one stage the prediction is its seconds per example times n."""
    model = planner.fit([Point(10, 5.0)])
    assert model is not None
    assert model.predict(100) == pytest.approx(50.0)


def test_upper_bound_widens_with_the_extrapolation_factor() -> None:
    """upper(n)/predict(n) grows as n moves beyond the largest measured stage."""
    rng = random.Random(3)
    pts = [Point(p.n, p.seconds * math.exp(rng.gauss(0, 0.1))) for p in exact(lambda n: 1 + n)]
    model = planner.fit(pts)
    assert model is not None
    ratios = [model.upper(n) / model.predict(n) for n in (200, 1000, 5000, 50_000)]
    assert ratios == sorted(ratios)
    assert ratios[0] > 1.0
    assert ratios[-1] > ratios[0] * 1.2


def test_plan_uses_the_whole_dataset_when_it_fits() -> None:
    """When every example fits, max_n is the dataset size and the reason says so."""
    plan = planner.plan_max(
        exact(lambda n: 0.5 + 0.01 * n),
        remaining=600.0,
        margin=0.1,
        dataset_size=1000,
        largest_done=200,
    )
    assert plan.max_n == 1000
    assert plan.reason.startswith("the whole dataset (1000 examples) fits: predicted ")
    assert "of 600s remaining" in plan.reason
    assert plan.predicted_seconds == pytest.approx(10.5, rel=0.02)


def test_plan_fills_the_budget_without_exceeding_it() -> None:
    """A budget-limited plan's central prediction with the margin fits, its upper bound fits
    without the margin (the margin is not stacked on the band), and max uses most of it."""
    plan = planner.plan_max(
        exact(lambda n: 0.5 + 0.01 * n, sizes=(3, 10, 50, 100, 200, 800)),
        remaining=100.0,
        margin=0.1,
        dataset_size=100_000,
        largest_done=800,
    )
    assert plan.predicted_upper is not None and plan.predicted_seconds is not None
    assert plan.predicted_upper <= 100.0 * (1 + planner.KILL_TOLERANCE)
    assert plan.predicted_seconds * 1.1 <= 100.0
    assert 0.6 * 100.0 <= plan.predicted_seconds <= 100.0 / 1.1
    assert plan.reason.startswith(f"max = {plan.max_n} of 100000 examples")


def test_plan_stops_early_when_nothing_larger_fits() -> None:
    """With too little time left for a larger run, max_n <= largest_done and the reason says
    how long the next larger run would need and how little remains."""
    plan = planner.plan_max(
        exact(lambda n: 0.5 + 1.0 * n),
        remaining=150.0,
        margin=0.1,
        dataset_size=5000,
        largest_done=200,
    )
    assert plan.max_n <= 200
    assert plan.reason.startswith("stopped early: the next larger run (201 examples) would need")
    assert "only 150s remain" in plan.reason


def test_memory_cap_limits_max() -> None:
    """A peak RSS growing 1 MiB per example caps n below 85% of the memory limit."""
    mib = 1024**2
    pts = [Point(n, 0.5 + 0.01 * n, peak_rss=(100 + n) * mib) for n in STAGES]
    limit = 2000 * mib
    plan = planner.plan_max(
        pts,
        remaining=10_000.0,
        margin=0.1,
        dataset_size=100_000,
        largest_done=200,
        memory_limit=limit,
    )
    assert plan.memory_capped
    assert (100 + plan.max_n) * mib <= 0.85 * limit
    assert (100 + plan.max_n + 2) * mib > 0.85 * limit
    assert "memory" in plan.reason


def test_rule_of_thumb_is_last_stage_seconds_per_example() -> None:
    """The baseline divides the remaining time less the margin by the last stage's s/example."""
    pts = [Point(3, 2.0), Point(10, 3.0), Point(200, 20.0)]
    plan = planner.plan_max(
        pts,
        remaining=1000.0,
        margin=0.1,
        dataset_size=100_000,
        largest_done=200,
        rule="rule-of-thumb",
    )
    assert plan.max_n == math.floor(1000.0 * 0.9 / 0.1)
    assert plan.rule == "rule-of-thumb"


def test_unknown_rule_is_rejected() -> None:
    """A misspelt rule is an error, not a silent default."""
    with pytest.raises(ValueError, match="rule"):
        planner.plan_max(
            [Point(3, 1.0)], remaining=10, margin=0.1, dataset_size=5, largest_done=3, rule="guess"
        )


@pytest.mark.parametrize(
    ("predicted", "remaining", "expected"),
    [(None, 500.0, 500.0), (100.0, 500.0, 300.0), (1.0, 500.0, 10.0), (400.0, 500.0, 500.0)],
)
def test_stage_limit(predicted: float | None, remaining: float, expected: float) -> None:
    """min(remaining, max(floor, 3 * predicted)); no prediction gives the remaining time."""
    assert planner.stage_limit(predicted, remaining) == pytest.approx(expected)


def test_every_stage_fits_before_any_timing() -> None:
    """With no points a planned stage fits and has no prediction."""
    assert planner.next_stage_fits([], 50, remaining=1.0, margin=0.1) == (True, None)


def test_next_stage_that_exceeds_the_budget_does_not_fit() -> None:
    """A stage predicted far beyond the remaining time does not fit; a small one does."""
    pts = exact(lambda n: 0.5 + 1.0 * n, sizes=(3, 10, 50))
    fits, pred = planner.next_stage_fits(pts, 200, remaining=100.0, margin=0.1)
    assert not fits and pred == pytest.approx(200.5, rel=0.02)
    assert planner.next_stage_fits(pts, 100, remaining=1000.0, margin=0.1)[0]


def test_extrapolation_factor() -> None:
    """The factor is max_n over the largest finished stage."""
    assert planner.extrapolation_factor(1000, 200) == 5.0


def test_intermediate_stages_only_for_long_extrapolations() -> None:
    """No stages for a factor <= 2; 2.5x-apart stages (never above max/2) for a long one, while
    they take at most 60% of the time."""
    assert planner.intermediate_stages(200, 390) == []
    assert planner.intermediate_stages(200, 40_000) == [500, 1250, 3125, 7812]  # 19531: > 60%
    assert planner.intermediate_stages(200, 1200) == [500]
    # The old defaults are still reachable by argument.
    assert planner.intermediate_stages(
        200, 10_000, factor=4, max_factor=8, max_share=0.2) == [800]


def test_intermediate_stages_are_skipped_when_too_expensive() -> None:
    """When the first extra stage alone would eat more than the share of the time, none is run."""
    pts = exact(lambda n: 30.0 + 0.01 * n)
    assert planner.intermediate_stages(200, 20_000, points=pts, remaining=60.0) == []


def test_next_step_runs_stages_then_max() -> None:
    """The engine step: first pending stage with no timings, max when no stage is left."""
    first = planner.next_step(
        [], pending=[10, 50], remaining=100, margin=0.1, dataset_size=1000, largest_done=0
    )
    assert (first.action, first.n) == ("stage", 10)
    last = planner.next_step(
        exact(lambda n: 0.5 + 0.01 * n),
        pending=[],
        remaining=100,
        margin=0.1,
        dataset_size=1000,
        largest_done=200,
    )
    assert (last.action, last.n) == ("max", 1000)


def test_plan_and_model_serialise_to_strict_json() -> None:
    """to_dict() gives JSON without NaN or Infinity, with the report's fields."""
    plan = planner.plan_max(
        exact(lambda n: 0.5 + 0.01 * n),
        remaining=100.0,
        margin=0.1,
        dataset_size=100_000,
        largest_done=200,
    )
    data = json.loads(json.dumps(plan.to_dict(), allow_nan=False))
    assert {"max_n", "predicted_seconds", "dataset_size", "reason"} <= data.keys()
    assert {"kind", "params", "goodness", "per_example_seconds"} <= data["model"].keys()


def test_simulate_reports_a_whole_run() -> None:
    """One simulated run ends in a max whose utilisation is its seconds over the time left."""
    res = simulate(
        lambda n: 0.5 + 0.05 * n,
        noise=0.1,
        budget=200.0,
        dataset_size=100_000,
        rng=random.Random(1),
    )
    assert isinstance(res, SimResult)
    assert res.max_n > 200
    assert res.utilisation == pytest.approx(res.max_seconds / res.remaining_at_max)
    assert res.overrun == (res.max_seconds > res.remaining_at_max)


# ------------------------------------------------------------------ simulated properties

SIMS = 500


@pytest.fixture(scope="module")
def simulated() -> dict[tuple[str, str], Summary]:
    out = {}
    for sc in SCENARIOS:
        if sc.name in ("n^1.3", "n^2"):
            for rule in ("fit", "rule-of-thumb"):
                out[(sc.name, rule)] = summarise(run_scenario(sc, sims=SIMS, seed=11, rule=rule))
    return out


@pytest.mark.parametrize("curve", ["n^1.3", "n^2"])
def test_planner_rarely_overruns_superlinear_curves(
    simulated: dict[tuple[str, str], Summary], curve: str
) -> None:
    """Over 500 noisy runs (10% noise) max overruns the time left in at most 10% of them."""
    assert simulated[(curve, "fit")].overrun_rate <= 0.10


@pytest.mark.parametrize("curve", ["n^1.3", "n^2"])
def test_planner_overruns_less_than_the_rule_of_thumb(
    simulated: dict[tuple[str, str], Summary], curve: str
) -> None:
    """The fitted planner overruns less often than last-stage seconds-per-example."""
    assert simulated[(curve, "fit")].overrun_rate < simulated[(curve, "rule-of-thumb")].overrun_rate


@pytest.mark.parametrize("curve", ["n^1.3", "n^2"])
def test_planner_uses_most_of_the_time_left(
    simulated: dict[tuple[str, str], Summary], curve: str
) -> None:
    """The median budget-limited max takes at least 60% of the time left when it starts."""
    assert simulated[(curve, "fit")].median_utilisation >= 0.6


def test_property_plan_never_exceeds_the_time_left_by_its_own_prediction() -> None:
    """Thousands of noisy synthetic timings: every plan's central prediction with the margin,
    and its upper band, fit in the time left; max is never smaller than a finished stage."""
    rng = random.Random(7)
    for _ in range(300):
        a, b, k = rng.uniform(0, 5), rng.uniform(1e-4, 0.05), rng.uniform(0.6, 2.0)
        pts = [Point(n, (a + b * n**k) * math.exp(rng.gauss(0, 0.15)), first=(n == 3))
               for n in (3, 10, 50, 100, 200)]
        remaining = rng.uniform(5, 2000)
        plan = planner.plan_max(pts, remaining=remaining, margin=0.1, dataset_size=10**6,
                                largest_done=200)
        if plan.max_n > 200:
            assert plan.predicted_seconds is not None and plan.predicted_upper is not None
            assert plan.predicted_seconds * 1.1 <= remaining * 1.0001
            assert plan.predicted_upper <= remaining * (1 + planner.KILL_TOLERANCE) * 1.0001


def test_property_next_step_respects_the_memory_cap() -> None:
    """With memory growing per example, no stage and no max goes beyond the memory cap."""
    rng = random.Random(3)
    for _ in range(200):
        per = rng.uniform(1e6, 6e7)
        limit = int(rng.uniform(2e8, 4e9))
        pts = [Point(n, 0.1 + 0.01 * n, peak_rss=int(2e7 + per * n)) for n in (3, 10)]
        step = planner.next_step(pts, pending=[50, 100, 200], remaining=1000.0, margin=0.1,
                                 dataset_size=100_000, largest_done=10, memory_limit=limit)
        cap = planner.memory_cap(pts, limit)
        assert cap is not None
        if step.action in ("stage", "max"):
            assert step.n <= max(cap, 10)
        if cap <= 10:
            assert step.action == "stop" and "memory" in step.reason


def test_simulated_suite_pooled_kills_and_utilisation() -> None:
    """The tuned planner over every simulated curve: max is killed in at most 12% of runs pooled
    (10% and 25% noise, extrapolation up to x150) and uses most of the time left."""
    import statistics

    kills, utils = [], []
    for i, sc in enumerate(SCENARIOS):
        res = run_scenario(sc, sims=60, seed=100 + i, rule="fit")
        kills += [r.overrun for r in res if r.max_n > 0]
        utils += [r.utilisation for r in res if r.budget_limited]
    assert sum(kills) / len(kills) <= 0.12
    assert statistics.median(utils) >= 0.65


def test_plan_centres_on_the_best_model_and_a_tied_pessimistic_one_bounds_the_edge() -> None:
    """The planning centre is the best-criterion model; a tied, more pessimistic model raises the
    pessimistic edge to at least its own prediction, so it still bounds max."""
    lin = _model("linear", 10.0, a=1.0, b=1.0)
    steep = _model("power", 11.0, a=1.0, b=0.1, k=1.5)
    centre, up = planner._upper_at([lin, steep], 10_000)
    assert centre is lin
    assert up >= steep.predict(10_000)


RISING = (3, 10, 50, 100, 200, 500, 1250)


def index_rising(n: float) -> float:
    """Per-example cost 0.001 + 4e-6 * index (a dataset sorted by difficulty): the benchmark's
    ``index-rising`` workload."""
    return 0.1 + 0.001 * n + 2e-6 * n * n


def test_cost_rising_with_the_index_is_fitted_with_the_quadratic_model() -> None:
    """Linear-plus-quadratic timings bring in the quadratic kind, which recovers the curve, and
    the planning edge covers the true cost 2.2x beyond the largest stage (a power law alone
    under-predicted it by about 9%)."""
    pts = exact(index_rising, RISING)
    models = planner.fit_all(pts)
    quad = next(md for md in models if md.kind == "quadratic")
    assert quad.params["c"] == pytest.approx(2e-6, rel=0.05)
    assert quad.predict(2750) == pytest.approx(index_rising(2750), rel=0.02)
    _, up = planner._upper_at(models, 2750)
    assert up >= index_rising(2750)
    plan = planner.plan_max(pts, remaining=index_rising(2750), margin=0.1, dataset_size=20_000,
                            largest_done=1250)
    assert plan.predicted_upper is not None and plan.predicted_upper <= index_rising(2750)
    assert index_rising(plan.max_n) <= index_rising(2750)


def test_quadratic_model_needs_significant_curvature() -> None:
    """On noisy linear timings the quadratic kind (and its band) joins in few fits: chance
    curvature must not make plans pessimistic."""
    rng = random.Random(5)
    joined = 0
    for _ in range(200):
        pts = [Point(n, (0.5 + 0.05 * n) * math.exp(rng.gauss(0, 0.05)), first=(n == 3))
               for n in RISING]
        joined += any(md.kind == "quadratic" for md in planner.fit_all(pts))
    assert joined <= 20


def test_quadratic_curve_serialises_and_reports_its_marginal_cost() -> None:
    """The quadratic model's per-example cost is the derivative at the largest n seen."""
    quad = next(md for md in planner.fit_all(exact(index_rising, RISING))
                if md.kind == "quadratic")
    assert quad.per_example_seconds == pytest.approx(0.001 + 4e-6 * 1250, rel=0.05)
    out = json.loads(json.dumps(quad.to_dict(), allow_nan=False))
    assert planner.curve_value(out["kind"], out["params"], 2750) == pytest.approx(
        index_rising(2750), rel=0.02)


def test_simulated_index_rising_overruns_less_than_the_rule_of_thumb() -> None:
    """Simulated runs of cost rising with the index (10% noise): the fitted planner's max
    overruns in at most 25% of runs (about 15% on average; a power law alone overran in about
    half), and far less often than the rule of thumb (about 97%)."""
    sc = next(s for s in SCENARIOS if s.name.startswith("index-rising"))
    fit = summarise(run_scenario(sc, sims=200, seed=21, rule="fit"))
    rot = summarise(run_scenario(sc, sims=200, seed=21, rule="rule-of-thumb"))
    assert fit.overrun_rate <= 0.25
    assert fit.overrun_rate < rot.overrun_rate


def test_a_long_jump_to_the_whole_dataset_gets_an_intermediate_stage_first() -> None:
    """Timings from a real noisy run (25% per-run noise) that looked sublinear: the whole
    dataset of 20,000 seemed to fit from stages up to 200 (x100). Before max, an intermediate
    stage runs that still leaves room for the whole dataset; max came next and was killed at
    the deadline before this rule."""
    pts = [Point(3, 0.1606, first=True), Point(10, 0.2394), Point(50, 0.4499),
           Point(100, 0.6403), Point(200, 0.8431)]
    plan = planner.plan_max(pts, remaining=24.6, margin=0.1, dataset_size=20_000,
                            largest_done=200)
    assert plan.max_n == 20_000
    step = planner.next_step(pts, pending=[], remaining=24.6, margin=0.1, dataset_size=20_000,
                             largest_done=200)
    assert step.action == "stage" and 200 < step.n < 20_000
    assert step.predicted_seconds is not None
    assert step.predicted_seconds * 1.1 + (plan.predicted_upper or 0) <= 24.6


def test_a_whole_dataset_close_to_the_last_stage_runs_directly() -> None:
    """No intermediate stage when the whole dataset is a short extrapolation away."""
    pts = exact(lambda n: 0.1 + 0.004 * n)
    step = planner.next_step(pts, pending=[], remaining=25.0, margin=0.1, dataset_size=300,
                             largest_done=200)
    assert step.action == "max" and step.n == 300


def test_a_parabola_that_misfits_a_power_law_does_not_widen_the_band() -> None:
    """Timings of a real n**1.15 run: the quadratic kind shows significant curvature but fits
    clearly worse than the power law, so its wide extrapolation stays out of the band (it made
    the edge 1.6x the prediction, and max 25% smaller, before this rule)."""
    pts = [Point(3, 0.1598, first=True), Point(10, 0.1962), Point(50, 0.3384), Point(100, 0.5697),
           Point(200, 1.0840), Point(500, 2.8372), Point(1250, 7.7481)]
    centre, up = planner._upper_at(planner.fit_all(pts), 3672)
    assert up <= 1.3 * centre.predict(3672)
    truth = 0.1 + 0.002 * 3672**1.15  # the workload's curve
    assert centre.predict(3672) == pytest.approx(truth, rel=0.1)


def test_a_long_start_up_seen_once_runs_the_next_stage_on_trial() -> None:
    """After a mini stage of 8 s (a start-up, but one size cannot show that), stage 10 would take
    27 s if it were all per-example cost: it runs on trial, limited to half the time left, since
    it costs at least the 8 s seen so far. The rule-of-thumb baseline has no trial."""
    pts = [Point(3, 8.06, first=True)]
    step = planner.next_step(pts, pending=[10, 50, 100, 200], remaining=30.4, margin=0.1,
                             dataset_size=20_000, largest_done=3)
    assert (step.action, step.n, step.probe) == ("stage", 10, True)
    assert step.limit_seconds == pytest.approx(15.2)
    assert "on trial" in step.reason
    base = planner.next_step(pts, pending=[10, 50, 100, 200], remaining=30.4, margin=0.1,
                             dataset_size=20_000, largest_done=3, rule="rule-of-thumb")
    assert not base.probe
    # No trial when even the time seen so far would not fit in half of what is left.
    late = planner.next_step(pts, pending=[10, 50, 100, 200], remaining=14.0, margin=0.1,
                             dataset_size=20_000, largest_done=3)
    assert not late.probe


def test_a_cheap_stage_whose_edge_is_too_wide_runs_on_trial() -> None:
    """Timings of a real write-at-end script with a 2 s start-up and 10% per-run noise: after
    stage 100 the band is so wide that stage 200's pessimistic edge is over a third of the time
    left, although its prediction is about 2 s. It runs on trial, stopped at that third, instead
    of max being planned from a band that made it 272 examples."""
    pts = [Point(3, 2.271, first=True), Point(10, 1.926), Point(50, 1.942), Point(100, 2.658)]
    step = planner.next_step(pts, pending=[200], remaining=22.0, margin=0.1,
                             dataset_size=20_000, largest_done=100)
    assert (step.action, step.n, step.probe) == ("stage", 200, True)
    assert step.predicted_seconds is not None and step.predicted_seconds < 4.0
    assert step.limit_seconds == pytest.approx(22.0 / 3)
