"""Tests for the built-in demo workload: the Sudoku generator and the solver script."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from scaleup_ci.demo import demo_files, schema_path
from scaleup_ci.demo.generate import generate, generate_mini

SOLVE = [sys.executable, "-m", "scaleup_ci.demo.solve"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_solver(
    input_path: Path, output_path: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SCALEUP_DEADLINE", None)
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*SOLVE, str(input_path), str(output_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    """Generating twice with the same n and seed gives byte-identical files."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    generate(first, n=40, seed=7)
    generate(second, n=40, seed=7)
    assert hashlib.sha256(first.read_bytes()).hexdigest() == (
        hashlib.sha256(second.read_bytes()).hexdigest()
    )


def test_generated_records_have_count_and_fields(tmp_path: Path) -> None:
    """The dataset has n records, each with an id, an 81-char puzzle, its givens and difficulty."""
    path = tmp_path / "data.jsonl"
    generate(path, n=30, seed=3)
    records = _records(path)
    assert len(records) == 30
    assert len({r["id"] for r in records}) == 30
    for record in records:
        assert set(record) == {"id", "puzzle", "givens", "difficulty"}
        puzzle = record["puzzle"]
        assert isinstance(puzzle, str) and len(puzzle) == 81
        assert set(puzzle) <= set(".123456789")
        assert record["givens"] == 81 - puzzle.count(".")
        assert record["difficulty"] in {"easy", "medium", "hard"}


def test_mini_file_is_the_first_three_records(tmp_path: Path) -> None:
    """The mini file holds exactly the first three records of the full dataset."""
    full, mini = tmp_path / "full.jsonl", tmp_path / "mini.jsonl"
    generate(full, n=10)
    generate_mini(mini)
    assert mini.read_text().splitlines() == full.read_text().splitlines()[:3]


def test_solver_output_validates_against_schema(tmp_path: Path) -> None:
    """The solver script solves the first five puzzles and every record fits schema.json."""
    data, out = tmp_path / "data.jsonl", tmp_path / "out.jsonl"
    generate(data, n=5)
    result = _run_solver(data, out)
    assert result.returncode == 0, result.stderr
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    records = _records(out)
    puzzles = _records(data)
    assert [r["id"] for r in records] == [p["id"] for p in puzzles]
    for record, puzzle in zip(records, puzzles, strict=True):
        assert list(validator.iter_errors(record)) == []
        solution, given = str(record["solution"]), str(puzzle["puzzle"])
        assert all(g in (".", s) for g, s in zip(given, solution, strict=True))


def test_solver_stops_when_deadline_has_passed(tmp_path: Path) -> None:
    """With SCALEUP_DEADLINE in the past the solver writes at most one record and exits 0."""
    data, out = tmp_path / "data.jsonl", tmp_path / "out.jsonl"
    generate(data, n=20)
    result = _run_solver(data, out, {"SCALEUP_DEADLINE": str(time.time() - 10)})
    assert result.returncode == 0, result.stderr
    assert len(_records(out)) <= 1


def test_malformed_line_exits_1_naming_the_line(tmp_path: Path) -> None:
    """A malformed input line makes the solver exit 1 with the line number on stderr."""
    data, out = tmp_path / "data.jsonl", tmp_path / "out.jsonl"
    generate(data, n=2)
    with data.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "broken", "puzzle": "123"\n')
    result = _run_solver(data, out)
    assert result.returncode == 1
    assert "line 3" in result.stderr
    assert len(_records(out)) == 2


def test_demo_files_returns_runnable_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo_files writes both datasets once and returns options naming them and the schema."""
    monkeypatch.setattr("scaleup_ci.demo.generate.DEFAULT_N", 12)
    options = demo_files(tmp_path)
    assert len(_records(Path(options["full-file"]))) == 12
    assert len(_records(Path(options["mini-file"]))) == 3
    assert Path(options["schema"]).is_file()
    assert options["time-budget"] == "60s"
    assert "{input}" in options["command"] and "{output}" in options["command"]
    before = Path(options["full-file"]).stat().st_mtime_ns
    demo_files(tmp_path)
    assert Path(options["full-file"]).stat().st_mtime_ns == before
