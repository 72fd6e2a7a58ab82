"""Throughput and memory of scaleup_ci.validate on a five-field JSONL output.

Usage: python benchmarks/tool/bench_validate.py [--records N] [--rss-records M] [--repeat R]

Prints records/s for
  * bare ``json.loads`` of every line (the floor: parsing alone),
  * ``validate_output`` (read, parse, validate with the fast path, digest),
  * plain ``jsonschema`` ``is_valid`` after ``json.loads`` (on a 20,000-record slice, scaled),
with ratios, machine facts, and the peak RSS of child processes validating a small and a large
(default 1,000,000-record) file, to show memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "n": {"type": "integer"},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "label": {"enum": ["yes", "no", "maybe"]},
    },
    "required": ["id", "n", "score", "ok", "label"],
}
LABELS = ["yes", "no", "maybe"]


def write_records(path: Path, n: int, seed: int = 0) -> None:
    """Write n five-field records as JSONL, streaming (no list of records in memory)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        batch: list[str] = []
        for i in range(n):
            rec = {
                "id": f"example-{i}",
                "n": rng.randrange(1_000_000),
                "score": rng.random(),
                "ok": rng.random() < 0.5,
                "label": LABELS[i % 3],
            }
            batch.append(json.dumps(rec))
            if len(batch) >= 10_000:
                fh.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            fh.write("\n".join(batch) + "\n")


def best_of(repeat: int, fn: Any) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds) over repeat runs; CPU time resists a busy machine."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def bench_bare(path: Path) -> None:
    loads = json.loads
    with path.open("rb") as fh:
        for line in fh.read().split(b"\n"):
            if line:
                loads(line)


def rss_child(path: str) -> None:
    """Run in a child: validate one file and print records and peak RSS (bytes)."""
    from scaleup_ci.validate import RecordValidator, validate_output

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = validate_output(Path(path), RecordValidator(SCHEMA), expected=None)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    print(
        json.dumps(
            {
                "records": result.records,
                "valid": result.valid,
                "rss_before": before * scale,
                "rss_peak": after * scale,
            }
        )
    )


def measure_rss(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rss-records", type=int, default=1_000_000)
    parser.add_argument("--slice", type=int, default=20_000, help="records for plain jsonschema")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return

    import jsonschema

    from scaleup_ci.validate import RecordValidator, validate_output

    print("machine:")
    print(f"  cpus            {os.cpu_count()} ({platform.machine()}, {platform.system()})")
    print(f"  python          {platform.python_version()} ({platform.python_implementation()})")
    print(f"  load average    {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for dist in ("jsonschema", "jsonschema-rs"):
        try:
            print(f"  {dist:<15} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            print(f"  {dist:<15} not installed")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.jsonl"
        write_records(path, args.records)
        size = path.stat().st_size
        n = args.records
        validator = RecordValidator(SCHEMA)
        result = validate_output(path, validator, expected=n)
        assert result.valid and result.records == n, result.to_dict()

        t_bare = best_of(args.repeat, lambda: bench_bare(path))
        t_ours = best_of(args.repeat, lambda: validate_output(path, validator, expected=n))

        lines = path.read_bytes().split(b"\n")[: args.slice]
        plain = jsonschema.Draft202012Validator(SCHEMA)

        def bench_plain() -> None:
            loads = json.loads
            is_valid = plain.is_valid
            for line in lines:
                if line:
                    is_valid(loads(line))

        m = min(args.slice, n)
        w_plain, c_plain = best_of(1, bench_plain)
        t_plain = (w_plain * n / m, c_plain * n / m)

        print(f"\nthroughput on {n:,} records ({size / 1e6:.1f} MB), best of {args.repeat}:")
        print(f"  {'':<42} {'records/CPU-s':>14} {'records/wall-s':>15}")
        rows = [
            ("bare json.loads", t_bare),
            ("validate_output", t_ours),
            (f"jsonschema is_valid (slice {m:,}, scaled)", t_plain),
        ]
        for name, (wall, cpu) in rows:
            print(f"  {name:<42} {n / cpu:>14,.0f} {n / wall:>15,.0f}")
        ratio = t_ours[1] / t_bare[1]
        print(f"  validate_output / bare json.loads CPU cost {ratio:>14.2f}x")
        print(f"  speed-up over plain jsonschema (CPU)       {t_plain[1] / t_ours[1]:>14.1f}x")

        small = Path(tmp) / "small.jsonl"
        big = Path(tmp) / "big.jsonl"
        write_records(small, 10_000, seed=1)
        write_records(big, args.rss_records, seed=2)
        print("\npeak RSS of a child process validating (memory should be flat):")
        for label, file in (("small", small), ("large", big)):
            info = measure_rss(file)
            print(
                f"  {label:<6} {info['records']:>10,} records "
                f"({file.stat().st_size / 1e6:7.1f} MB file): "
                f"peak RSS {info['rss_peak'] / 2**20:6.1f} MiB "
                f"(after imports {info['rss_before'] / 2**20:6.1f} MiB)"
            )


if __name__ == "__main__":
    main()
