"""Run every fault case and print a markdown table: case | what the tool said | exit code.

usage: python -m tests.faults.table [-j JOBS] [CASE_ID ...]

"What the tool said" is the first ``scaleup-ci: error:`` line on stderr (or, for a run that did
not fail, the report's status and reason). The last column says whether every assertion of the
case held (``ok``), or what failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.faults.cases import CASES, Case, check_case, cleanup, run_case


def _one(case: Case, base: Path) -> tuple[str, str, str, str]:
    if case.needs is not None:
        why = case.needs()
        if why:
            return case.id, f"(skipped: {why})", "–", "skipped"
    o = run_case(case, base / case.id)
    try:
        check_case(o)
        verdict = "ok"
    except AssertionError as exc:
        verdict = "FAIL: " + str(exc).splitlines()[0][:120]
    finally:
        cleanup(o)
    said = o.said.replace("|", "\\|").replace("\n", " ")
    if len(said) > 220:
        said = said[:217] + "…"
    return case.id, said, str(o.code), verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("ids", nargs="*")
    ns = ap.parse_args(argv)
    cases = [c for c in CASES if not ns.ids or c.id in ns.ids]
    with tempfile.TemporaryDirectory(prefix="scaleup-faults-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, ns.jobs)) as pool:
        rows = list(pool.map(lambda c: _one(c, Path(tmp)), cases))
    print("| case | what the tool said | exit code | checks |")
    print("|---|---|---|---|")
    for cid, said, code, verdict in rows:
        print(f"| {cid} | {said} | {code} | {verdict} |")
    failed = [r for r in rows if r[3].startswith("FAIL")]
    print(f"\n{len(rows)} cases, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
