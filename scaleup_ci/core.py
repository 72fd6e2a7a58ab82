"""The staged scale-up: mini → 10 → 50 → 100 → 200 → max inside one time budget.

``run(config, env)`` is the single entry point. It never reads ``os.environ`` (the caller passes
``env``) and never prints except through ``echo``. It writes report.json, summary.md and final/
after every stage, so that whatever happens next, finished work is on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from scaleup_ci import hardware as hardware_mod
from scaleup_ci import limits as limits_mod
from scaleup_ci import planner
from scaleup_ci.config import Config
from scaleup_ci.dataset import Dataset, open_dataset
from scaleup_ci.errors import ConfigError, InputError, LimitExceeded, ScaleupError
from scaleup_ci.report import Report, atomic_write
from scaleup_ci.runner import CancelToken, StageProgress, StageResult, StageSpec, run_stage
from scaleup_ci.validate import RecordValidator, load_schema

MINI_N = 3
TIMING_MOVED = 0.25
FULL_CHECK_BYTES = 64 << 20  # datasets up to this size are parsed whole before any stage


def process_start_monotonic() -> float:
    """The monotonic clock reading at which this process started (the budget counts from there).

    Linux gives the start in clock ticks since boot (/proc/self/stat), which CLOCK_BOOTTIME
    measures to the tick. psutil's create_time adds the boot time, which /proc/stat rounds to
    whole seconds: the budget would start up to a second early, and that second is lost."""
    age: float | None = None
    try:
        with open("/proc/self/stat", "rb") as fh:
            ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        age = None
    if age is None or not 0.0 <= age <= 60.0:
        try:
            age = time.time() - psutil.Process().create_time()
        except (psutil.Error, OSError):
            age = 0.0
    return time.monotonic() - max(0.0, min(age, 60.0))


def auto_reserve(budget: float) -> float:
    """Time kept back for the report and the upload: a share of the budget, so tiny budgets work."""
    return min(120.0, max(0.03 * budget, min(1.0, 0.2 * budget)))


@dataclass
class Hooks:
    """How the core talks to the outside world (console, GitHub log groups)."""

    echo: Callable[[str], None] = print
    echo_err: Callable[[str], None] | None = None  # the script's stderr; None = same as echo
    stage_group: Callable[[str], contextlib.AbstractContextManager[Any]] = (
        lambda title: contextlib.nullcontext()
    )


@dataclass
class _Stage:
    name: str
    n: int | None  # None for max (decided later)


@dataclass
class _State:
    config: Config
    report: Report
    out_dir: Path
    t0: float
    hard_end: float
    work_end: float
    grace: float
    dataset: Dataset
    dataset_size: int | None  # None until needed: counting a large file is not free
    validator: RecordValidator | None
    limits: limits_mod.Limits
    hw: hardware_mod.Hardware
    env: Mapping[str, str]
    hooks: Hooks
    cancel: CancelToken | None
    results: list[StageResult] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)
    best: StageResult | None = None
    redact: list[re.Pattern[bytes]] = field(default_factory=list)
    mini: Dataset | None = None  # the mini-file, when one is given

    def mini_n(self) -> int:
        """The mini stage's size: the mini-file's examples, or the first MINI_N."""
        return MINI_N if self.mini is None else self.mini.count()

    def size(self) -> int:
        """The dataset's example count, computed on first use."""
        if self.dataset_size is None:
            self.dataset_size = self.dataset.count()
            self.report.dataset["size"] = self.dataset_size
        return self.dataset_size

    def save(self) -> None:
        self.report.elapsed_seconds = time.monotonic() - self.t0
        self.report.stages = [r.to_dict() for r in self.results]
        self.report.write(self.out_dir)


def stage_list(names: tuple[str, ...] | list[str]) -> list[_Stage]:
    out = []
    for name in names:
        if name == "mini":
            out.append(_Stage("mini", None))
        elif name == "max":
            out.append(_Stage("max", None))
        else:
            out.append(_Stage(str(int(name)), int(name)))
    return out


def _check_mock(config: Config, cmd_words: list[str]) -> list[str]:
    """Names in the command line that suggest mock data or APIs."""
    found = []
    pats = [re.compile(rf"(?i)(?<![a-z]){re.escape(p)}") for p in config.mock_patterns]
    for word in cmd_words:
        for pat, name in zip(pats, config.mock_patterns, strict=True):
            if pat.search(word):
                found.append(f"`{word}` matches the mock pattern {name!r}")
    return found


def _canonical_records(path: Path, *, lenient: bool) -> Iterator[str]:
    """Each record of a JSONL or JSON-array output as canonical JSON (sorted keys).

    A JSON document that is not a list is one record. An unparsable JSONL line raises
    ``ValueError``, or with ``lenient`` is yielded as its raw text (so it still compares).
    """
    with path.open("rb") as fh:
        head = fh.read(1)
        fh.seek(0)
        if head == b"[":
            data = json.load(fh)
            for x in data if isinstance(data, list) else [data]:
                yield json.dumps(x, sort_keys=True)
            return
        for line in fh:
            if not line.strip():
                continue
            try:
                yield json.dumps(json.loads(line), sort_keys=True)
            except ValueError:
                if not lenient:
                    raise
                yield line.decode("utf-8", "replace")


def _all_identical(path: Path, records: int) -> bool:
    """True when an output of 10 or more records holds one record repeated."""
    if records < 10:
        return False
    first: str | None = None
    count = 0
    try:
        for canon in _canonical_records(path, lenient=False):
            if first is None:
                first = canon
            elif canon != first:
                return False
            count += 1
    except (OSError, ValueError):
        return False
    return count >= 10


def _compare_outputs(a: Path, b: Path) -> tuple[int, int, list[int]]:
    """Count records that differ between two JSONL/JSON outputs (first few indexes kept)."""
    differ = 0
    total = 0
    first: list[int] = []
    try:
        pairs = itertools.zip_longest(_canonical_records(a, lenient=True),
                                      _canonical_records(b, lenient=True))
        for i, (x, y) in enumerate(pairs):
            total += 1
            if x != y:
                differ += 1
                if len(first) < 10:
                    first.append(i)
    except (OSError, ValueError):
        pass
    return differ, total, first


def run(config: Config, env: Mapping[str, str], *, hooks: Hooks | None = None,
        cancel: CancelToken | None = None, t0: float | None = None) -> Report:
    """Run the whole staged sequence and return the report (also written to out-dir)."""
    hooks = hooks or Hooks()
    t0 = process_start_monotonic() if t0 is None else t0
    budget = config.time_budget
    reserve = config.reserve if config.reserve is not None else auto_reserve(budget)
    if reserve >= budget:
        raise ConfigError(
            f"reserve: {reserve:g} s leaves nothing of the {budget:g} s time-budget",
            hint="lower `reserve` or raise `time-budget`")
    out_dir = config.out_dir
    report = Report(budget_seconds=budget, reserve_seconds=reserve,
                    started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    out_dir=str(out_dir), config=config.to_dict())
    _prepare_out_dir(out_dir)
    try:
        state = _setup(config, env, report, out_dir, t0, budget, reserve, hooks, cancel)
    except ScaleupError as exc:
        report.note_previous_kept(out_dir)  # _setup clears the previous run only at its end
        report.record_error(exc)
        report.elapsed_seconds = time.monotonic() - t0
        report.write(out_dir)
        raise
    try:
        _run_passes(state)
    except ScaleupError as exc:
        report.record_error(exc)
        state.save()
        raise
    finally:
        if report.status == "running":
            report.status = "failed"
            report.reason = report.reason or "scaleup-ci stopped unexpectedly"
            with contextlib.suppress(Exception):
                state.save()
    state.save()
    return report


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"out-dir: cannot write to {out_dir}: {exc.strerror}",
                          hint="choose a writable `out-dir`") from None


def _clear_previous_run(out_dir: Path) -> None:
    """Remove the previous run's stage files, only once this run's inputs have been checked, so a
    typo in the configuration never destroys finished work."""
    for sub in ("stages", "final"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)


def _check_examples(dataset: Dataset, config: Config) -> None:
    """Parse the examples before the previous run's outputs are cleared, so a malformed record
    is an input error (exit 2) that destroys nothing: the whole file when it is at most
    :data:`FULL_CHECK_BYTES`, else the examples the fixed stages take with ``sample: first``
    (a bad record further on is found when the first stage that holds it is built)."""
    try:
        size = Path(config.full_file).stat().st_size
    except OSError:
        size = 0
    sizes = [int(s) for s in config.stages if s.isdigit()]
    dataset.check(limit=None if size <= FULL_CHECK_BYTES else max(sizes, default=200))


def _setup(config: Config, env: Mapping[str, str], report: Report, out_dir: Path, t0: float,
           budget: float, reserve: float, hooks: Hooks, cancel: CancelToken | None) -> _State:
    for w in config.warnings:
        report.warnings.append(w)
    hw = hardware_mod.detect(out_dir, env)
    report.hardware = hw.to_dict()
    lim = limits_mod.choose_limits(hw, memory_limit=config.memory_limit,
                                   cpu_limit=config.cpu_limit, mode=config.memory_enforcement)
    report.limits = lim.to_dict()
    report.warnings.extend(lim.warnings)

    validator = None
    if config.schema is not None:
        validator = RecordValidator(load_schema(config.schema))
        report.warnings.extend(getattr(validator, "notes", []))
    else:
        report.warnings.append("no `schema` given: outputs are only checked to be JSON with the "
                               "right number of records")
    dataset = open_dataset(config.full_file, examples_key=config.examples_key)
    if next(iter(dataset.iter_raw(limit=1)), None) is None:
        raise InputError(f"full-file: {config.full_file} holds no examples",
                         hint="point `full-file` at a dataset with at least one example")
    _check_examples(dataset, config)
    report.dataset = {"path": str(config.full_file), "kind": dataset.kind, "gzip": dataset.gzip,
                      "size": None}
    mini = None
    if config.mini_file is not None:
        mini = open_dataset(config.mini_file, examples_key=config.examples_key)
        if mini.count() == 0:
            raise InputError(f"mini-file: {config.mini_file} holds no examples",
                             hint="give a mini file with about 3 examples, or leave `mini-file` "
                                  "out to use the first 3 of `full-file`")
        report.dataset["mini_path"] = str(config.mini_file)
        report.dataset["mini_size"] = mini.count()

    import shlex
    try:
        words = shlex.split(config.command)
    except ValueError:
        words = config.command.split()
    if not config.shell and words:
        _check_program(words[0], config.working_directory, env)
    hits = _check_mock(config, words) if config.mock_guard != "off" else []
    if hits:
        msg = "the command looks like it uses mock data or APIs: " + "; ".join(hits)
        if config.mock_guard == "fail":
            raise ConfigError(msg, hint="run the real script on real data, or set "
                                        "`mock-guard: warn` / change `mock-patterns`")
        report.warnings.append(msg)

    hard_end = t0 + budget
    grace = min(config.grace_period, max(0.5, 0.03 * budget))
    state = _State(config=config, report=report, out_dir=out_dir, t0=t0, hard_end=hard_end,
                   work_end=hard_end - reserve, grace=grace, dataset=dataset, dataset_size=None,
                   validator=validator, limits=lim, hw=hw, env=env, hooks=hooks, cancel=cancel)
    state.redact = [re.compile(p.encode()) for p in config.redact]
    state.mini = mini
    hooks.echo(f"scaleup-ci: {dataset.describe()} · budget {budget:g} s (reserve {reserve:.1f} s) · "
               f"{hw.cpus:g} CPUs · memory limit {limits_mod.format_bytes(lim.memory_bytes or None)}")
    _clear_previous_run(out_dir)
    state.save()
    return state


def _check_program(prog: str, cwd: Path, env: Mapping[str, str]) -> None:
    """A command whose program does not exist is a configuration error (exit 2), found before
    any stage runs, rather than a script failure at the mini stage."""
    if "{" in prog:
        return  # a placeholder: known only per stage
    if "/" in prog:
        path = cwd / prog
        if not path.exists():
            raise ConfigError(f"command: {prog} does not exist (looked in {cwd})",
                              hint="fix the path in `command`, or set `working-directory` to "
                                   "the folder it is relative to")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise ConfigError(f"command: {prog} is not an executable file",
                              hint=f"run it through its interpreter (such as `python {prog}`), "
                                   "or make it executable (chmod +x)")
        return
    search = env.get("PATH", os.defpath)
    if shutil.which(prog, path=search) is not None:
        return
    import difflib

    names: set[str] = set()
    for d in search.split(os.pathsep):
        with contextlib.suppress(OSError):
            names.update(os.listdir(d or "."))
    close = difflib.get_close_matches(prog, sorted(names), n=1, cutoff=0.75)
    raise ConfigError(
        f"command: program {prog!r} not found on PATH"
        + (f"; did you mean {close[0]!r}?" if close else ""),
        hint="fix the program name in `command`, or install it / add its folder to PATH")


def _run_passes(state: _State) -> None:
    config = state.config
    passes = 2 if config.final_pass else 1
    first_end = state.t0 + (state.work_end - state.t0) / 2 if passes == 2 else state.work_end
    pass1 = _run_sequence(state, pass_no=1, end=first_end, sizes=None)
    _estimate_whole(state)
    if passes == 2 and state.report.status == "running" and pass1:
        sizes = [(r.name, r.n) for r in pass1 if r.ok]
        state.hooks.echo("scaleup-ci: final pass — rerunning the sequence up to "
                         f"{sizes[-1][1] if sizes else 0} examples")
        pass2 = _run_sequence(state, pass_no=2, end=state.work_end, sizes=sizes)
        _compare_passes(state, pass1, pass2)
    if state.report.status == "running" and state.cancel is not None and state.cancel.is_set:
        state.report.status = "cancelled"  # cancelled between stages: not a clean early stop
        state.report.exit_code = 130
        state.report.reason = "cancelled between stages"
    if state.report.status == "running":
        state.report.status = "completed" if state.report.reason.startswith("the whole") else (
            "stopped-early")
        state.report.exit_code = 0


def _estimate_whole(state: _State) -> None:
    """The whole dataset's time, refitted to every finished stage of the first pass, a partial
    max included as (records done, seconds): what the run learnt, not what the plan assumed."""
    size = state.dataset_size
    done = [r for r in state.results if r.ok and r.pass_no == 1 and not r.skipped]
    if size is None or not done or any(r.n >= size and not r.partial for r in done):
        return
    points: list[planner.Point] = []
    for r in done:
        n = r.records if r.partial else r.n
        if n > 0 and r.wall_seconds > 0:
            points.append(planner.Point(n=n, seconds=r.wall_seconds, stage=r.name,
                                        first=not points))
    est = planner.estimate_full(points, size)
    if est is None:
        return
    model, seconds = est
    state.report.estimate = {
        "whole_dataset_seconds": round(seconds, 3), "dataset_size": size,
        "stages": [p.stage for p in points], "model": model.to_dict(),
        "extrapolation": round(size / max(p.n for p in points), 1)}


def _compare_passes(state: _State, first: list[StageResult], second: list[StageResult]) -> None:
    by_name = {r.name: r for r in first if r.ok}
    comps = []
    for r in second:
        a = by_name.get(r.name)
        if a is None or not r.ok:
            continue
        differ, total, idx = _compare_outputs(Path(a.output_path), Path(r.output_path))
        moved = a.wall_seconds > 0 and abs(r.wall_seconds - a.wall_seconds) / a.wall_seconds > (
            TIMING_MOVED)
        comps.append({"stage": r.name, "records": total, "differing_records": differ,
                      "first_differing_indexes": idx, "first_seconds": round(a.wall_seconds, 3),
                      "second_seconds": round(r.wall_seconds, 3), "timing_moved": moved})
        if differ:
            state.report.warnings.append(
                f"stage {r.name}: {differ} of {total} records differ between the two passes "
                f"(first at record {idx[0]}): the script is not deterministic")
        if moved:
            state.report.warnings.append(
                f"stage {r.name}: time moved from {a.wall_seconds:.2f} s to {r.wall_seconds:.2f} s "
                "between passes (more than 25%)")
    state.report.final_pass = {"comparisons": comps}


def _stage_paths(state: _State, name: str, pass_no: int) -> Path:
    sub = name if pass_no == 1 else f"{name}-pass{pass_no}"
    return state.out_dir / "stages" / sub


def _run_sequence(state: _State, *, pass_no: int, end: float,
                  sizes: list[tuple[str, int]] | None) -> list[StageResult]:
    """Run one pass. ``sizes`` (for the final pass) fixes each stage's n; otherwise plan as we go."""
    config = state.config
    report = state.report
    # Cheap sizes first: only count the whole dataset when a stage could reach its end.
    largest_fixed = max((int(x) for x in config.stages if x not in ("mini", "max")), default=0)
    if state.dataset_size is None and largest_fixed:
        n_probe = sum(1 for _ in state.dataset.iter_raw(limit=largest_fixed + 1))
        if n_probe <= largest_fixed:
            state.dataset_size = n_probe
            report.dataset["size"] = n_probe
    size = state.dataset_size if state.dataset_size is not None else 1 << 62
    if sizes is None and "max" in config.stages:
        return _run_planned(state, pass_no=pass_no, end=end)
    done: list[StageResult] = []
    points: list[planner.Point] = [
        planner.Point(n=r.n, seconds=r.wall_seconds, peak_rss=r.peak_rss_bytes or None,
                      stage=r.name, first=(i == 0))
        for i, r in enumerate(x for x in state.results if x.ok and x.pass_no == 1 and not x.partial)
    ] if pass_no > 1 else []

    if sizes is not None:
        todo = [_Stage(name, n) for name, n in sizes]
    else:
        todo = stage_list(config.stages)
    # Stage sizes larger than the dataset collapse into one stage that takes the whole dataset.
    collapsed: list[_Stage] = []
    for st in todo:
        if st.name == "mini":
            collapsed.append(st)
            continue
        if st.n is not None and st.n >= size and sizes is None:
            collapsed.append(_Stage("max", size))
            break
        collapsed.append(st)
    todo = collapsed

    for idx, st in enumerate(todo):
        if state.cancel is not None and state.cancel.is_set:
            break
        largest = max((r.n for r in done if r.ok), default=0)
        overhead = max(state.overheads[-3:], default=0.5)
        remaining = end - time.monotonic() - overhead
        progressive = False
        plan: planner.Plan | None = None
        if st.name == "mini":
            n = min(state.mini_n(), size)
            predicted, fits = None, True
            if points:
                _fits, predicted = planner.next_stage_fits(points, n, remaining=remaining,
                                                           margin=config.safety_margin)
        elif st.name == "max" and sizes is None and points:
            size = state.size()
            plan = planner.plan_max(_plan_points(state, points), remaining=remaining,
                                    margin=config.safety_margin,
                                    dataset_size=size, largest_done=largest,
                                    memory_limit=state.limits.memory_bytes, rule=config.planner)
            report.plan = plan.to_dict()
            if plan.model is not None:
                report.model = plan.model.to_dict()
            if plan.max_n <= largest:
                report.reason = plan.reason
                state.save()
                break
            progressive = _can_progress(state, done) and plan.max_n < size
            n = size if progressive else plan.max_n
            predicted = _progressive_prediction(plan, points, n) if progressive else (
                plan.predicted_seconds)
            report.reason = plan.reason
            fits = True
        else:
            n = min(st.n, size) if st.n is not None else state.size()
            if points and sizes is None:
                fits, predicted = planner.next_stage_fits(_plan_points(state, points), n,
                                                          remaining=remaining,
                                                          margin=config.safety_margin)
            else:
                fits, predicted = True, None
                if points:
                    m = planner.fit(points)
                    predicted = m.predict(n) if m else None
                # The final pass reruns a progressive max progressively.
                progressive = sizes is not None and st.name == "max" and any(
                    r.name == "max" and r.partial and r.ok and r.pass_no == 1
                    for r in state.results)
            if not fits:
                skipped = StageResult(name=st.name, n=n, skipped=True, predicted_seconds=predicted,
                                      problem=f"predicted {predicted:.1f} s does not fit in the "
                                              f"{max(0.0, remaining):.1f} s left", pass_no=pass_no)
                state.results.append(skipped)
                # Go straight to max: it will be planned smaller than this stage, or stop early.
                rest = [s for s in todo[idx + 1:] if s.name == "max"]
                if not rest:
                    report.reason = skipped.problem or ""
                    state.save()
                    break
                continue

        res = _run_one(state, st.name, n, pass_no=pass_no, end=end, predicted=predicted,
                       progressive=progressive, points=points)
        done.append(res)
        if res.killed_by == "cancelled" or _planned_max_overran(res, progressive):
            _fail(state, res)
            break
        if res.partial and res.ok:
            report.reason = (f"the {res.name} stage ran until the deadline and kept "
                             f"{res.records:,} validated records (progressive mode)")
        if res.ok and res.n >= size and not res.partial:
            report.reason = f"the whole dataset ({size:,} examples) ran within the budget"
        if not res.ok:
            _fail(state, res)
            break
        if not res.partial:
            points.append(planner.Point(n=res.n, seconds=res.wall_seconds,
                                        peak_rss=res.peak_rss_bytes or None, stage=res.name,
                                        first=len(points) == 0))
        if res.n >= size or st.name == "max":
            break
    if report.status == "running" and done and all(r.ok for r in done):
        _drift_warning(state, done)
    return done


def _run_planned(state: _State, *, pass_no: int, end: float) -> list[StageResult]:
    """Run one planned pass: mini, then whatever :func:`planner.next_step` says after each stage
    (the next fixed stage, a geometric intermediate stage that shortens the extrapolation, ``max``,
    or stop), re-planning from all the timings after every stage."""
    config = state.config
    report = state.report
    fixed = sorted({int(x) for x in config.stages if x not in ("mini", "max")})
    done: list[StageResult] = []
    points: list[planner.Point] = []
    killed_extra = False  # an intermediate stage hit its limit: plan max from what we have
    # (n, seconds) of a stage stopped at its limit: n examples take longer than that.
    censored: tuple[int, float] | None = None

    def known_size() -> int:
        return state.dataset_size if state.dataset_size is not None else 1 << 62

    def run(name: str, n: int, predicted: float | None, *, progressive: bool = False,
            limit: float | None = None) -> StageResult:
        res = _run_one(state, name, n, pass_no=pass_no, end=end, predicted=predicted,
                       progressive=progressive, points=points, limit=limit)
        done.append(res)
        return res

    def record(res: StageResult) -> None:
        if not res.partial:
            points.append(planner.Point(n=res.n, seconds=res.wall_seconds,
                                        peak_rss=res.peak_rss_bytes or None, stage=res.name,
                                        first=len(points) == 0))

    if "mini" in config.stages:
        res = run("mini", min(state.mini_n(), known_size()), None)
        if not res.ok:
            _fail(state, res)
            return done
        record(res)
        if config.mini_file is None and res.n >= known_size():
            report.reason = f"the whole dataset ({res.n:,} examples) ran within the budget"
            return done
    pending = list(fixed)
    while True:
        if state.cancel is not None and state.cancel.is_set:
            break
        # A partial (stopped) stage is no finished size: max is planned past the full ones.
        largest = max((r.n for r in done if r.ok and not r.partial and (
            r.name != "mini" or config.mini_file is None)), default=0)
        pending = [x for x in pending if x > largest]
        overhead = max(state.overheads[-3:], default=0.5)
        # What max can really use: the time to the end, less the tool's own per-stage work and
        # what stopping it at its limit takes (grace, drain, validation; see _run_one).
        left = end - time.monotonic()
        remaining = left - overhead - (_max_grace(state, left) + 0.5)
        # A progressive max needs no accurate extrapolation: intermediate stages would only spend
        # the time that max turns into records.
        will_be_progressive = _can_progress(state, done)
        step_args: dict[str, Any] = dict(
            pending=pending, remaining=remaining, margin=config.safety_margin,
            largest_done=largest, memory_limit=state.limits.memory_bytes, rule=config.planner,
            intermediate=not killed_extra and not will_be_progressive)
        plan_points = _plan_points(state, points)
        step = planner.next_step(plan_points, dataset_size=known_size(), **step_args)
        if state.dataset_size is None and (step.action != "stage" or step.n not in fixed):
            step = planner.next_step(plan_points, dataset_size=state.size(), **step_args)
        if step.plan is not None:
            report.plan = step.plan.to_dict()
            if step.plan.model is not None:
                report.model = step.plan.model.to_dict()
        if step.action == "stop":
            report.reason = step.reason
            break
        if step.action == "stage":
            n = min(step.n, known_size())
            is_fixed = n in fixed
            if state.dataset_size is None and n >= max(fixed, default=0):
                n = min(n, state.size())
            trial = not is_fixed or step.probe
            res = run(str(n), n, step.predicted_seconds,
                      limit=step.limit_seconds if trial else None)
            if trial:
                res.notes.append(step.reason)
            if res.killed_by == "deadline" and (res.partial or (trial and not res.ok)):
                # Costlier than predicted: drop it (a valid prefix is no finished size) and plan
                # max from the stages before it; a larger fixed stage would cost more still.
                killed_extra = True
                censored = (n, res.wall_seconds)
                pending = []
                kind = ("stage on trial" if step.probe else "intermediate stage" if trial
                        else "stage")
                state.report.warnings.append(
                    f"{kind} {n} hit its {res.limit_seconds or 0:.1f} s limit; "
                    "max is planned from the stages before it")
                continue
            if not res.ok:
                _fail(state, res)
                break
            record(res)
            if state.dataset_size is not None and res.n >= state.dataset_size:
                report.reason = f"the whole dataset ({res.n:,} examples) ran within the budget"
                break
            continue
        # max
        size = state.size()
        plan = step.plan
        n = step.n
        progressive = _can_progress(state, done) and plan is not None and n < size
        if progressive:
            cap = planner.memory_cap(points, state.limits.memory_bytes)
            n = size if cap is None else max(n, min(size, cap))
        report.reason = step.reason
        predicted = step.predicted_seconds
        if not progressive and censored is not None:
            n = _censored_cap(state, n, censored, step)
        if progressive and plan is not None:
            predicted = _progressive_prediction(plan, points, n)
        res = run("max", n, predicted, progressive=progressive,
                  limit=None if progressive else step.limit_seconds)
        if res.killed_by == "cancelled" or _planned_max_overran(res, progressive):
            _fail(state, res)
        elif res.partial and res.ok:
            report.reason = (f"the max stage ran until the deadline and kept {res.records:,} "
                             "validated records (progressive mode)")
        elif res.ok and res.n >= size:
            report.reason = f"the whole dataset ({size:,} examples) ran within the budget"
        if not res.ok and report.status == "running":
            _fail(state, res)
        break
    if report.status == "running" and done and all(r.ok for r in done):
        _drift_warning(state, done)
    return done


def _censored_cap(state: _State, n: int, censored: tuple[int, float], step: Any) -> int:
    """A stage of ``n_k`` examples stopped after ``t_k`` s says ``t(n) > t_k`` for every
    ``n >= n_k``, which the fit (from the stages before it) never saw: a planned max of that
    size or more must have more than ``t_k`` to run, and at least the cost per example the
    stopped stage showed (``t_k / n_k``, from zero). ``n`` is cut to what that allows."""
    n_k, t_k = censored
    limit = step.limit_seconds or 0.0
    if n < n_k or t_k <= 0:
        return n
    cap = n_k - 1 if limit <= t_k else min(n, int(n_k * limit / t_k))
    if cap < n:
        state.report.warnings.append(
            f"max cut from {n:,} to {cap:,} examples: stage {n_k:,} did not finish in "
            f"{t_k:.1f} s, more than max would have")
        state.report.reason += (f"; cut to {cap:,} because stage {n_k:,} did not finish in "
                                f"{t_k:.1f} s")
    return max(1, cap)


def _progressive_prediction(plan: planner.Plan, points: list[planner.Point],
                            n: int) -> float | None:
    """The predicted time of a progressive max given ``n`` examples (usually the whole dataset,
    more than the plan's ``max_n``): it is stopped at its limit, so this says how much of the
    stage the budget covers, not when it ends."""
    if plan.predicted_full_seconds is not None and n >= plan.dataset_size:
        return plan.predicted_full_seconds
    model = planner.fit(points, target_n=n)
    return model.predict(n) if model is not None else plan.predicted_seconds


def _planned_max_overran(res: StageResult, progressive: bool) -> bool:
    """A planned (not progressive) max must finish on its own: stopped at its deadline it is a
    limit that stopped a stage (exit 3), although its validated prefix is kept in final/."""
    return res.name == "max" and not progressive and res.killed_by == "deadline" and res.ok


def _can_progress(state: _State, done: list[StageResult]) -> bool:
    """Whether ``max`` may run progressively: switched on, records validated one by one, the
    fitted planner, and the largest finished stage wrote its records as it went."""
    config = state.config
    if config.progressive != "auto" or config.schema_target != "record" or config.planner != "fit":
        return False
    finished = [r for r in done if r.ok and not r.partial]
    return bool(finished) and max(finished, key=lambda r: r.n).incremental


def _drift_warning(state: _State, done: list[StageResult]) -> None:
    """With sample: first, warn when per-example cost rises with the position in the dataset.

    The stages hold the first N examples, so a cost that rises with N can come from the data
    (sorted by length or difficulty) or from the script (work that grows with N). The direct
    evidence is inside a stage whose records arrived as it went: its later records came at
    least :data:`DRIFT_SLOWDOWN` times slower than its earlier ones (a script whose cost grows
    with N slows every record alike). Without it (output written at the end), the marginal cost
    per example between stages of 50 or more must end at least :data:`DRIFT_RISE` times where it
    began, at its highest."""
    if state.config.sample != "first":
        return
    seen = [r for r in done if r.ok and r.slowdown is not None and r.name != "mini"]
    evidence = ""
    if seen:
        largest = max(seen, key=lambda r: r.records)
        if largest.slowdown is None or largest.slowdown < DRIFT_SLOWDOWN:
            return
        evidence = (f"within stage {largest.name} the later records took "
                    f"{largest.slowdown:.1f}x as long as the earlier ones")
    else:
        pts = [(r.n, r.wall_seconds) for r in done
               if r.ok and r.n >= 50 and not r.partial and r.name != "mini"]
        marg = [(y2 - y1) / (n2 - n1) for (n1, y1), (n2, y2) in zip(pts, pts[1:], strict=False)
                if n2 > n1]
        if len(marg) < 2 or marg[0] <= 0 or marg[-1] < max(marg) or (
                marg[-1] < DRIFT_RISE * marg[0]):
            return
        evidence = (f"the marginal cost per example rose from {marg[0]:.3g} s to "
                    f"{marg[-1]:.3g} s between stages")
    msg = (f"per-example cost rises with the position in the dataset ({evidence}): the dataset "
           "may be sorted (by length or difficulty), so the stages are not a fair sample; "
           "`sample: random` gives a fairer estimate")
    if msg not in state.report.warnings:
        state.report.warnings.append(msg)


def _fail(state: _State, res: StageResult) -> None:
    report = state.report
    report.status = "cancelled" if res.killed_by == "cancelled" else "failed"
    if report.status == "cancelled":
        report.exit_code = 130
        report.reason = f"cancelled during stage {res.name}"
        if res.partial and res.ok:
            report.reason += f"; its {res.records:,} validated records are kept in final/"
        return
    first = ""
    if res.errors:
        e = res.errors[0]
        first = f"; first bad record is record {e.get('index')} (line {e.get('line')}) at {e.get('path')}: " \
                f"{e.get('message')}"
    if res.killed_by in ("memory", "cpu", "deadline", "processes"):
        report.exit_code = 3
        what = {"memory": "the memory limit", "cpu": "the CPU-time limit",
                "deadline": "its time limit", "processes": "the max-processes limit"}[res.killed_by]
        report.reason = f"stage {res.name} ({res.n:,} examples) was stopped by {what}"
        if res.partial and res.records:
            report.reason += f"; its {res.records:,} validated records are kept in final/"
        if res.killed_by == "memory" and res.exit_code == 0:
            report.reason = (f"stage {res.name} ({res.n:,} examples) ran out of memory although "
                             "the script exited 0; its output is not trusted")
        if res.evidence:
            report.reason += f" ({'; '.join(res.evidence)})"
    else:
        report.exit_code = 1
        problem = res.problem or "invalid output"
        # The problem may already name the first bad record; say it once.
        tail = "" if problem.startswith("invalid output: record") else first
        report.reason = f"stage {res.name} ({res.n:,} examples) failed: {problem}{tail}"
        if res.killed_by == "invalid-output" or res.fail_fast:
            report.reason = (f"stage {res.name} ({res.n:,} examples) was stopped at the first "
                             f"invalid record{first}")
    report.error = {"type": "LimitExceeded" if report.exit_code == 3 else "ScriptFailed",
                    "message": report.reason,
                    "hint": _hint_for(res)}


def _hint_for(res: StageResult) -> str:
    if res.killed_by == "memory":
        return "lower the script's memory use, or raise `memory-limit` if the machine has room"
    if res.killed_by == "cpu":
        return "raise `cpu-limit`, or make the script use less CPU time per example"
    if res.killed_by == "processes":
        return ("the script started far more processes than expected (a fork bomb?); fix it, or "
                "raise `max-processes`")
    if res.cause == "crash":
        return f"the script crashed ({res.signal}); read {res.stderr_path} and check native code"
    if res.cause == "signal":
        return (f"something outside scaleup-ci sent {res.signal} to the script; check the runner "
                f"(and the kernel log for an OOM kill), then read {res.stderr_path}")
    if res.killed_by == "deadline" and res.name == "max" and res.predicted_seconds:
        return (f"max was predicted to take {res.predicted_seconds:.0f} s but did not finish in "
                f"{res.limit_seconds or 0:.0f} s: the cost per example grew past what the earlier "
                "stages showed. If the dataset is sorted (by length or difficulty), use `sample: "
                "random`; else raise `safety-margin`, or write JSONL as you go so max can be "
                "progressive")
    if res.killed_by == "deadline":
        return (f"the script did not finish in {res.limit_seconds or 0:.0f} s; look at "
                f"{res.stderr_path} for where it hung, or raise `time-budget`")
    if res.errors:
        return f"fix the script so its output matches the schema; the output is {res.output_path}"
    return f"read {res.stderr_path} for the script's error"


def _run_one(state: _State, name: str, n: int, *, pass_no: int, end: float,
             predicted: float | None, progressive: bool,
             points: list[planner.Point], limit: float | None = None) -> StageResult:
    config = state.config
    remaining_at_start = round(max(0.0, end - time.monotonic()), 3)
    _check_disk(state, name, n, progressive=progressive, end=end)
    stage_dir = _stage_paths(state, name, pass_no)
    stage_dir.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()
    if name == "mini" and state.mini is not None:
        input_path = stage_dir / f"input{state.mini.suffix}"
        n = state.mini.write_subset(input_path, n, sample="first", seed=0)
    else:
        input_path = stage_dir / f"input{state.dataset.suffix}"
        n = state.dataset.write_subset(input_path, n, sample=config.sample, seed=config.seed)
    output_path = stage_dir / "output.jsonl"

    now = time.monotonic()
    # Time after SIGTERM: the grace period, draining the pipes, validating, writing the report.
    grace = state.grace
    allowance = _validation_allowance(state, n)
    finish = grace + 0.5 + allowance
    if name == "max":
        grace = _max_grace(state, end - now)
        finish = grace + 0.2 + allowance
    if progressive and points:
        # The records land validated already: only the ones the time allows need a final pass.
        rate = max(p.n / p.seconds for p in points if p.seconds > 0)
        est = min(n, int(rate * max(0.0, end - now) * 1.5) + 1)
        finish = grace + 0.2 + est / 200_000
    budget_left = end - now - finish
    if progressive:
        kill_at = now + max(0.0, budget_left)
        limit = budget_left
    else:
        limit = (planner.stage_limit(predicted, max(0.0, budget_left)) if limit is None
                 else max(0.0, min(limit, budget_left)))
        kill_at = now + limit
    expected: int | None
    if config.expect_records == "per-example":
        expected = n
    elif config.expect_records == "any":
        expected = None
    else:
        expected = int(config.expect_records)
    cpu = limits_mod.cpu_seconds_for_stage(state.limits, limit, state.hw.cpus)
    mode = state.limits.mode
    spec = StageSpec(
        name=name, n=n, command=config.command, shell=config.shell,
        cwd=config.working_directory, stage_dir=stage_dir, input_path=input_path.resolve(),
        output_path=output_path.resolve(), full_path=Path(config.full_file).resolve(),
        base_env=state.env, kill_at=kill_at, grace=grace, finish_by=end,
        memory_limit=state.limits.watchdog_bytes,
        watchdog=mode != "none",
        rlimit_data=state.limits.data_bytes,
        rlimit_as=state.limits.as_bytes,
        cgroup_dir=state.limits.cgroup_dir, cgroup_version=state.limits.cgroup_version,
        max_processes=config.max_processes,
        cpu_seconds=cpu, log_max_bytes=config.log_max_bytes, validator=state.validator,
        target=config.schema_target, expected=expected, fail_fast=config.fail_fast,
        predicted_seconds=predicted, limit_seconds=limit, redact=state.redact,
        allow_partial=progressive or name == "max",
        on_progress=lambda p: _progress(state, p),
    )
    state.report.status = "running"
    title = f"stage {name}: {n:,} examples" + (f" (pass {pass_no})" if pass_no > 1 else "")
    if predicted is not None:
        title += f", predicted {predicted:.1f} s"
    title += f", limit {limit:.1f} s" + (" (progressive)" if progressive else "")
    with state.hooks.stage_group(title):
        state.hooks.echo(f"scaleup-ci: {title}")
        res = run_stage(spec, echo=state.hooks.echo, echo_err=state.hooks.echo_err,
                        cancel=state.cancel)
    res.pass_no = pass_no
    res.remaining_at_start = remaining_at_start
    if res.ok and _all_identical(output_path, res.records):
        msg = (f"stage {name}: all {res.records} output records are identical — this looks like "
               "mock output")
        if config.mock_guard == "fail":
            res.valid = False
            res.problem = msg
        elif config.mock_guard == "warn":
            state.report.warnings.append(msg)
    state.results.append(res)
    state.overheads.append(max(0.0, (time.monotonic() - t_begin) - res.wall_seconds))
    if res.ok:
        _publish_final(state, res)
    verdict = ("cancelled" if res.killed_by == "cancelled" else "ok" if res.ok
               else f"stopped at its {res.limit_seconds or 0:.1f} s limit"
               if res.killed_by == "deadline" else "FAILED")
    state.hooks.echo(
        f"scaleup-ci: stage {name} {verdict} in {res.wall_seconds:.2f} s"
        f" · {res.records:,} records" + (f" · {res.problem}" if res.problem else ""))
    state.save()
    return res


#: Disk kept free beyond a stage's predicted input, output and logs.
DISK_MARGIN = 8 * 2**20


def _check_disk(state: _State, name: str, n: int, *, progressive: bool, end: float) -> None:
    """Refuse to start a stage whose predicted files do not fit on the out-dir's disk.

    The prediction scales the bytes per example of the largest finished stage (input, output and
    logs) to ``n``; a progressive stage is scaled to the examples its time limit allows. Before the
    first stage only the margin is required.
    """
    try:
        free = shutil.disk_usage(state.out_dir).free
    except OSError:
        return
    prev = max((r for r in state.results if r.ok and r.n > 0 and not r.skipped),
               key=lambda r: r.n, default=None)
    need = DISK_MARGIN
    basis = "a safety margin"
    if prev is not None:
        used = 0
        for f in (prev.input_path, prev.output_path, prev.stdout_path, prev.stderr_path):
            with contextlib.suppress(OSError):
                used += Path(f).stat().st_size
        per = used / prev.n
        count = n
        if progressive and prev.wall_seconds > 0:
            count = min(n, int(prev.n / prev.wall_seconds * max(0.0, end - time.monotonic())) + 1)
        need += int(per * count)
        basis = f"{per:,.0f} bytes per example in stage {prev.name} x {count:,} examples"
    if free < need:
        raise LimitExceeded(
            f"out-dir: not enough disk space for stage {name}: it needs about "
            f"{limits_mod.format_bytes(need)} ({basis} + margin), only "
            f"{limits_mod.format_bytes(free)} free on {state.out_dir}",
            hint="free disk space, point `out-dir` at a larger disk, or lower `stages`/"
                 "`time-budget`; the finished stages are kept")


DRIFT_SLOWDOWN = 1.5  # later records in a stage came this much slower than earlier ones
DRIFT_RISE = 2.0  # without that evidence, the marginal cost per example at least doubled


def _max_grace(state: _State, left: float) -> float:
    """The grace after SIGTERM for ``max``: the last stage, whose stop SCALEUP_DEADLINE announces,
    so a short share of the time left (at most ``grace-period``); a slow exit is covered by the
    reserve."""
    return min(state.grace, max(0.25, 0.02 * max(0.0, left)))


def _complete_lines_end(path: Path) -> int:
    """The size of ``path`` up to and including its last newline (reads backwards from the end)."""
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        while pos > 0:
            step = min(pos, 1 << 16)
            pos -= step
            fh.seek(pos)
            nl = fh.read(step).rfind(b"\n")
            if nl >= 0:
                return pos + nl + 1
    return 0


VALIDATE_BYTES_PER_SECOND = 50e6  # assumed until a stage's validation has been timed
VALIDATE_SECONDS_PER_RECORD = 4e-6  # the per-record floor on top of the bytes


def _validation_cost(state: _State) -> float | None:
    """Seconds per example to validate output after the script exits (all of it, as if it were
    written at the end), from the bytes per record and the validation speed the stages so far
    showed, with a 25 % margin; ``None`` before any stage wrote records."""
    done = [r for r in state.results if r.records > 0 and r.output_bytes > 0]
    if not done:
        return None
    per_record = max(r.output_bytes / r.records for r in done)
    rates = [r.validate_bytes_per_second for r in done if r.validate_bytes_per_second]
    rate = min(rates) if rates else VALIDATE_BYTES_PER_SECOND
    return 1.25 * (per_record / rate + VALIDATE_SECONDS_PER_RECORD)


def _validation_allowance(state: _State, n: int) -> float:
    """Seconds kept after a stage's script exits to validate its output. The planner counts the
    same cost per example (see :func:`_plan_points`), so a plan that fits gets a limit that
    fits: records of hundreds of KB take far longer than tiny ones."""
    cost = _validation_cost(state)
    if cost is None:
        return 0.2 + n / 50_000  # no stage measured yet: a generous guess
    return 0.2 + n * cost


def _plan_points(state: _State, points: list[planner.Point]) -> list[planner.Point]:
    """The timings the planner sizes stages with: each stage's time plus validating its output
    (see :func:`_validation_allowance`), so the planned max leaves room for its validation."""
    cost = _validation_cost(state)
    if not cost:
        return points
    return [dataclasses.replace(p, seconds=p.seconds + cost * p.n) for p in points]


def _progress(state: _State, p: StageProgress) -> None:
    """About every 10 s: records done of N, the rate, the ETA against the deadline, memory.
    On an interactive terminal (not in CI) a progress bar on stderr, redrawn in place."""
    rate = p.records / p.elapsed if p.elapsed > 0 else 0.0
    eta = (p.n - p.records) / rate if rate > 0 else math.inf
    eta_s = f"{eta:.0f} s" if math.isfinite(eta) else "?"
    verdict = "" if not math.isfinite(eta) else (
        " (on time)" if eta <= p.seconds_left else " (will be stopped at the deadline)")
    mem = f"{p.rss_bytes / 2**20:.0f} MiB"
    left = max(0.0, p.seconds_left)
    if _is_tty(state):
        import sys

        width = 30
        frac = min(1.0, p.records / p.n) if p.n else 0.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        sys.stderr.write(f"\r[{p.name}] [{bar}] {p.records:,}/{p.n:,} · {rate:.1f}/s · ETA "
                         f"{eta_s} · {left:.0f} s left · {mem}   ")
        sys.stderr.flush()
        return
    if p.records == 0:
        # Output written at the end (or not yet): no rate to show, only the clock.
        state.hooks.echo(
            f"scaleup-ci: [{p.name}] {p.n:,} examples · running {p.elapsed:.0f} s, no output "
            f"records yet · {left:.0f} s to its limit · memory {mem}")
        return
    state.hooks.echo(
        f"scaleup-ci: [{p.name}] {p.records:,}/{p.n:,} records · {rate:.1f}/s · "
        f"ETA {eta_s}{verdict} · {left:.0f} s to deadline · memory {mem}")


def _is_tty(state: _State) -> bool:
    import sys

    if state.env.get("CI") or state.env.get("GITHUB_ACTIONS"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _publish_final(state: _State, res: StageResult) -> None:
    """Publish the largest validated output as final/ (atomically: link, then rename). The
    file is the stage's own output.jsonl, hard-linked, so cutting a partial stage's unfinished
    last line cuts it in the stage folder too."""
    if state.best is not None and res.records < state.best.records:
        return
    state.best = res
    src = Path(res.output_path)
    if not src.exists():
        return
    final_dir = state.out_dir / "final"
    final_dir.mkdir(parents=True, exist_ok=True)
    dest = final_dir / src.name
    tmp = final_dir / f".{src.name}.tmp"
    tmp.unlink(missing_ok=True)
    # A hard link: publishing a multi-GB output costs no time (a copy could overrun the budget
    # after a progressive max stopped at the last moment). A copy only across file systems.
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    if res.partial:
        # Keep only the complete lines (all validated): cut a partly written last line.
        # The follower knows where the last complete line ended; else scan back for it.
        end = res.complete_bytes if res.complete_bytes else _complete_lines_end(tmp)
        if end < tmp.stat().st_size:
            os.truncate(tmp, end)
    tmp.replace(dest)
    state.report.final = {"path": str(dest), "stage": res.name, "records": res.records,
                          "pass_no": res.pass_no, "partial": res.partial}
    atomic_write(final_dir / "stage.json",
                 json.dumps(state.report.final, indent=2) + "\n")

