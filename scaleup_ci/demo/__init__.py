"""The built-in demo workload: a deterministic Sudoku dataset and a real solver script.

``scaleup-ci demo`` calls :func:`demo_files` to write the dataset, then runs the staged scale-up
with the option values it returns.
"""

from __future__ import annotations

import shlex
import sys
from importlib.resources import files
from pathlib import Path

DATASET_NAME = "dataset.jsonl"
MINI_NAME = "mini.jsonl"
DEMO_TIME_BUDGET = "60s"

__all__ = ["DATASET_NAME", "DEMO_TIME_BUDGET", "MINI_NAME", "demo_files", "schema_path"]


def schema_path() -> Path:
    """Path of the demo's output-record schema, shipped inside the package."""
    return Path(str(files("scaleup_ci.demo").joinpath("schema.json")))


def _line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _has_records(path: Path, n: int) -> bool:
    try:
        return path.is_file() and _line_count(path) == n
    except OSError:
        return False


def demo_files(dest_dir: Path) -> dict[str, str]:
    """Write the demo dataset and mini file into ``dest_dir``; return the demo's option values.

    Files that already hold the right number of records are left alone.
    """
    # Imported here so that ``python -m scaleup_ci.demo.generate`` does not find its own module
    # already imported by this package.
    from scaleup_ci.demo import generate as gen

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    full = dest_dir / DATASET_NAME
    mini = dest_dir / MINI_NAME
    if not _has_records(full, gen.DEFAULT_N):
        gen.generate(full, n=gen.DEFAULT_N, seed=gen.DEFAULT_SEED)
    if not _has_records(mini, gen.MINI_N):
        gen.generate_mini(mini, seed=gen.DEFAULT_SEED)
    return {
        "command": f"{shlex.quote(sys.executable)} -m scaleup_ci.demo.solve {{input}} {{output}}",
        "full-file": str(full),
        "mini-file": str(mini),
        "schema": str(schema_path()),
        "time-budget": DEMO_TIME_BUDGET,
    }
