"""Helpers for acceptance tests: real datasets on disk, the real CLI in a real subprocess."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
SCRIPTS = HERE / "scripts"
SCHEMA = HERE / "record.schema.json"


def write_dataset(path: Path, n: int, fmt: str = "jsonl") -> Path:
    """Write n examples in the given format: jsonl, json-array, json-object, csv (+ .gz)."""
    rows = [{"id": f"ex-{i:05d}", "text": "word " * (i % 13 + 1), "label": i % 3} for i in range(n)]
    gz = fmt.endswith(".gz")
    kind = fmt.removesuffix(".gz")
    if kind == "jsonl":
        data = "".join(json.dumps(r) + "\n" for r in rows)
    elif kind == "json-array":
        data = json.dumps(rows)
    elif kind == "json-object":
        data = json.dumps({"meta": {"source": "test"}, "data": rows})
    elif kind == "csv":
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(rows)
        data = buf.getvalue()
    else:
        raise ValueError(fmt)
    raw = data.encode()
    if gz:
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    elapsed: float
    out_dir: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "report.json").read_text())

    def stage(self, name: str) -> dict[str, Any]:
        for s in self.report["stages"]:
            if s["name"] == name and not s.get("skipped"):
                return s
        raise KeyError(name)


def run_cli(cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
    """Run `python -m scaleup_ci run ARGS` in cwd and collect what it left."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("SCALEUP_", "GITHUB_"))}
    full_env.update(env or {})
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scaleup_ci", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - t
    out_dir = cwd / "scaleup-out"
    for i, a in enumerate(args):
        if a == "--out-dir":
            out_dir = cwd / args[i + 1]
    return Run(proc.returncode, proc.stdout, proc.stderr, elapsed, out_dir)


def python_cmd(script: Path, *extra: str) -> str:
    """A command string running a Python script with this interpreter."""
    import shlex

    return shlex.join([sys.executable, str(script), *extra])


def script_cmd(name: str, *extra: str) -> str:
    """A command string running one of the test scripts with this interpreter."""
    return python_cmd(SCRIPTS / name, *extra)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data.jsonl", 400)
