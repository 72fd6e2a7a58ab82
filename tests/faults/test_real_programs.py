"""Under the default limits real runtimes start (RLIMIT_AS would break them), while a script that
really allocates past the limit is stopped and classified as memory."""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import run_cli, write_dataset

WRAP = Path(__file__).parent / "scripts" / "run_then_write.py"


def _cmd(*program: str) -> str:
    return shlex.join([sys.executable, str(WRAP), "{input}", "{output}", "--", *program])


PROGRAMS = {
    "java -version": (["java", "-version"], lambda: shutil.which("java") is not None),
    "node one-liner": (["node", "-e", "console.log(42)"], lambda: shutil.which("node") is not None),
    "import numpy": ([sys.executable, "-c", "import numpy; print(numpy.__version__)"],
                     lambda: importlib.util.find_spec("numpy") is not None),
}


@pytest.mark.parametrize("enforcement", ["auto", "rlimit-data"])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_real_runtime_runs_under_default_limits(name: str, enforcement: str,
                                                tmp_path: Path) -> None:
    """The program runs as a stage under the default enforcement (and under RLIMIT_DATA)."""
    argv, available = PROGRAMS[name]
    if not available():
        pytest.skip(f"{argv[0]} is not installed")
    data = write_dataset(tmp_path / "d.jsonl", 5)
    r = run_cli(tmp_path, "run", "--command", _cmd(*argv), "--full-file", str(data),
                "--stages", "mini", "--time-budget", "60s", "--memory-limit", "1GiB",
                "--memory-enforcement", enforcement)
    assert r.code == 0, r.stdout + r.stderr
    assert r.report["limits"]["mode"] in ("cgroup", "rlimit-data+watchdog")
