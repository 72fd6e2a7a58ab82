"""Every figure of the tool's own cost, with the machine facts, in one run.

    python -m benchmarks.tool            # the full set (generates 1 GiB files; a few minutes)
    python -m benchmarks.tool --quick    # smaller files and fewer repeats (well under a minute)
    python benchmarks/tool/run_all.py --dir /big/disk

Large files are generated on the fly in a temporary directory (``--dir`` chooses where) and
deleted at the end; nothing is committed. The closing table lists figure | measured | target.
Figures on a busy machine are slower: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.tool import bench_overhead, bench_subset, bench_validate  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30


def machine_facts() -> list[str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    facts = bench_subset.machine_facts()
    facts.append(f"usable cpus (affinity): {usable}")
    versions = []
    for dist in ("scaleup-ci", "jsonschema", "jsonschema-rs", "psutil"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    facts.append("versions: " + ", ".join(versions))
    facts.append("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return facts


def section(title: str) -> None:
    print(f"\n## {title}", flush=True)


def bench_validation(tmp: Path, records: int, repeat: int) -> dict[str, float]:
    import jsonschema

    from scaleup_ci.validate import RecordValidator, validate_output

    path = tmp / "validate.jsonl"
    bench_validate.write_records(path, records)
    validator = RecordValidator(bench_validate.SCHEMA)
    result = validate_output(path, validator, expected=records)
    assert result.valid and result.records == records, result.to_dict()
    t_bare = bench_validate.best_of(repeat, lambda: bench_validate.bench_bare(path))
    t_ours = bench_validate.best_of(repeat, lambda: validate_output(path, validator,
                                                                    expected=records))
    m = min(records, 20_000)
    lines = path.read_bytes().split(b"\n")[:m]
    plain = jsonschema.Draft202012Validator(bench_validate.SCHEMA)

    def run_plain() -> None:
        loads, is_valid = json.loads, plain.is_valid
        for line in lines:
            if line:
                is_valid(loads(line))

    w, c = bench_validate.best_of(1, run_plain)
    t_plain = (w * records / m, c * records / m)
    path.unlink()
    out = {
        "bare_rps": records / t_bare[1],
        "ours_rps": records / t_ours[1],
        "plain_rps": records / t_plain[1],
        "ours_wall_rps": records / t_ours[0],
        "cost_vs_bare": t_ours[1] / t_bare[1],
        "speedup_vs_plain": t_plain[1] / t_ours[1],
    }
    print(f"{records:,} five-field records, best of {repeat} (CPU time; plain jsonschema on a "
          f"{m:,}-record slice, scaled)")
    print(f"  bare json.loads          {out['bare_rps']:>12,.0f} records/s")
    print(f"  validate_output (ours)   {out['ours_rps']:>12,.0f} records/s "
          f"({out['ours_wall_rps']:,.0f}/s wall)")
    print(f"  plain jsonschema         {out['plain_rps']:>12,.0f} records/s")
    print(f"  ours / bare cost {out['cost_vs_bare']:.2f}x; ours vs plain jsonschema "
          f"{out['speedup_vs_plain']:.1f}x faster")
    return out


def bench_subsets(tmp: Path, sizes: list[int], repeats: int,
                  keep: dict[tuple[int, str], Path]) -> dict[tuple[int, str], dict[str, float]]:
    """Time open + write_subset(200) for each size and kind; keep the files listed in ``keep``."""
    from scaleup_ci.dataset import open_dataset

    rows: dict[tuple[int, str], dict[str, float]] = {}
    print("| file | kind | records | open+cut N=200 ms (median) | count() s |")
    print("|---|---|---|---|---|")
    for size in sizes:
        for kind, name in (("jsonl", "data.jsonl"), ("json-array", "data.json")):
            path = tmp / f"{size}-{name}"
            records = bench_subset.generate(path, size, kind)
            out = tmp / f"cut{path.suffix}"
            t = bench_subset.time_it(lambda p=path, o=out: open_dataset(p).write_subset(o, 200),
                                     repeats)
            assert open_dataset(path).write_subset(out, 200) == 200
            t0 = time.perf_counter()
            counted = open_dataset(path).count()
            t_count = time.perf_counter() - t0
            assert counted == records, (counted, records)
            rows[(size, kind)] = {"cut_ms": t * 1e3, "count_s": t_count, "records": records}
            print(f"| {bench_subset.human(path.stat().st_size)} | {kind} | {records:,} | "
                  f"{t * 1e3:.1f} | {t_count:.2f} |", flush=True)
            if (size, kind) in keep:
                keep[(size, kind)] = path
            else:
                path.unlink()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 MiB and 100 MiB files, 100,000-record output, fewer repeats")
    parser.add_argument("--dir", help="where to generate the large files (default: temp dir)")
    args = parser.parse_args(argv)
    quick = args.quick
    big = 100 * MiB if quick else GiB
    sizes = [MiB, 100 * MiB] + ([] if quick else [GiB])
    out_records = 100_000 if quick else 1_000_000

    print("# scaleup-ci: the tool's own cost" + (" (--quick)" if quick else ""))
    for line in machine_facts():
        print(f"- {line}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("- PYTHONDONTWRITEBYTECODE is set here; the tool runs below use a private "
              "PYTHONPYCACHEPREFIX instead, as an installed package would have its bytecode")

    tmp = Path(tempfile.mkdtemp(prefix="scaleup-bench-", dir=args.dir))
    figures: list[tuple[str, str, str, bool | None]] = []
    try:
        section("validation throughput")
        v = bench_validation(tmp, 20_000 if quick else 100_000, 2 if quick else 3)
        figures += [
            ("parse + validate (ours), records/s CPU", f"{v['ours_rps']:,.0f}", ">= 200,000",
             v["ours_rps"] >= 200_000),
            ("ours vs plain jsonschema", f"{v['speedup_vs_plain']:.1f}x", ">= 10x",
             v["speedup_vs_plain"] >= 10),
            ("ours cost / bare json parsing", f"{v['cost_vs_bare']:.2f}x", "<= 1.5x",
             v["cost_vs_bare"] <= 1.5),
        ]

        section("subsetting N=200 (warm page cache)")
        keep: dict[tuple[int, str], Path] = {(big, "jsonl"): tmp, (big, "json-array"): tmp}
        rows = bench_subsets(tmp, sizes, 3 if quick else 5, keep)
        for size in sizes:
            for kind, target in (("jsonl", 50.0), ("json-array", 200.0)):
                ms = rows[(size, kind)]["cut_ms"]
                ok = ms < target if size == GiB else None
                figures.append((f"N=200 from {bench_subset.human(size)} {kind}", f"{ms:.1f} ms",
                                f"< {target:g} ms" if size == GiB else "-", ok))
        arr = rows[(big, "json-array")]
        figures.append((f"count() of the {bench_subset.human(big)} JSON array",
                        f"{arr['count_s']:.2f} s ({big / MiB / arr['count_s']:.0f} MiB/s)",
                        "lazy; fast", None))

        section("overhead per stage (6 stages of a script that does nothing)")
        o = bench_overhead.measure_overhead(tmp, 3 if quick else 7)
        print(f"tool {o['tool_seconds'] * 1e3:.0f} ms vs bare shell loop "
              f"{o['bare_seconds'] * 1e3:.1f} ms (median of {o['repeats']}; {o['stages']:g} "
              f"stages) -> ratio {o['ratio']:.0f}x")
        print(f"  all-in: {o['per_stage_ms']:.1f} ms per stage (start-up {o['startup_ms']:.0f} ms "
              "included: Python, imports, config, hardware)")
        print(f"  stage loop only: {o['loop_per_stage_ms']:.1f} ms per stage (spawn with the "
              "limits applied, watch, validate, write the report)")
        load = " ".join(f"{x:.2f}" for x in o["load_average"])
        print(f"  CPU time (user + system, tool and children): {o['cpu_per_stage_ms']:.1f} ms per "
              f"stage; load average {load} (1/5/15 min before, 1 min after: wall figures grow "
              "with the load, CPU time much less)")
        figures += [
            ("overhead per stage, all-in", f"{o['per_stage_ms']:.1f} ms (load {load})",
             "< 50 ms", o["per_stage_ms"] < 50),
            ("overhead per stage, stage loop only", f"{o['loop_per_stage_ms']:.1f} ms",
             "< 50 ms", o["loop_per_stage_ms"] < 50),
            ("overhead per stage, CPU time all-in", f"{o['cpu_per_stage_ms']:.1f} ms", "-", None),
            ("tool / bare shell loop (6 no-op stages)", f"{o['ratio']:.0f}x", "-", None),
        ]

        section(f"peak RSS of the tool ({bench_subset.human(big)} JSONL dataset, "
                f"{out_records:,}-record output)")
        r = bench_overhead.measure_rss(tmp, keep[(big, "jsonl")], out_records)
        print(f"peak RSS {r['peak_rss'] / MiB:.1f} MiB (getrusage(RUSAGE_SELF); children "
              f"excluded); last stage: {r['records']:,} records, valid={r['valid']}, "
              f"{r['stage_seconds']:.1f} s; whole run {r['wall']:.1f} s; dataset size in "
              f"report: {r['dataset_size_in_report']}")
        figures.append((f"tool peak RSS ({bench_subset.human(big)} data, {r['records']:,} "
                        "records out)", f"{r['peak_rss'] / MiB:.1f} MiB", "< 100 MB",
                        r["peak_rss"] < 100e6 and r["records"] == out_records))

        section(f"lazy count ({bench_subset.human(big)} single-line JSON array, stages mini,10,50)")
        lz = bench_overhead.measure_lazy(tmp, keep[(big, "json-array")])
        print(f"run {lz['wall']:.2f} s, dataset size in report: {lz['size_in_report']} "
              f"(None = never counted); a full count() takes {lz['count_seconds']:.2f} s")
        figures.append(("run below the dataset size counts it?",
                        "no" if lz["size_in_report"] is None else "YES",
                        "no", lz["size_in_report"] is None))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    section("summary")
    print("- load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("\n| figure | measured | target | met |")
    print("|---|---|---|---|")
    for name, measured, target, ok in figures:
        met = "-" if ok is None else ("yes" if ok else "NO")
        print(f"| {name} | {measured} | {target} | {met} |")
    return 0 if all(ok is not False for *_, ok in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
