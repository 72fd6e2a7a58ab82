"""Planner benchmark: sleep-based workloads with known cost curves through the REAL CLI.

usage: python benchmarks/planner/bench.py [--quick] [--repeats R] [--jobs J] [--only KIND,...]

Every workload runs as ``python -m scaleup_ci run ...`` in a subprocess, in three modes:

- ``progressive``: the default (progressive max when the output is incremental JSONL);
- ``planned``: ``--progressive off`` (max is sized by the fitted planner and must finish);
- ``baseline``: ``--planner rule-of-thumb --progressive off`` (seconds per example of the last
  stage with a 10 % margin: the manual method).

Per workload and mode it reports: overruns (the tool's wall time beyond ``time-budget``),
max stages killed at the deadline, median utilisation (max seconds over the time that remained
when max started, ``remaining_at_start`` in report.json), validated records in final/, the median
absolute prediction error of max, and whether every record in final/ is valid. ``--quick`` runs
four workloads once (about 3 minutes); the full run covers all of them (about 15 minutes with
three jobs; the workloads sleep, so they share two cores without disturbing each other).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKLOAD = HERE / "workload.py"
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "score", "length"],
    "properties": {"id": {"type": "string"}, "score": {"type": "number", "minimum": 0,
                                                       "maximum": 1},
                   "length": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}
MODES = {
    "progressive": [],
    "planned": ["--progressive", "off"],
    "baseline": ["--planner", "rule-of-thumb", "--progressive", "off"],
}
CURVED = {"nlogn", "n1.3", "quadratic", "index-rising"}


@dataclass(frozen=True)
class Workload:
    kind: str
    budget: float = 30.0
    size: int = 20_000
    extra: tuple[str, ...] = ()
    modes: tuple[str, ...] = tuple(MODES)
    repeats: int | None = None  # None: the --repeats value


WORKLOADS = (
    Workload("linear"),
    Workload("startup", budget=45.0),
    Workload("nlogn"),
    Workload("n1.3"),
    Workload("quadratic"),
    Workload("sublinear"),
    Workload("noise25"),
    Workload("index-rising"),
    Workload("memory", size=2000, extra=("--memory-limit", "200MiB")),
    Workload("at-end"),
    Workload("first-slow"),
    Workload("fits-whole", size=300),
)
MEMORY50 = Workload("memory50", size=2000, extra=("--memory-limit", "2GiB"), budget=40.0,
                    modes=("planned",), repeats=1)
QUICK = ("linear", "quadratic", "at-end", "memory")


@dataclass
class RunResult:
    workload: str
    mode: str
    wall: float
    budget: float
    code: int
    report: dict[str, Any] = field(default_factory=dict)
    final_ok: bool = True
    final_records: int = 0
    rep: int = 0

    @property
    def overrun(self) -> float:
        return max(0.0, self.wall - self.budget)

    def max_stage(self) -> dict[str, Any] | None:
        for s in self.report.get("stages", []):
            if s.get("name") == "max" and not s.get("skipped"):
                return s
        return None


def _dataset(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"ex-{i:05d}", "text": "word " * (i % 13 + 1)}) + "\n")


def _check_final(out: Path) -> tuple[bool, int]:
    """Every line of final/output.jsonl is complete JSON and matches the schema."""
    import jsonschema

    path = out / "final" / "output.jsonl"
    if not path.exists():
        return True, 0
    v = jsonschema.Draft202012Validator(SCHEMA)
    n = 0
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        return False, 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            return False, n
        if not v.is_valid(rec):
            return False, n
        n += 1
    return True, n


def run_one(w: Workload, mode: str, rep: int, base: Path) -> RunResult:
    work = base / f"{w.kind}-{mode}-{rep}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = work / "data.jsonl"
    _dataset(data, w.size)
    schema = work / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    state = work / "state"
    cmd = " ".join([sys.executable, str(WORKLOAD), w.kind, "{input}", "{output}", "--state",
                    str(state)])
    argv = [sys.executable, "-m", "scaleup_ci", "run", "--command", cmd, "--full-file", str(data),
            "--schema", str(schema), "--time-budget", f"{w.budget:g}s", "--out-dir",
            str(work / "out"), *w.extra, *MODES[mode]]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEUP_", "GITHUB_"))}
    env["PYTHONPATH"] = str(ROOT)
    t = time.monotonic()
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                          timeout=w.budget + 60)
    wall = time.monotonic() - t
    (work / "console.txt").write_text(proc.stdout + proc.stderr)
    try:
        report = json.loads((work / "out" / "report.json").read_text())
    except (OSError, ValueError):
        report = {}
    ok, recs = _check_final(work / "out")
    return RunResult(w.kind, mode, wall, w.budget, proc.returncode, report, ok, recs, rep)


def summarise(results: list[RunResult]) -> list[dict[str, Any]]:
    rows = []
    keys: list[tuple[str, str]] = []
    for r in results:
        if (r.workload, r.mode) not in keys:
            keys.append((r.workload, r.mode))
    for kind, mode in keys:
        rs = [r for r in results if r.workload == kind and r.mode == mode]
        utils, errs, killed, maxes, mem_killed = [], [], 0, 0, 0
        for r in rs:
            m = r.max_stage()
            if m is None:
                continue
            maxes += 1
            if m.get("killed_by") == "deadline" and not m.get("partial") or m.get("killed_by") == "deadline" and mode != "progressive":
                killed += 1
            if m.get("killed_by") == "memory":
                mem_killed += 1
            whole = m.get("n", 0) >= (r.report.get("dataset") or {}).get("size", 1 << 62)
            rem = m.get("remaining_at_start")
            capped = (r.report.get("plan") or {}).get("memory_capped")
            if rem and not capped and not (whole and not m.get("partial")):
                utils.append(m["wall_seconds"] / rem)
            pred = m.get("predicted_seconds")
            if pred and not m.get("partial") and m.get("killed_by") is None:
                errs.append(abs(m["wall_seconds"] - pred) / pred)
        rows.append({
            "workload": kind, "mode": mode, "runs": len(rs),
            "overruns": sum(1 for r in rs if r.overrun > 0),
            "worst_over_s": max((r.wall - r.budget for r in rs), default=0.0),
            "max_runs": maxes, "max_killed": killed, "mem_killed": mem_killed,
            "util": statistics.median(utils) if utils else None,
            "records": statistics.median([r.final_records for r in rs]),
            "pred_err": statistics.median(errs) if errs else None,
            "final_valid": all(r.final_ok for r in rs),
            "status": ",".join(sorted({str(r.report.get("status")) for r in rs})),
            "drift": sum(1 for r in rs if any("rises with the position" in w
                                              for w in r.report.get("warnings", []))),
            "utils": utils,
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def f(v: float | None, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    out = ["| workload | mode | runs | overruns | worst wall−budget (s) | max killed at deadline "
           "| median util | median records | median max pred. error | final/ valid | status "
           "| drift warning |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['workload']} | {r['mode']} | {r['runs']} | {r['overruns']} | "
            f"{r['worst_over_s']:+.2f} | {r['max_killed']}/{r['max_runs']} | "
            f"{f(r['util'], '.2f')} | {r['records']:.0f} | {f(r['pred_err'], '.1%')} | "
            f"{'yes' if r['final_valid'] else 'NO'} | {r['status']} | {r['drift']}/{r['runs']} |")
    return "\n".join(out)


def totals(rows: list[dict[str, Any]]) -> str:
    lines = []
    for mode in MODES:
        rs = [r for r in rows if r["mode"] == mode]
        if not rs:
            continue
        utils = [u for r in rs for u in r["utils"]]
        maxes = sum(r["max_runs"] for r in rs)
        killed = sum(r["max_killed"] for r in rs)
        lines.append(
            f"- {mode}: overruns {sum(r['overruns'] for r in rs)} of {sum(r['runs'] for r in rs)} "
            f"runs; max finished unkilled in {maxes - killed}/{maxes} "
            f"({(maxes - killed) / max(1, maxes):.0%}); median utilisation "
            f"{statistics.median(utils) if utils else float('nan'):.2f} over {len(utils)} "
            f"budget-limited max stages; memory kills at max {sum(r['mem_killed'] for r in rs)}")
    curved = [r for r in rows if r["workload"] in CURVED]
    better = []
    for kind in sorted({r["workload"] for r in curved}):
        ours = [r for r in curved if r["workload"] == kind and r["mode"] != "baseline"]
        base = [r for r in curved if r["workload"] == kind and r["mode"] == "baseline"]
        if ours and base:
            o = sum(r["overruns"] + r["max_killed"] for r in ours) / sum(r["runs"] for r in ours)
            b = sum(r["overruns"] + r["max_killed"] for r in base) / sum(r["runs"] for r in base)
            better.append(f"{kind}: ours {o:.2f} vs baseline {b:.2f} (overruns + max kills per run)")
    if better:
        lines.append("- curved workloads: " + "; ".join(better))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="four workloads, one repeat")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated workload kinds")
    ap.add_argument("--modes", default=",".join(MODES),
                    help=f"comma-separated modes to run (default: {','.join(MODES)})")
    ap.add_argument("--no-memory50", action="store_true",
                    help="skip the 50 MB/example under 2 GiB run")
    ap.add_argument("--json", type=Path, help="write the raw rows here")
    ap.add_argument("--keep", type=Path, help="keep the run directories here")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        ap.error(f"--modes: unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    wls = list(WORKLOADS)
    repeats = 1 if args.quick else args.repeats
    if args.quick:
        wls = [w for w in wls if w.kind in QUICK]
    elif not args.no_memory50:
        wls.append(MEMORY50)
    if args.only:
        keep = set(args.only.split(","))
        wls = [w for w in [*WORKLOADS, MEMORY50] if w.kind in keep]
    base = args.keep or Path(tempfile.mkdtemp(prefix="scaleup-bench-"))
    jobs = [(w, mode, rep) for rep in range(repeats) for w in wls for mode in w.modes
            if mode in modes and rep < (w.repeats or repeats)]
    # Longest budgets first, so the pool drains evenly.
    jobs.sort(key=lambda j: -j[0].budget)
    t0 = time.monotonic()
    print(f"planner benchmark: {len(jobs)} runs, {args.jobs} at a time, in {base}", flush=True)
    results: list[RunResult] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = [pool.submit(run_one, w, mode, rep, base) for w, mode, rep in jobs]
        for fut in futs:
            r = fut.result()
            results.append(r)
            m = r.max_stage() or {}
            print(f"  {r.workload:<13} {r.mode:<11} wall {r.wall:6.2f}/{r.budget:g}s exit {r.code} "
                  f"max n={m.get('n')} {m.get('wall_seconds', 0):.1f}s of "
                  f"{m.get('remaining_at_start')} killed_by={m.get('killed_by')} "
                  f"partial={m.get('partial')} final={r.final_records}", flush=True)
    broken = [r for r in results if not r.report]
    for r in broken[:3]:
        tail = (base / f"{r.workload}-{r.mode}-{r.rep}" / "console.txt").read_text()[-1500:]
        print(f"\n{r.workload} {r.mode}: exit {r.code} and no report.json; console ends:\n{tail}",
              file=sys.stderr)
    if broken:
        print(f"\n{len(broken)} of {len(results)} runs wrote no report.json: the figures would be "
              "meaningless. Is scaleup-ci installed in this Python (pip install -e .)?",
              file=sys.stderr)
        return 1
    rows = summarise(results)
    print()
    print(table(rows))
    print()
    print(totals(rows))
    print(f"\nwall time {time.monotonic() - t0:.0f} s for {len(jobs)} runs ({args.jobs} at a time)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
