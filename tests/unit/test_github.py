"""Tests for scaleup_ci.github and for the action.yml contract."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaleup_ci import github
from scaleup_ci.github import (
    SUMMARY_LIMIT_BYTES,
    GitHub,
    artifact_name,
    escape_data,
    escape_property,
    outputs_from_report,
)

ROOT = Path(__file__).resolve().parents[2]
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")


def parse_output_file(text: str) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the runner does (name=value and name<<DELIM blocks)."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body: list[str] = []
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            result[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            result[name] = value
    return result


def make_gh(tmp_path: Path) -> tuple[GitHub, io.StringIO]:
    summary = tmp_path / "summary"
    output = tmp_path / "output"
    summary.touch()
    output.touch()
    stream = io.StringIO()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
    }
    gh = GitHub.from_env(env, stream=stream)
    assert gh is not None
    return gh, stream


# -- from_env ------------------------------------------------------------------------------


def test_from_env_is_none_outside_github_actions() -> None:
    """Without GITHUB_ACTIONS=true there is no GitHub writer at all."""
    assert GitHub.from_env({}) is None
    assert GitHub.from_env({"GITHUB_ACTIONS": "false", "GITHUB_OUTPUT": "/x"}) is None


def test_missing_file_variables_make_writes_no_ops(tmp_path: Path) -> None:
    """With GITHUB_ACTIONS but no GITHUB_OUTPUT/GITHUB_STEP_SUMMARY nothing is written anywhere."""
    gh = GitHub.from_env({"GITHUB_ACTIONS": "true"}, stream=io.StringIO())
    assert gh is not None
    before = sorted(tmp_path.iterdir())
    gh.set_outputs({"status": "completed"})
    text = gh.write_summary(lambda tail: "# hello\n")
    assert text == "# hello\n"
    assert sorted(tmp_path.iterdir()) == before


# -- outputs -------------------------------------------------------------------------------


def test_single_line_outputs_use_name_equals_value(tmp_path: Path) -> None:
    """Typed single-line values are written as name=value, with None as '' and bools lowercase."""
    gh, _ = make_gh(tmp_path)
    gh.set_outputs({"status": "completed", "max-n": 120, "ok": True, "none": None, "x": 0.25})
    text = (tmp_path / "output").read_text()
    assert text == "status=completed\nmax-n=120\nok=true\nnone=\nx=0.25\n"


def test_multiline_output_uses_random_delimiter_that_cannot_be_forged(tmp_path: Path) -> None:
    """A value containing a fake delimiter line cannot end the block early or inject outputs."""
    gh, _ = make_gh(tmp_path)
    evil = "line1\nghadelimiter_forged\nstatus=completed\nEOF\n"
    gh.set_outputs({"log": evil, "status": "failed"})
    text = (tmp_path / "output").read_text()
    header = text.split("\n", 1)[0]
    assert re.fullmatch(r"log<<ghadelimiter_[0-9a-f-]{36}", header)
    assert parse_output_file(text) == {"log": evil, "status": "failed"}


def test_delimiter_is_redrawn_when_the_value_contains_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the random delimiter happens to occur in the value, a new one is drawn."""
    ids = iter(["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"])
    monkeypatch.setattr(github.uuid, "uuid4", lambda: next(ids))
    value = "a\nghadelimiter_11111111-1111-1111-1111-111111111111\nb"
    text = github.format_outputs({"v": value})
    assert text.startswith("v<<ghadelimiter_22222222-")
    assert parse_output_file(text) == {"v": value}


def test_invalid_output_names_are_rejected(tmp_path: Path) -> None:
    """Output names outside [A-Za-z0-9_-] raise instead of writing a malformed line."""
    gh, _ = make_gh(tmp_path)
    with pytest.raises(ValueError, match="invalid output name"):
        gh.set_outputs({"bad name": "x"})
    with pytest.raises(ValueError):
        gh.set_outputs({"a=b": "x"})


# -- summary -------------------------------------------------------------------------------


def _huge_render(tail: int | None) -> str:
    """A renderer whose default tails are 5 MB of hostile text (escaping is its own job)."""
    log = ("<script>alert(1)</script> ](javascript:alert(1)) " * 110_000)[-(tail or 5_000_000) :]
    if tail == 0:
        log = ""
    table = "| stage | n |\n|---|---|\n| mini | 5 |\n"
    return f"# scaleup-ci\n\n{table}\n<details>\n\n{log}\n</details>\n"


def test_summary_stays_under_one_mib_and_notes_the_cut(tmp_path: Path) -> None:
    """5 MB of log tails are cut so the step summary stays under 1 MiB, and the text says so."""
    gh, _ = make_gh(tmp_path)
    written = gh.write_summary(_huge_render)
    size = (tmp_path / "summary").stat().st_size
    assert size < SUMMARY_LIMIT_BYTES
    assert size == len(written.encode())
    assert "Log tails were cut" in written
    assert "| mini | 5 |" in written


def test_summary_default_tails_are_kept_when_small(tmp_path: Path) -> None:
    """A summary that fits is written exactly as rendered with the default tails, no note."""
    gh, _ = make_gh(tmp_path)
    calls: list[int | None] = []

    def render(tail: int | None) -> str:
        calls.append(tail)
        return "# ok\n"

    assert gh.write_summary(render) == "# ok\n"
    assert calls == [None]
    assert (tmp_path / "summary").read_text() == "# ok\n"


def test_summary_is_hard_truncated_with_a_note_when_even_no_tails_is_too_big(
    tmp_path: Path,
) -> None:
    """If the summary is too big even without tails, it is truncated and says so."""
    gh, _ = make_gh(tmp_path)
    written = gh.write_summary(lambda tail: "| row | é |\n" * 200_000)
    assert len(written.encode()) < SUMMARY_LIMIT_BYTES
    assert "summary was truncated" in written


def test_summary_appends_to_existing_content_within_the_limit(tmp_path: Path) -> None:
    """Existing step-summary content counts against the 1 MiB limit and is kept."""
    gh, _ = make_gh(tmp_path)
    (tmp_path / "summary").write_text("x" * 600_000)
    gh.write_summary(_huge_render)
    text = (tmp_path / "summary").read_text()
    assert text.startswith("x" * 600_000)
    assert len(text.encode()) < SUMMARY_LIMIT_BYTES


# -- workflow commands ---------------------------------------------------------------------


def test_group_prints_markers_around_the_block_with_escaped_title(tmp_path: Path) -> None:
    """group() prints ::group:: and ::endgroup:: (even on error) and escapes %, CR and LF."""
    gh, stream = make_gh(tmp_path)
    with pytest.raises(RuntimeError), gh.group("stage 10%\r\n::error::x"):
        print("inside", file=stream)
        raise RuntimeError
    assert stream.getvalue() == "::group::stage 10%25%0D%0A::error::x\ninside\n::endgroup::\n"


def test_annotations_are_capped_at_ten_per_kind_with_a_summary(tmp_path: Path) -> None:
    """At most 10 errors are sent; the 10th says how many more there are."""
    gh, stream = make_gh(tmp_path)
    errors = [(f"stage {i}", f"failed {i}") for i in range(25)]
    gh.annotate(errors, [("memory", "close to the limit")])
    lines = stream.getvalue().splitlines()
    error_lines = [line for line in lines if line.startswith("::error ")]
    assert len(error_lines) == 10
    assert error_lines[0] == "::error title=stage 0::failed 0"
    assert "and 16 more errors" in error_lines[-1]
    assert lines[-1] == "::warning title=memory::close to the limit"


def test_annotations_escape_properties_and_data(tmp_path: Path) -> None:
    """Titles escape ':' and ',' as properties; messages escape newlines and '%'."""
    gh, stream = make_gh(tmp_path)
    gh.annotate([("a:b,c", "100%\nnext ::warning::x")], [])
    assert stream.getvalue() == "::error title=a%3Ab%2Cc::100%25%0Anext ::warning::x\n"


def test_escape_helpers_follow_workflow_command_rules() -> None:
    """escape_data handles %, CR, LF; escape_property also ':' and ','."""
    assert escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"


# -- report mapping and artifact name ------------------------------------------------------


def test_outputs_from_report_maps_fields(tmp_path: Path) -> None:
    """status, max_n, per_example_seconds and predicted_full_seconds become action outputs."""
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "output.jsonl").write_text("{}\n")
    report: dict[str, Any] = {
        "status": "completed",
        "plan": {"max_n": 180, "predicted_full_seconds": 3600.5},
        "model": {"per_example_seconds": 0.02},
        "final": {"records": 1234},
    }
    out = outputs_from_report(report, tmp_path)
    assert out == {
        "status": "completed",
        "max-n": 180,
        "records": 1234,
        "per-example-seconds": 0.02,
        "predicted-full-seconds": 3600.5,
        "report-path": str(tmp_path / "report.json"),
        "summary-path": str(tmp_path / "summary.md"),
        "output-path": str(tmp_path / "final" / "output.jsonl"),
    }


def test_outputs_from_report_tolerates_missing_fields(tmp_path: Path) -> None:
    """A report without plan/model (e.g. a config error) still yields every output name."""
    out = outputs_from_report({"status": "failed", "plan": None, "model": "x"}, tmp_path)
    assert out["status"] == "failed"
    assert out["max-n"] is None and out["per-example-seconds"] is None
    assert out["output-path"] == ""
    assert github.format_outputs(out).startswith("status=failed\nmax-n=\n")


def test_artifact_name_is_unique_per_matrix_combination() -> None:
    """Different matrix values give different, upload-artifact-safe names for the same job."""
    a = artifact_name({"GITHUB_JOB": "eval", "SCALEUP_MATRIX": '{"py": "3.12", "os": "a/b"}'}, None)
    b = artifact_name({"GITHUB_JOB": "eval", "SCALEUP_MATRIX": '{"py": "3.13", "os": "a/b"}'}, None)
    assert a != b
    assert a.startswith("scaleup-ci-eval-")
    for name in (a, b):
        assert not set(name) & set('":<>|*?\\/')


def test_artifact_name_without_matrix_and_with_override() -> None:
    """No matrix gives scaleup-ci-<job>; an override wins but is still sanitized."""
    assert artifact_name({"GITHUB_JOB": "check", "SCALEUP_MATRIX": "null"}, None) == (
        "scaleup-ci-check"
    )
    assert artifact_name({"GITHUB_JOB": "check"}, "  my:run/1  ") == "my-run-1"


# -- action.yml contract -------------------------------------------------------------------


def _action() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_every_option_has_an_action_input_with_description_and_default() -> None:
    """Each option in options.schema.json is an action input with a description and default."""
    schema_path = ROOT / "scaleup_ci" / "data" / "options.schema.json"
    if not schema_path.exists():
        pytest.skip("options.schema.json not written yet")
    options = json.loads(schema_path.read_text(encoding="utf-8"))["properties"]
    inputs = _action()["inputs"]
    for name in options:
        assert name in inputs, f"action.yml lacks input {name!r}"
        assert inputs[name].get("description"), name
        assert "default" in inputs[name], name


def test_every_option_input_reaches_the_run_step_as_env() -> None:
    """Each option input is passed to the run step as SCALEUP_<NAME> through env:."""
    schema_path = ROOT / "scaleup_ci" / "data" / "options.schema.json"
    if not schema_path.exists():
        pytest.skip("options.schema.json not written yet")
    options = json.loads(schema_path.read_text(encoding="utf-8"))["properties"]
    run = next(s for s in _action()["runs"]["steps"] if s.get("id") == "run")
    for name in options:
        var = "SCALEUP_" + name.upper().replace("-", "_")
        assert run["env"].get(var) == f"${{{{ inputs.{name} }}}}", var


def test_all_action_inputs_have_description_and_default() -> None:
    """Action-only inputs too carry a description and a default."""
    for name, spec in _action()["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec, name


def test_no_input_expression_inside_run_scripts() -> None:
    """No `${{ inputs.` (or any expression) appears inside a run: script of the action."""
    for step in _action()["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")


def _uses(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "uses" and isinstance(v, str)]
        return found + [u for v in node.values() for u in _uses(v)]
    if isinstance(node, list):
        return [u for item in node for u in _uses(item)]
    return []


def test_third_party_actions_are_pinned_by_sha() -> None:
    """Every uses: in action.yml and the workflows is a local path or pinned to a 40-hex SHA."""
    files = [ROOT / "action.yml"]
    for folder in (".github/workflows", "example-workflows", "tests/act"):
        files += sorted((ROOT / folder).glob("*.yml"))
    checked = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        for ref in _uses(yaml.safe_load(text)):
            checked += 1
            if ref.startswith("./"):
                continue
            assert SHA_PIN.match(ref), f"{path.name}: {ref} is not pinned to a commit SHA"
            pin = re.search(rf"{re.escape(ref)} # v\d+\.\d+\.\d+", text)
            assert pin, f"{path.name}: {ref} lacks a '# vX.Y.Z' comment"
    assert checked > 0


def test_action_runs_the_cli_with_exec() -> None:
    """The entrypoint runs under exec so the runner's cancel signal reaches Python."""
    run = next(s for s in _action()["runs"]["steps"] if s.get("id") == "run")
    assert re.search(r'^\s*exec "\$VENV/bin/scaleup-ci" run', run["run"], re.MULTILINE)


def test_artifact_entry_point_writes_name_and_path_outputs(tmp_path: Path) -> None:
    """`python -m scaleup_ci.github artifact` writes name and the report's folder as outputs."""
    output = tmp_path / "output"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_JOB": "e2e",
        "SCALEUP_MATRIX": "null",
        "REPORT_PATH": str(tmp_path / "out" / "report.json"),
    }
    assert github.main(["artifact"], env) == 0
    assert parse_output_file(output.read_text()) == {
        "name": "scaleup-ci-e2e",
        "path": str(tmp_path / "out"),
    }


def test_artifact_name_falls_back_to_the_action_matrix_and_job_index() -> None:
    """ACTION_MATRIX is used when SCALEUP_MATRIX is unset; else the job index in a multi-job."""
    by_matrix = artifact_name({"GITHUB_JOB": "j", "ACTION_MATRIX": '{"x": "p"}'}, None)
    assert by_matrix.startswith("scaleup-ci-j-p-")
    env = {"GITHUB_JOB": "j", "ACTION_MATRIX": "null", "ACTION_JOB_TOTAL": "3"}
    assert artifact_name({**env, "ACTION_JOB_INDEX": "2"}, None) == "scaleup-ci-j-2"


HOSTILE_SCRIPT = r"""
import json, sys
src, dst = sys.argv[1], sys.argv[2]
chunk = "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>\n"
sys.stdout.write(chunk * (5_000_000 // len(chunk) + 1))
sys.stdout.flush()
with open(src) as fin, open(dst, "w") as fout:
    for line in fin:
        if line.strip():
            fout.write(json.dumps({"id": json.loads(line)["id"], "words": 1}) + "\n")
"""


@pytest.mark.slow
def test_real_run_with_hostile_5mb_log_keeps_step_summary_small_and_inert(tmp_path: Path) -> None:
    """Through the real CLI, a 5 MB log full of <script> and javascript: links yields a step
    summary under 1 MiB in which that text is inert (escaped by the renderer)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE_SCRIPT, encoding="utf-8")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": "a b"}) + "\n" for i in range(20)))
    summary, output = tmp_path / "step-summary.md", tmp_path / "github-output"
    summary.touch()
    output.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEUP_", "GITHUB_"))}
    env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(output))
    cmd = [
        sys.executable, "-m", "scaleup_ci", "run",
        "--command", f"{sys.executable} {script} {{input}} {{output}}",
        "--full-file", str(data), "--stages", "mini,10", "--time-budget", "60s",
        "--schema", str(ROOT / "tests" / "act" / "schema.json"),
        "--out-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = summary.read_text(encoding="utf-8")
    assert 0 < len(text.encode()) < SUMMARY_LIMIT_BYTES
    assert "<script>" not in text
    assert "<img" not in text
    # Markdown is not parsed inside an HTML <pre> block, so a link there is plain text.
    outside_pre = re.sub(r"<pre>.*?</pre>", "", text, flags=re.DOTALL)
    assert "](javascript:" not in outside_pre
    assert "Log tails were cut" in text or "truncated" in text or len(text) < 200_000
    assert parse_output_file(output.read_text())["status"] in ("completed", "stopped-early")


def test_summary_is_skipped_when_the_step_summary_is_already_full(tmp_path: Path) -> None:
    """If earlier writes left no room under 1 MiB, nothing more is appended."""
    gh, _ = make_gh(tmp_path)
    (tmp_path / "summary").write_text("x" * (SUMMARY_LIMIT_BYTES - 100))
    assert gh.write_summary(lambda tail: "# more\n") == ""
    assert (tmp_path / "summary").stat().st_size == SUMMARY_LIMIT_BYTES - 100
