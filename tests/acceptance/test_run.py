"""The real CLI on real scripts: success, failures, limits, formats."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from scaleup_ci.report import load_report_schema

from .conftest import SCHEMA, python_cmd, run_cli, script_cmd, write_dataset


def _eval(*extra: str) -> str:
    return script_cmd("eval_script.py", "{input}", "{output}", *extra)


def test_success_runs_every_stage_and_writes_a_valid_report(tmp_path: Path, dataset: Path) -> None:
    """A working script over 400 examples runs mini..200 and max, exits 0, and leaves every file."""
    r = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(dataset),
                "--schema", str(SCHEMA), "--time-budget", "60s")
    assert r.code == 0, r.stdout + r.stderr
    rep = r.report
    jsonschema.validate(rep, load_report_schema())
    assert rep["status"] == "completed"
    names = [s["name"] for s in rep["stages"]]
    assert names == ["mini", "10", "50", "100", "200", "max"]
    assert rep["stages"][-1]["n"] == 400
    for s in rep["stages"]:
        d = Path(s["stage_dir"])
        assert (d / "stdout.log").exists() and (d / "stderr.log").exists()
        assert (d / "output.jsonl").exists()
    final = r.out_dir / "final" / "output.jsonl"
    assert len(final.read_text().splitlines()) == 400
    assert (r.out_dir / "summary.md").read_text().startswith("## scaleup-ci")
    assert rep["elapsed_seconds"] <= 60


def test_crash_at_stage_50_exits_1_and_keeps_earlier_stages(tmp_path: Path, dataset: Path) -> None:
    """A script that fails at 50 gives exit 1, names the stage, and leaves stage 10's output intact."""
    r = run_cli(tmp_path, "run", "--command", _eval("--crash-at", "50"), "--full-file",
                str(dataset), "--schema", str(SCHEMA), "--time-budget", "60s")
    assert r.code == 1
    assert "stage 50" in r.stderr
    rep = r.report
    assert rep["status"] == "failed"
    assert r.stage("50")["exit_code"] == 1
    assert len(Path(r.stage("10")["output_path"]).read_text().splitlines()) == 10
    final = json.loads((r.out_dir / "final" / "stage.json").read_text())
    assert final["stage"] == "10"
    assert "KeyError" in (Path(r.stage("50")["stderr_path"]).read_text())


def test_invalid_output_at_stage_10_names_the_record(tmp_path: Path, dataset: Path) -> None:
    """Invalid output at stage 10 exits 1 and names stage 10, record 3 and its JSON path."""
    r = run_cli(tmp_path, "run", "--command", _eval("--invalid-at", "10"), "--full-file",
                str(dataset), "--schema", str(SCHEMA), "--time-budget", "60s")
    assert r.code == 1
    assert "stage 10" in r.stderr and "record 3" in r.stderr and "$.score" in r.stderr
    err = r.stage("10")["errors"][0]
    assert err["index"] == 3 and err["path"] == "$.score"
    assert r.stage("mini")["valid"] is True


def test_memory_hog_is_stopped_and_classified(tmp_path: Path, dataset: Path) -> None:
    """A script allocating past a 200 MiB limit is stopped with killed_by memory and exit 3."""
    r = run_cli(tmp_path, "run", "--command", script_cmd("hog.py"), "--full-file", str(dataset),
                "--memory-limit", "200MiB", "--time-budget", "60s")
    assert r.code == 3, r.stdout + r.stderr
    st = r.stage("mini")
    assert st["killed_by"] == "memory"
    assert st["peak_rss_bytes"] > 100 * 2**20
    assert r.report["limits"]["enforcement"]["memory"]


def test_hang_is_stopped_at_the_deadline(tmp_path: Path, dataset: Path) -> None:
    """A script that hangs at stage 10 is stopped within the budget with killed_by deadline."""
    r = run_cli(tmp_path, "run", "--command", _eval("--hang-at", "10"), "--full-file",
                str(dataset), "--schema", str(SCHEMA), "--time-budget", "12s")
    assert r.code == 3, r.stdout + r.stderr
    assert r.stage("10")["killed_by"] == "deadline"
    assert r.elapsed < 12 + 2
    assert r.report["elapsed_seconds"] <= 12


def test_small_dataset_collapses_into_one_whole_stage(tmp_path: Path) -> None:
    """With 120 examples, the 200 stage collapses into one max stage over the whole dataset."""
    data = write_dataset(tmp_path / "small.jsonl", 120)
    r = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "60s")
    assert r.code == 0, r.stdout + r.stderr
    names = [(s["name"], s["n"]) for s in r.report["stages"]]
    assert names == [("mini", 3), ("10", 10), ("50", 50), ("100", 100), ("max", 120)]
    assert r.report["status"] == "completed"


@pytest.mark.parametrize("fmt", ["jsonl", "json-array", "json-object", "csv", "jsonl.gz",
                                 "json-array.gz", "csv.gz"])
def test_each_dataset_format_runs(tmp_path: Path, fmt: str) -> None:
    """Every supported dataset format is cut into stage files the script can read."""
    ext = {"jsonl": ".jsonl", "json-array": ".json", "json-object": ".json", "csv": ".csv"}
    kind = fmt.removesuffix(".gz")
    name = "data" + ext[kind] + (".gz" if fmt.endswith(".gz") else "")
    data = write_dataset(tmp_path / name, 60, fmt)
    extra = ["--examples-key", "/data"] if kind == "json-object" else []
    r = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "60s", "--stages", "mini,10,50,max",
                *extra)
    assert r.code == 0, r.stdout + r.stderr
    assert r.report["stages"][-1]["n"] == 60
    assert r.report["stages"][-1]["records"] == 60


def test_limit_style_script_gets_the_full_file(tmp_path: Path, dataset: Path) -> None:
    """A --limit style script receives {full} and {n} and produces one record per example."""
    cmd = script_cmd("limit_eval.py", "--data", "{full}", "--limit", "{n}", "--out", "{output}")
    r = run_cli(tmp_path, "run", "--command", cmd, "--full-file", str(dataset),
                "--schema", str(SCHEMA), "--time-budget", "60s")
    assert r.code == 0, r.stdout + r.stderr
    assert r.stage("50")["records"] == 50


def test_budget_too_small_for_everything_stops_early_within_budget(tmp_path: Path) -> None:
    """With 0.05 s per example and a 20 s budget, the run stops early and ends within the budget."""
    data = write_dataset(tmp_path / "big.jsonl", 3000)
    r = run_cli(tmp_path, "run", "--command", _eval("--sleep", "0.05"), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "20s")
    assert r.code == 0, r.stdout + r.stderr
    rep = r.report
    assert rep["status"] == "stopped-early"
    assert rep["elapsed_seconds"] <= 20
    assert r.elapsed < 21
    lines = (r.out_dir / "final" / "output.jsonl").read_text().splitlines()
    assert len(lines) >= 100
    assert rep["plan"]["reason"]


def test_bad_config_exits_2_with_did_you_mean(tmp_path: Path, dataset: Path) -> None:
    """An unknown key in scaleup.yml exits 2 and suggests the right name."""
    (tmp_path / "scaleup.yml").write_text(
        f"command: echo\nfull-file: {dataset}\ntime-budgt: 30s\n")
    r = run_cli(tmp_path, "run")
    assert r.code == 2
    assert "time-budget" in r.stderr
    assert "Traceback" not in r.stderr


def test_final_pass_reruns_and_compares(tmp_path: Path) -> None:
    """final-pass reruns the sequence up to the final count and compares outputs and timings."""
    data = write_dataset(tmp_path / "d.jsonl", 120)
    r = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "60s", "--final-pass")
    assert r.code == 0, r.stdout + r.stderr
    rep = r.report
    passes = {s.get("pass_no") for s in rep["stages"]}
    assert passes == {1, 2}
    comps = rep["final_pass"]["comparisons"]
    assert {c["stage"] for c in comps} >= {"mini", "10", "50", "100", "max"}
    assert all(c["differing_records"] == 0 for c in comps)
    assert (r.out_dir / "stages" / "max-pass2" / "output.jsonl").exists()


def test_final_pass_reports_nondeterministic_records(tmp_path: Path) -> None:
    """Records that differ between the two passes are counted and warned about."""
    data = write_dataset(tmp_path / "d.jsonl", 60)
    script = tmp_path / "noisy.py"
    script.write_text(
        "import json, sys, random\n"
        "rows = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]\n"
        "with open(sys.argv[2], 'w') as out:\n"
        "    for r in rows:\n"
        "        out.write(json.dumps({'id': r['id'], 'score': random.random(), 'length': 1}) + '\\n')\n")
    cmd = python_cmd(script, "{input}", "{output}")
    r = run_cli(tmp_path, "run", "--command", cmd, "--full-file", str(data), "--schema",
                str(SCHEMA), "--time-budget", "60s", "--final-pass", "--stages", "10,max")
    assert r.code == 0, r.stdout + r.stderr
    comps = {c["stage"]: c for c in r.report["final_pass"]["comparisons"]}
    assert comps["max"]["differing_records"] == 60
    assert any("not deterministic" in w for w in r.report["warnings"])


def test_mock_guard_warns_and_can_fail(tmp_path: Path, dataset: Path) -> None:
    """A command naming a mock script warns by default and exits 2 with mock-guard: fail."""
    mock = tmp_path / "mock_eval.py"
    mock.write_text((Path(__file__).parent / "scripts" / "eval_script.py").read_text())
    cmd = python_cmd(mock, "{input}", "{output}")
    r = run_cli(tmp_path, "run", "--command", cmd, "--full-file", str(dataset), "--schema",
                str(SCHEMA), "--time-budget", "60s", "--stages", "mini,10")
    assert r.code == 0, r.stdout + r.stderr
    assert any("mock" in w for w in r.report["warnings"])
    r = run_cli(tmp_path, "run", "--command", cmd, "--full-file", str(dataset), "--schema",
                str(SCHEMA), "--time-budget", "60s", "--stages", "mini,10", "--mock-guard", "fail")
    assert r.code == 2
    assert "mock" in r.stderr


def test_identical_records_are_flagged(tmp_path: Path) -> None:
    """Ten or more identical output records raise the mock warning."""
    data = write_dataset(tmp_path / "d.jsonl", 40)
    script = tmp_path / "same.py"
    script.write_text(
        "import json, sys\n"
        "n = sum(1 for x in open(sys.argv[1]) if x.strip())\n"
        "with open(sys.argv[2], 'w') as out:\n"
        "    for _ in range(n):\n"
        "        out.write(json.dumps({'id': 'x', 'score': 0.5, 'length': 1}) + '\\n')\n")
    cmd = python_cmd(script, "{input}", "{output}")
    r = run_cli(tmp_path, "run", "--command", cmd, "--full-file", str(data), "--schema",
                str(SCHEMA), "--time-budget", "60s", "--stages", "10,max")
    assert r.code == 0, r.stdout + r.stderr
    assert any("identical" in w for w in r.report["warnings"])
    # The run's warnings reach the console too, not only report.json and the summary.
    assert "scaleup-ci: warning: stage 10: all 10 output records are identical" in r.stderr


def test_incremental_output_after_a_slow_start_is_detected(tmp_path: Path) -> None:
    """A script with a 2 s start-up that then writes records one by one gets a progressive max
    that uses most of the time left and keeps a valid prefix."""
    data = write_dataset(tmp_path / "big.jsonl", 20000)
    r = run_cli(tmp_path, "run", "--command", _eval("--startup", "2", "--sleep", "0.002"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "25s")
    assert r.code == 0, r.stdout + r.stderr
    mx = r.stage("max")
    assert mx["partial"] is True and mx["killed_by"] == "deadline"
    assert mx["wall_seconds"] >= 0.7 * mx["remaining_at_start"]
    assert r.report["elapsed_seconds"] <= 25
    lines = (r.out_dir / "final" / "output.jsonl").read_text().splitlines()
    assert len(lines) == mx["records"] > 200


def test_output_written_at_the_end_before_a_teardown_is_not_taken_for_incremental(
        tmp_path: Path) -> None:
    """A script that writes all its records at the end and then spends 1.5 s tearing down gets a
    planned max (a progressive max would be stopped before it wrote anything), which finishes."""
    data = write_dataset(tmp_path / "big.jsonl", 20000)
    r = run_cli(tmp_path, "run", "--command",
                _eval("--at-end", "--teardown", "1.5", "--sleep", "0.002"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "30s")
    assert r.code == 0, r.stdout + r.stderr
    assert not any(s.get("incremental") for s in r.report["stages"])
    mx = r.stage("max")
    assert mx["partial"] is False and mx["killed_by"] is None and mx["n"] < 20000
    assert r.report["elapsed_seconds"] <= 30
    lines = (r.out_dir / "final" / "output.jsonl").read_text().splitlines()
    assert len(lines) == mx["records"] == mx["n"]


def test_a_planned_max_stopped_at_the_deadline_exits_3_and_keeps_its_prefix(
        tmp_path: Path) -> None:
    """With progressive max off, a max that cannot finish (the script hangs at example 1,300,
    just past the 1,250 stage) is stopped at its limit: exit 3, the reason names the stage and
    the records kept, the hint says what to change, and final/ holds the validated prefix."""
    data = write_dataset(tmp_path / "big.jsonl", 20000)
    r = run_cli(tmp_path, "run", "--command", _eval("--sleep", "0.002", "--hang-from", "1300"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "25s",
                "--progressive", "off")
    assert r.code == 3, r.stdout + r.stderr
    mx = r.stage("max")
    assert mx["n"] > 1300 and mx["killed_by"] == "deadline" and mx["records"] == 1300
    assert r.report["status"] == "failed"
    assert "stage max" in r.report["reason"] and "1,300 validated records" in r.report["reason"]
    assert "sample: random" in r.report["error"]["hint"]
    assert r.report["elapsed_seconds"] <= 25
    lines = (r.out_dir / "final" / "output.jsonl").read_text().splitlines()
    assert len(lines) == 1300


def test_a_long_start_up_gets_its_next_stage_on_trial(tmp_path: Path) -> None:
    """A 6 s start-up with a 30 s budget: from the mini stage alone, stage 10 looks like 20 s
    (all of the 6 s taken as per-example cost). It runs on trial with a limit, shows the time
    is start-up, and max grows far past 10 examples instead of stopping at a handful."""
    data = write_dataset(tmp_path / "big.jsonl", 20000)
    r = run_cli(tmp_path, "run", "--command", _eval("--startup", "6", "--sleep", "0.002",
                                                    "--at-end"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "30s")
    assert r.code == 0, r.stdout + r.stderr
    ten = r.stage("10")
    assert any("on trial" in note for note in ten["notes"]) and ten["killed_by"] is None
    assert r.stage("max")["n"] >= 50
    assert r.report["elapsed_seconds"] <= 30


def test_final_pass_reruns_a_progressive_max_progressively(tmp_path: Path) -> None:
    """With final-pass, a max that was progressive in the first pass is progressive again in the
    second: stopped at the deadline with its validated prefix, exit 0 (not a limit failure)."""
    data = write_dataset(tmp_path / "big.jsonl", 20000)
    r = run_cli(tmp_path, "run", "--command", _eval("--sleep", "0.002"), "--full-file", str(data),
                "--schema", str(SCHEMA), "--time-budget", "30s", "--final-pass")
    assert r.code == 0, r.stdout + r.stderr
    maxes = [s for s in r.report["stages"] if s["name"] == "max"]
    assert [s["pass_no"] for s in maxes] == [1, 2]
    assert all(s["partial"] and s["killed_by"] == "deadline" for s in maxes)
    assert r.report["elapsed_seconds"] <= 30
