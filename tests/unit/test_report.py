"""Report rendering: JSON against its schema, markdown escaping, the chart, the console table."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from scaleup_ci.report import Report, esc, load_report_schema


def _stage(name: str, n: int, secs: float, tmp: Path, log: str = "") -> dict:
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "stdout.log").write_text(log)
    (d / "stderr.log").write_text("")
    return {"name": name, "n": n, "wall_seconds": secs, "cpu_seconds": secs / 2,
            "peak_rss_bytes": 1 << 20, "exit_code": 0, "valid": True, "records": n,
            "errors": [], "killed_by": None, "stdout_path": str(d / "stdout.log"),
            "stderr_path": str(d / "stderr.log")}


def _report(tmp: Path, log: str = "") -> Report:
    rep = Report(budget_seconds=60, status="stopped-early", exit_code=0, elapsed_seconds=55,
                 reason="the next run would not fit")
    rep.stages = [_stage("10", 10, 1.0, tmp), _stage("50", 50, 3.0, tmp, log),
                  _stage("max", 700, 40.0, tmp)]
    rep.model = {"kind": "linear", "params": {"a": 0.5, "b": 0.05}, "goodness": {},
                 "per_example_seconds": 0.05}
    rep.plan = {"max_n": 700, "predicted_seconds": 35.5, "dataset_size": 2000,
                "reason": "fits", "predicted_full_seconds": 100.5}
    rep.final = {"records": 700}
    return rep


def test_report_json_matches_shipped_schema(tmp_path: Path) -> None:
    """A report serialises to JSON that validates against report.schema.json."""
    data = json.loads(_report(tmp_path).to_json())
    jsonschema.validate(data, load_report_schema())


def test_markdown_has_chart_with_measured_fit_and_budget(tmp_path: Path) -> None:
    """The summary draws a Mermaid chart with bars, the fitted line and the budget line."""
    md = _report(tmp_path).to_markdown()
    assert "```mermaid" in md and "xychart-beta" in md
    assert 'x-axis [10, 50, 700, "2000 (not run)"]' in md
    assert md.count("    line [") == 2


def test_untrusted_log_text_is_inert(tmp_path: Path) -> None:
    """Script output with HTML and markdown links is escaped in the summary."""
    md = _report(tmp_path, log="<script>alert(1)</script> [x](javascript:alert(1))\n").to_markdown()
    assert "<script>" not in md
    assert "&lt;script&gt;" in md


def test_esc_neutralises_table_and_link_syntax() -> None:
    """Cell escaping removes pipes, brackets, backticks and newlines."""
    s = esc("a|b](javascript:x)`\nc")
    assert "|" not in s and "]" not in s and "`" not in s and "\n" not in s


def test_markdown_without_tails_says_they_were_left_out(tmp_path: Path) -> None:
    """When tails are cut to zero, the summary says so."""
    md = _report(tmp_path, log="hello\n").to_markdown(tail_bytes=0)
    assert "Log tails left out" in md and "hello" not in md


def test_console_table_lists_every_stage(tmp_path: Path) -> None:
    """The console rendering has one row per stage and the headline."""
    text = _report(tmp_path).to_console()
    assert "max" in text and "stopped-early" in text and "700" in text


def test_esc_keeps_quotes_and_names_readable() -> None:
    """Quotes stay as written and snake_case needs only a backslash: the summary reads as
    text, while tags stay inert."""
    s = esc("KeyError: 'label' in my_field <b>")
    assert s == "KeyError: 'label' in my\\_field &lt;b&gt;"
    assert esc("C:\\x *y*") == "C:\\\\x \\*y\\*"


def test_an_estimate_far_beyond_the_stages_is_called_rough(tmp_path: Path) -> None:
    """x150 beyond the largest stage: the console and the summary say the figure is rough;
    x3 they do not."""
    rep = _report(tmp_path)
    rep.estimate = {"whole_dataset_seconds": 40.0, "dataset_size": 5000, "stages": ["mini"],
                    "model": {"kind": "linear"}, "extrapolation": 150.0}
    assert "a rough figure, extrapolated x150" in rep.to_console()
    assert "a rough figure, extrapolated x150" in rep.to_markdown()
    rep.estimate["extrapolation"] = 3.0
    assert "rough" not in rep.to_console()
