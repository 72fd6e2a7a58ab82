"""The tool's own cost: per-stage overhead, peak RSS on a large run, and the lazy dataset count.

Usage (normally through ``python -m benchmarks.tool``):

    python benchmarks/tool/bench_overhead.py overhead [--repeats 5]
    python benchmarks/tool/bench_overhead.py rss [--data-size 1GiB] [--records 1000000]
    python benchmarks/tool/bench_overhead.py lazy [--data-size 1GiB]

* overhead: ``scaleup-ci run --stages mini,10,50,100,200,max`` over a 400-example JSONL dataset
  with a script that does nothing (``sh -c ': > "$SCALEUP_OUTPUT"'``), against the same commands
  in a bare shell loop. Reports (tool - bare) / stages, all-in (Python start-up and imports
  included) and for the stage loop alone, in wall time and in CPU time (user + system of the
  tool and its children, which a busy machine inflates much less), with the load average
  (1, 5, 15 min before; 1 min after). The tool runs with compiled bytecode (as after
  ``pip install``), in a private ``PYTHONPYCACHEPREFIX``, after one warm-up run.
* rss: ``scaleup-ci run`` in-process under a wrapper that prints ``getrusage(RUSAGE_SELF)``
  (the stage processes are children, so they are not counted), on a large JSONL dataset, with a
  script whose last stage writes ``--records`` JSONL records that the tool validates.
* lazy: a run whose stages stay below the dataset size, on a large single-line JSON array: the
  report must say ``size: null`` (never counted) and the run must be quick.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STAGES = "mini,10,50,100,200,max"
NOOP = 'sh -c \': > "$SCALEUP_OUTPUT"\''

WRAPPER = r'''
import json, resource, sys, time
t0 = time.perf_counter()
from scaleup_ci.cli import main
code = main(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_SELF)
scale = 1 if sys.platform == "darwin" else 1024
print("RSS-RESULT " + json.dumps({"code": code, "peak_rss": usage.ru_maxrss * scale,
      "wall": time.perf_counter() - t0}), flush=True)
'''

WRITER = r'''
import os, sys
n = int(sys.argv[1])
per = int(sys.argv[2])
total = n * per
with open(os.environ["SCALEUP_OUTPUT"], "w") as fh:
    for start in range(0, total, 10000):
        fh.write("".join('{"i": %d, "v": "r%d"}\n' % (i, i) for i in range(start, min(total, start + 10000))))
'''


def tool_env(tmp: Path) -> dict[str, str]:
    """The environment for the tool: compiled bytecode cached in tmp, as an installed package."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SCALEUP_", "GITHUB_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _timed_run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, list[tuple[float, str]], int]:
    """Run argv; return (wall seconds, [(seconds since start, line)], exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
    code = proc.wait()
    return time.perf_counter() - t0, lines, code


def measure_overhead(tmp: Path, repeats: int = 5) -> dict[str, Any]:
    work = tmp / "overhead"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.jsonl"
    data.write_text("".join(json.dumps({"id": i, "q": f"question {i}"}) + "\n" for i in range(400)))
    env = tool_env(tmp)
    argv = [sys.executable, "-m", "scaleup_ci", "run", "--command", NOOP,
            "--full-file", str(data), "--stages", STAGES, "--expect-records", "any",
            "--time-budget", "10m", "--out-dir", str(work / "out"), "--mock-guard", "off"]
    bare_script = ('for s in mini 10 50 100 200 max; do SCALEUP_OUTPUT="$D/$s.jsonl" '
                   'sh -c \': > "$SCALEUP_OUTPUT"\'; done')
    bare_env = {**os.environ, "D": str(work)}
    _timed_run(argv, env, work)  # warm-up: compiles the bytecode into the private cache
    tool, bare, loop, startup, stages_run = [], [], [], [], []
    tool_cpu, bare_cpu = [], []
    load_before = os.getloadavg()
    for _ in range(repeats):
        c0 = _children_cpu()
        wall, lines, code = _timed_run(argv, env, work)
        tool_cpu.append(_children_cpu() - c0)
        if code != 0:
            raise RuntimeError("overhead run failed:\n" + "\n".join(x for _, x in lines[-30:]))
        report = json.loads((work / "out" / "report.json").read_text())
        ran = [s for s in report["stages"] if not s.get("skipped")]
        starts = [t for t, x in lines if x.startswith("scaleup-ci: stage ") and " examples" in x]
        ends = [t for t, x in lines if x.startswith("scaleup-ci: stage ") and " ok in " in x]
        c0 = _children_cpu()
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", bare_script], env=bare_env, check=True)
        bare.append(time.perf_counter() - t0)
        bare_cpu.append(_children_cpu() - c0)
        tool.append(wall)
        loop.append(ends[-1] - starts[0])
        startup.append(starts[0])
        stages_run.append(len(ran))
    k = statistics.median(stages_run)
    t_tool, t_bare = statistics.median(tool), statistics.median(bare)
    t_loop, t_start = statistics.median(loop), statistics.median(startup)
    return {
        "stages": k,
        "repeats": repeats,
        "tool_seconds": t_tool,
        "bare_seconds": t_bare,
        "ratio": t_tool / t_bare if t_bare > 0 else float("inf"),
        "per_stage_ms": (t_tool - t_bare) / k * 1e3,
        "startup_ms": t_start * 1e3,
        "loop_per_stage_ms": (t_loop - t_bare) / k * 1e3,
        # CPU time (user + system, the tool and every process it started) is far less sensitive
        # to a busy machine than wall time: the same difference, per stage.
        "cpu_per_stage_ms": (statistics.median(tool_cpu) - statistics.median(bare_cpu)) / k * 1e3,
        "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg()[:1])],
    }


def measure_rss(tmp: Path, data: Path, records: int = 1_000_000) -> dict[str, Any]:
    """Peak RSS of the tool (not its children) on a large dataset and a large output."""
    work = tmp / "rss"
    work.mkdir(parents=True, exist_ok=True)
    wrapper = work / "wrapper.py"
    wrapper.write_text(WRAPPER)
    writer = work / "writer.py"
    writer.write_text(WRITER)
    schema = work / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["i", "v"],
                                  "properties": {"i": {"type": "integer"},
                                                 "v": {"type": "string"}}}))
    last = 200
    per = max(1, records // last)  # the last stage (n=200) writes n * per = `records` records
    argv = [sys.executable, str(wrapper), "run",
            "--command", f"{sys.executable} {writer} {{n}} {per}",
            "--full-file", str(data), "--stages", f"mini,10,{last}", "--expect-records", "any",
            "--schema", str(schema), "--time-budget", "30m", "--out-dir", str(work / "out"),
            "--mock-guard", "off"]
    wall, lines, code = _timed_run(argv, tool_env(tmp), work)
    result = next((json.loads(x.split(" ", 1)[1]) for _, x in lines if x.startswith("RSS-RESULT")),
                  None)
    if code != 0 or result is None:
        raise RuntimeError("rss run failed:\n" + "\n".join(x for _, x in lines[-30:]))
    report = json.loads((work / "out" / "report.json").read_text())
    stage = report["stages"][-1]
    return {
        "peak_rss": result["peak_rss"],
        "wall": wall,
        "dataset_bytes": data.stat().st_size,
        "records": stage["records"],
        "valid": stage["valid"],
        "stage_seconds": stage["wall_seconds"],
        "dataset_size_in_report": report["dataset"].get("size"),
    }


def measure_lazy(tmp: Path, data: Path) -> dict[str, Any]:
    """A run whose stages stay below the dataset size must not count the dataset."""
    work = tmp / "lazy"
    work.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "scaleup_ci", "run", "--command", NOOP,
            "--full-file", str(data), "--stages", "mini,10,50", "--expect-records", "any",
            "--time-budget", "10m", "--out-dir", str(work / "out"), "--mock-guard", "off"]
    wall, lines, code = _timed_run(argv, tool_env(tmp), work)
    if code != 0:
        raise RuntimeError("lazy run failed:\n" + "\n".join(x for _, x in lines[-30:]))
    report = json.loads((work / "out" / "report.json").read_text())
    from scaleup_ci.dataset import open_dataset

    t0 = time.perf_counter()
    count = open_dataset(data).count()
    t_count = time.perf_counter() - t0
    return {"wall": wall, "size_in_report": report["dataset"].get("size"),
            "kind": report["dataset"].get("kind"), "dataset_bytes": data.stat().st_size,
            "count": count, "count_seconds": t_count}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from benchmarks.tool.bench_subset import generate, parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("overhead", "rss", "lazy"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-size", default="1GiB")
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scaleup-bench-") as name:
        tmp = Path(name)
        if args.what == "overhead":
            print(json.dumps(measure_overhead(tmp, args.repeats), indent=2))
        elif args.what == "rss":
            data = tmp / "data.jsonl"
            generate(data, parse_size(args.data_size), "jsonl")
            print(json.dumps(measure_rss(tmp, data, args.records), indent=2))
        else:
            data = tmp / "data.json"
            generate(data, parse_size(args.data_size), "json-array")
            print(json.dumps(measure_lazy(tmp, data), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
