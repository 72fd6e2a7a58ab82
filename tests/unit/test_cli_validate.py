"""`scaleup-ci validate --schema S FILE…` run as a real subprocess: verdicts and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "answer": {"type": "integer"}},
    "required": ["id", "answer"],
}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scaleup_ci", "validate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


@pytest.fixture
def schema(tmp_path: Path) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    return path


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_valid_file_exits_0(tmp_path: Path, schema: Path) -> None:
    out = write_jsonl(tmp_path / "out.jsonl", [{"id": f"e{i}", "answer": i} for i in range(3)])
    proc = run("--schema", str(schema), str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid (3 records)" in proc.stdout


def test_invalid_file_exits_1_with_index_line_and_path(tmp_path: Path, schema: Path) -> None:
    records = [{"id": "a", "answer": 1}, {"id": "b", "answer": "two"}, {"id": "c"}]
    out = write_jsonl(tmp_path / "out.jsonl", records)
    proc = run("--schema", str(schema), str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert "INVALID (3 records, 2 invalid)" in proc.stdout
    assert "record 1 (line 2) at $.answer: 'two' is not of type 'integer'" in proc.stdout
    assert "record 2 (line 3) at $: 'answer' is a required property" in proc.stdout


def test_first_errors_only_and_a_count_of_the_rest(tmp_path: Path, schema: Path) -> None:
    out = write_jsonl(tmp_path / "out.jsonl", [{"id": f"e{i}"} for i in range(50)])
    proc = run("--schema", str(schema), "--max-errors", "2", str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.count("is a required property") == 2
    assert "… and 48 more" in proc.stdout


def test_parse_error_is_invalid(tmp_path: Path, schema: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "answer": 1}\n{"id": \n')
    proc = run("--schema", str(schema), str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert "line 2" in proc.stdout and "invalid JSON" in proc.stdout


def test_expect_count_mismatch_is_invalid(tmp_path: Path, schema: Path) -> None:
    out = write_jsonl(tmp_path / "out.jsonl", [{"id": "a", "answer": 1}])
    proc = run("--schema", str(schema), "--expect", "2", str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert "expected 2 records" in proc.stdout


def test_json_array_document(tmp_path: Path, schema: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text(json.dumps([{"id": "a", "answer": 1}, {"id": "b", "answer": 2}]))
    proc = run("--schema", str(schema), str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid (2 records)" in proc.stdout


def test_bad_schema_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "objec"}')
    out = write_jsonl(tmp_path / "out.jsonl", [{}])
    proc = run("--schema", str(bad), str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "schema is invalid at type" in proc.stderr


def test_bad_regex_in_schema_exits_2(tmp_path: Path) -> None:
    """The fast metaschema check does not check regexes; the CLI still rejects a bad one."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "string", "pattern": "["}')
    out = write_jsonl(tmp_path / "out.jsonl", ["x"])
    proc = run("--schema", str(bad), str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr


def test_schema_not_json_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": ')
    out = write_jsonl(tmp_path / "out.jsonl", [{}])
    proc = run("--schema", str(bad), str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr


def test_missing_schema_exits_2(tmp_path: Path) -> None:
    out = write_jsonl(tmp_path / "out.jsonl", [{}])
    proc = run("--schema", str(tmp_path / "nope.json"), str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_missing_file_exits_2_but_checks_the_others(tmp_path: Path, schema: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "a", "answer": 1}])
    proc = run("--schema", str(schema), str(tmp_path / "nope.jsonl"), str(good), cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope.jsonl: cannot read" in proc.stderr
    assert "good.jsonl: valid" in proc.stdout


def test_directory_exits_2(tmp_path: Path, schema: Path) -> None:
    proc = run("--schema", str(schema), str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_exits_2(tmp_path: Path, schema: Path) -> None:
    out = write_jsonl(tmp_path / "out.jsonl", [{"id": "a", "answer": 1}])
    out.chmod(0)
    proc = run("--schema", str(schema), str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr


def test_invalid_and_missing_exits_2(tmp_path: Path, schema: Path) -> None:
    """The worst outcome wins: an unreadable file (2) over an invalid one (1)."""
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": 1}])
    proc = run("--schema", str(schema), str(bad), str(tmp_path / "nope.jsonl"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "bad.jsonl: INVALID" in proc.stdout
