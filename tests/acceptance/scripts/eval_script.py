"""A small real evaluation script used by the acceptance tests.

usage: eval_script.py INPUT OUTPUT [--sleep S] [--crash-at N] [--invalid-at N] [--hang-at N]
                                   [--startup S] [--at-end] [--teardown S] [--hang-from I]

Reads JSONL, JSON-array or CSV input, "scores" each example (length of its text), and appends one
JSONL record per example to OUTPUT, flushing each one. Behaviour switches make it fail in the
ways the tests need, at the stage whose size is N.
"""

import argparse
import csv
import json
import os
import sys
import time


def load(path):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith(".csv"):
        return list(csv.DictReader(text.splitlines()))
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), list):
        return next(iter(doc.values()))
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--startup", type=float, default=0.0)
    ap.add_argument("--crash-at", type=int, default=-1)
    ap.add_argument("--invalid-at", type=int, default=-1)
    ap.add_argument("--hang-at", type=int, default=-1)
    ap.add_argument("--at-end", action="store_true")
    ap.add_argument("--teardown", type=float, default=0.0, help="seconds to sleep after writing")
    ap.add_argument("--hang-from", type=int, default=-1,
                    help="hang at this example index, in any stage that reaches it")
    args = ap.parse_args()
    examples = load(args.input)
    n = len(examples)
    time.sleep(args.startup)
    print(f"eval_script: {n} examples from {args.input}", flush=True)
    if n == args.crash_at:
        print("eval_script: simulated failure: KeyError 'label' in example 7", file=sys.stderr)
        sys.exit(1)
    if n == args.hang_at:
        print("eval_script: hanging", flush=True)
        while True:
            time.sleep(1)
    records = []
    with open(args.output, "a", encoding="utf-8") as out:
        for i, ex in enumerate(examples):
            time.sleep(args.sleep)
            while i == args.hang_from:
                time.sleep(1)
            text = json.dumps(ex, sort_keys=True)
            rec = {"id": str(ex.get("id", i)) if isinstance(ex, dict) else str(i),
                   "score": len(text) % 7 / 7, "length": len(text)}
            if n == args.invalid_at and i == 3:
                rec["score"] = "high"
            if args.at_end:
                records.append(rec)
            else:
                out.write(json.dumps(rec) + "\n")
                out.flush()
        for rec in records:
            out.write(json.dumps(rec) + "\n")
    time.sleep(args.teardown)
    print(f"eval_script: wrote {n} records; deadline {os.environ.get('SCALEUP_DEADLINE')}")


if __name__ == "__main__":
    main()
