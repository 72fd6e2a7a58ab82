"""A small real script for the act injection test: record the argv it was given.

Usage: echo_args.py INPUT OUTPUT FULL [EXTRA...]

Writes its argv (after the script name) as JSON to `seen-args-<stage>.json` in the current
directory and prints it, then writes one valid {"id", "words"} record per input example, so
that the run itself succeeds. The test checks that shell syntax in EXTRA and FULL arrived as
literal text and that nothing was executed.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print("usage: echo_args.py INPUT OUTPUT FULL [EXTRA...]", file=sys.stderr)
        return 2
    src, dst, full = sys.argv[1:4]
    stage = os.environ.get("SCALEUP_STAGE", "none")
    seen = {"argv": sys.argv[1:], "full_exists": os.path.exists(full)}
    with open(f"seen-args-{stage}.json", "w", encoding="utf-8") as fh:
        json.dump(seen, fh)
    print("echo_args:", json.dumps(sys.argv[1:]))
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            if line.strip():
                example = json.loads(line)
                fout.write(json.dumps({"id": example["id"], "words": len(example["text"].split())}))
                fout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
