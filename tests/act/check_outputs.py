"""Assertions run inside the act workflow, right after the `uses: ./` step.

Reads the step's outputs from OUT_* variables and checks them against report.json and
summary.md in the out-dir. Then, when RESULTS_DIR is set (tests/act/test_act.py sets it
through `act --env`), copies the out-dir and the outputs there so that pytest can look too.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

OUTPUTS = {
    "status": "OUT_STATUS",
    "max-n": "OUT_MAX_N",
    "records": "OUT_RECORDS",
    "per-example-seconds": "OUT_PER_EXAMPLE_SECONDS",
    "predicted-full-seconds": "OUT_PREDICTED_FULL_SECONDS",
    "report-path": "OUT_REPORT_PATH",
    "summary-path": "OUT_SUMMARY_PATH",
    "output-path": "OUT_OUTPUT_PATH",
}


def same_number(output: str, value: object) -> bool:
    if value is None or isinstance(value, bool):
        return output == ""
    if not isinstance(value, (int, float)):
        return False
    return output != "" and math.isclose(float(output), float(value), rel_tol=1e-9)


def main() -> int:
    outputs = {name: os.environ.get(var, "") for name, var in OUTPUTS.items()}
    print("step outputs:", json.dumps(outputs, indent=2))
    problems: list[str] = []
    report_path = Path(outputs["report-path"])
    if not outputs["report-path"] or not report_path.is_file():
        print(f"report-path {outputs['report-path']!r} is not a file", file=sys.stderr)
        return 1
    report = json.loads(report_path.read_text(encoding="utf-8"))
    plan = report.get("plan") or {}
    model = report.get("model") or {}
    expected = os.environ.get("EXPECT_STATUS", "").split("|")
    if outputs["status"] != report.get("status"):
        problems.append(f"status output {outputs['status']!r} != report {report.get('status')!r}")
    if outputs["status"] not in expected:
        problems.append(f"status {outputs['status']!r} not in {expected}")
    if not same_number(outputs["max-n"], plan.get("max_n")):
        problems.append(f"max-n {outputs['max-n']!r} != plan.max_n {plan.get('max_n')!r}")
    if not same_number(outputs["records"], (report.get("final") or {}).get("records")):
        problems.append(f"records {outputs['records']!r} != final.records")
    if not same_number(outputs["per-example-seconds"], model.get("per_example_seconds")):
        problems.append("per-example-seconds does not match model.per_example_seconds")
    if not same_number(outputs["predicted-full-seconds"], plan.get("predicted_full_seconds")):
        problems.append("predicted-full-seconds does not match plan.predicted_full_seconds")
    summary = Path(outputs["summary-path"])
    if not summary.is_file() or not summary.read_text(encoding="utf-8").strip():
        problems.append(f"summary-path {summary} is missing or empty")
    if os.environ.get("EXPECT_OUTPUT") == "true" and not Path(outputs["output-path"]).is_file():
        problems.append(f"output-path {outputs['output-path']!r} is not a file")
    results = os.environ.get("RESULTS_DIR")
    if results:
        dest = Path(results) / os.environ.get("GITHUB_JOB", "job")
        shutil.copytree(report_path.parent, dest / "out", dirs_exist_ok=True)
        (dest / "outputs.json").write_text(json.dumps(outputs, indent=2), encoding="utf-8")
    for problem in problems:
        print(f"::error title=act e2e::{problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
