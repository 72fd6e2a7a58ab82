"""The planner through the real CLI: progressive max, fail fast, cost drift, memory cap."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema

from .conftest import SCHEMA, run_cli, script_cmd, write_dataset

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "benchmarks" / "planner" / "workload.py"


def _workload(kind: str) -> str:
    return f"{sys.executable} {WORKLOAD} {kind} {{input}} {{output}}"


def test_progressive_max_keeps_every_valid_record_and_packs_the_budget(tmp_path: Path) -> None:
    """Incremental JSONL: max gets the whole dataset, is stopped in time, keeps the valid prefix
    (partial, killed_by deadline, a validated outcome), uses >= 70% of the time left, and the tool
    ends within the budget."""
    data = write_dataset(tmp_path / "data.jsonl", 5000)
    r = run_cli(tmp_path, "run", "--command",
                script_cmd("eval_script.py", "{input}", "{output}", "--sleep", "0.01"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "20s")
    assert r.code == 0, r.stdout + r.stderr
    assert r.elapsed <= 20.5
    rep = r.report
    assert rep["elapsed_seconds"] <= 20
    mx = r.stage("max")
    assert mx["partial"] is True and mx["killed_by"] == "deadline" and mx["valid"] is True
    assert mx["n"] == 5000 and 0 < mx["records"] < 5000
    assert mx["wall_seconds"] >= 0.7 * mx["remaining_at_start"]
    # Its prediction is for the n it was given (the whole dataset), which does not fit.
    assert mx["predicted_seconds"] > mx["remaining_at_start"]
    assert abs(mx["predicted_seconds"] - rep["plan"]["predicted_full_seconds"]) < 0.01 * (
        mx["predicted_seconds"])
    final = (r.out_dir / "final" / "output.jsonl").read_bytes()
    assert final.endswith(b"\n")
    lines = final.splitlines()
    assert len(lines) == mx["records"] == rep["final"]["records"]
    schema = json.loads(SCHEMA.read_text())
    for line in lines:
        jsonschema.validate(json.loads(line), schema)
    # Every complete record the script wrote before the stop is in final/.
    written = Path(mx["output_path"]).read_bytes()
    complete = written[: written.rfind(b"\n") + 1]
    assert complete == final


def test_progressive_off_plans_a_max_that_finishes(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", 5000)
    r = run_cli(tmp_path, "run", "--command",
                script_cmd("eval_script.py", "{input}", "{output}", "--sleep", "0.01"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "20s",
                "--progressive", "off")
    assert r.code == 0, r.stdout + r.stderr
    mx = r.stage("max")
    assert mx["partial"] is False and mx["killed_by"] is None
    assert mx["n"] == mx["records"] < 5000
    assert r.report["elapsed_seconds"] <= 20


def test_fail_fast_stops_the_stage_at_the_first_invalid_record(tmp_path: Path) -> None:
    """The 50 stage writes an invalid 4th record; the stage stops there, not after 50 sleeps."""
    data = write_dataset(tmp_path / "data.jsonl", 400)
    r = run_cli(tmp_path, "run", "--command",
                script_cmd("eval_script.py", "{input}", "{output}", "--sleep", "0.1",
                           "--invalid-at", "50"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "60s")
    assert r.code == 1, r.stdout + r.stderr
    st = r.stage("50")
    assert st["killed_by"] == "invalid-output" and st["fail_fast"] is True
    assert st["wall_seconds"] < 3.0  # 50 x 0.1 s would be 5 s
    assert "first invalid record" in r.report["reason"]


def test_cost_rising_with_the_index_warns_and_suggests_random_sampling(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", 1000)
    r = run_cli(tmp_path, "run", "--command", _workload("index-steep"), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "25s", "--progressive", "off")
    assert r.code == 0, r.stdout + r.stderr
    warns = " ".join(r.report["warnings"])
    assert "rises with the position" in warns and "sample: random" in warns


def test_memory_growth_caps_max_before_the_memory_limit(tmp_path: Path) -> None:
    """5 MB per example under a 200 MiB limit: the 50 stage would not fit, so scaling stops at
    the memory cap, with the reason in the report; nothing is killed by the memory limit."""
    data = write_dataset(tmp_path / "data.jsonl", 2000)
    r = run_cli(tmp_path, "run", "--command", _workload("memory"), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "30s", "--memory-limit", "200MiB")
    assert r.code == 0, r.stdout + r.stderr
    rep = r.report
    assert all(s["killed_by"] != "memory" for s in rep["stages"])
    assert "50" not in [s["name"] for s in rep["stages"] if not s.get("skipped")]
    assert rep["plan"]["memory_capped"] is True
    assert "memory" in rep["reason"]
    mx = r.stage("max")
    assert 10 < mx["n"] <= 40 and mx["peak_rss_bytes"] < 200 * 2**20
