"""A sleep-based evaluation script with a known cost curve, for the planner benchmark.

usage: workload.py KIND INPUT OUTPUT [--state DIR]

Reads JSONL input and writes one JSONL record per example (flushed as it goes, unless the kind
writes at the end). Each example sleeps for the marginal cost of the curve at its position, so a
run of ``n`` examples takes ``startup + cost(n)`` seconds (times a per-run noise factor for the
noisy kind). Memory kinds hold a block of bytes per example (touched, so it counts in RSS).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

MB = 1_000_000

# kind: (startup seconds, cost(n) in seconds for n examples)
CURVES = {
    "linear": (0.1, lambda n: 0.004 * n),
    "startup": (4.0, lambda n: 0.004 * n),
    "nlogn": (0.1, lambda n: 0.0006 * n * math.log(max(n, 1))),
    "n1.3": (0.1, lambda n: 0.0018 * n**1.3),
    "quadratic": (0.1, lambda n: 1.5e-5 * n * n),
    "sublinear": (0.1, lambda n: 0.05 * n**0.7),
    "noise25": (0.1, lambda n: 0.004 * n),
    "index-rising": (0.1, None),  # cost depends on the example's position in the dataset
    "index-steep": (0.1, None),  # the same, rising faster (for the drift-warning test)
    "memory": (0.1, lambda n: 0.01 * n),
    "memory50": (0.1, lambda n: 0.01 * n),
    "at-end": (0.1, lambda n: 0.004 * n),
    "first-slow": (0.1, lambda n: 0.004 * n),
    "fits-whole": (0.1, lambda n: 0.004 * n),
}
MEMORY_PER_EXAMPLE = {"memory": 5 * MB, "memory50": 50 * MB}


def main() -> int:
    kind, inp, out = sys.argv[1:4]
    state = Path(sys.argv[sys.argv.index("--state") + 1]) if "--state" in sys.argv else None
    startup, cost = CURVES[kind]
    factor = math.exp(random.gauss(0.0, 0.25)) if kind == "noise25" else 1.0
    with open(inp, encoding="utf-8") as fh:
        examples = [json.loads(line) for line in fh if line.strip()]
    t_start = startup
    if kind == "first-slow" and state is not None:
        marker = state / "warm"
        if not marker.exists():
            t_start += 3.0  # imports and caches on the first run only
            state.mkdir(parents=True, exist_ok=True)
            marker.write_text("warm")
    time.sleep(t_start * factor)
    held = []
    pending = []
    with open(out, "a", encoding="utf-8") as fh:
        for i, ex in enumerate(examples):
            if cost is None:
                idx = int(str(ex["id"]).rsplit("-", 1)[-1])
                dt = 0.001 + (2e-4 if kind == "index-steep" else 4e-6) * idx
            else:
                dt = cost(i + 1) - cost(i)
            time.sleep(max(0.0, dt * factor))
            if kind in MEMORY_PER_EXAMPLE:
                held.append(b"\x01" * MEMORY_PER_EXAMPLE[kind])
            rec = {"id": str(ex["id"]), "score": (i % 7) / 7, "length": len(json.dumps(ex))}
            if kind == "at-end":
                pending.append(rec)
            else:
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
        for rec in pending:
            fh.write(json.dumps(rec) + "\n")
    print(f"workload {kind}: {len(examples)} examples (pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
