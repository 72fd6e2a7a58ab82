"""Time cutting the first N=200 examples out of large datasets.

Generates JSONL and single-line JSON-array files of the chosen sizes in a temporary directory
(deleted afterwards), then times ``open_dataset`` and ``Dataset.write_subset(n=200)`` on each
(median of several repeats; the page cache is warm because the files were just written).

    python benchmarks/tool/bench_subset.py                # 1 MiB and 100 MiB
    python benchmarks/tool/bench_subset.py --full         # adds 1 GiB
    python benchmarks/tool/bench_subset.py --sizes 1MiB,10MiB --count

Targets (see dataset.py): first-200 from 1 GiB JSONL < 50 ms, from a 1 GiB single-line JSON
array < 200 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scaleup_ci.dataset import open_dataset

UNITS = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "B": 1}
DEFAULT_SIZES = "1MiB,100MiB"
FULL_SIZE = "1GiB"


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def record(i: int) -> bytes:
    return (
        b'{"id": %d, "question": "What is %d plus %d? Explain step by step.", '
        b'"answer": "%d", "meta": {"split": "test", "tags": ["math", "easy"]}}' % (i, i, i, 2 * i)
    )


def generate(path: Path, size: int, kind: str) -> int:
    """Write about ``size`` bytes of JSONL or a single-line JSON array; return the record count."""
    written = 0
    i = 0
    with open(path, "wb") as f:
        if kind == "json-array":
            f.write(b"[")
            written += 1
        sep = b"\n" if kind == "jsonl" else b", "
        while written < size:
            block = sep.join(record(j) for j in range(i, i + 500))
            block = block + sep if kind == "jsonl" else (b", " if i else b"") + block
            f.write(block)
            written += len(block)
            i += 500
        if kind == "json-array":
            f.write(b"]")
    return i


def machine_facts() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = human(int(line.split()[1]) * 1024)
    except OSError:
        pass
    return [
        f"python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"cpu: {cpu}, {os.cpu_count()} logical cpus; memory {mem}",
    ]


def time_it(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated sizes")
    parser.add_argument("--full", action="store_true", help=f"also run {FULL_SIZE}")
    parser.add_argument("--n", type=int, default=200, help="examples to cut (default 200)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--count", action="store_true", help="also time a full count()")
    parser.add_argument("--dir", help="where to put the generated files (default: a temp dir)")
    args = parser.parse_args(argv)

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.full and parse_size(FULL_SIZE) not in sizes:
        sizes.append(parse_size(FULL_SIZE))

    tmp = Path(tempfile.mkdtemp(prefix="scaleup-bench-", dir=args.dir))
    rows: list[list[str]] = []
    try:
        for size in sizes:
            for kind, name in (("jsonl", "data.jsonl"), ("json-array", "data.json")):
                path = tmp / f"{size}-{name}"
                t0 = time.perf_counter()
                records = generate(path, size, kind)
                gen = time.perf_counter() - t0
                out = tmp / f"out{path.suffix}"
                t_open = time_it(lambda p=path: open_dataset(p), args.repeats)
                ds = open_dataset(path)
                assert ds.kind == kind, (ds.kind, kind)
                t_cut = time_it(lambda d=ds, o=out: d.write_subset(o, args.n), args.repeats)
                t_total = time_it(
                    lambda p=path, o=out: open_dataset(p).write_subset(o, args.n), args.repeats
                )
                written = ds.write_subset(out, args.n)
                cells = [
                    human(path.stat().st_size),
                    kind,
                    f"{records:,}",
                    str(written),
                    f"{t_open * 1e3:.1f}",
                    f"{t_cut * 1e3:.1f}",
                    f"{t_total * 1e3:.1f}",
                    f"{gen:.1f}",
                ]
                if args.count:
                    t_count = time_it(lambda p=path: open_dataset(p).count(), 1)
                    cells.append(f"{t_count * 1e3:.0f}")
                rows.append(cells)
                path.unlink()
                print(f"  done {human(size)} {kind}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("\n".join(machine_facts()))
    print(f"n={args.n}, median of {args.repeats} runs, warm page cache\n")
    head = ["file", "kind", "records", "cut", "open ms", "write_subset ms", "open+cut ms"]
    head.append("generate s")
    if args.count:
        head.append("count() ms")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
