"""A small real script for the act end-to-end test: count the words of each example.

Usage: count_words.py INPUT OUTPUT [--fail-at STAGE] [--delay SECONDS]

Reads JSONL examples {"id", "text"} and writes one JSONL record {"id", "words"} per example,
flushing each line so a stopped run keeps its prefix. With --fail-at, exits 1 when the
SCALEUP_STAGE environment variable names that stage (the failing case of the test).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--fail-at", default=None)
    parser.add_argument("--delay", type=float, default=0.01)
    args = parser.parse_args()
    stage = os.environ.get("SCALEUP_STAGE", "")
    if args.fail_at is not None and stage == args.fail_at:
        print(f"count_words: failing on purpose at stage {stage}", file=sys.stderr)
        return 1
    count = 0
    with open(args.input, encoding="utf-8") as src, open(args.output, "w", encoding="utf-8") as dst:
        for line in src:
            if not line.strip():
                continue
            example = json.loads(line)
            time.sleep(args.delay)
            dst.write(json.dumps({"id": example["id"], "words": len(example["text"].split())}))
            dst.write("\n")
            dst.flush()
            count += 1
    print(f"count_words: stage {stage or '?'} wrote {count} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
