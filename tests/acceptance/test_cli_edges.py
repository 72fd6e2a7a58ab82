"""The real CLI at its edges: a closed pipe, Ctrl-C during a progressive max, a misspelt
program or placeholder, file modes, a config file in another folder, the refitted estimate."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import jsonschema

from scaleup_ci.report import load_report_schema

from .conftest import SCHEMA, SCRIPTS, run_cli, script_cmd, write_dataset


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SCALEUP_", "GITHUB_"))}


def _eval(*extra: str) -> str:
    return script_cmd("eval_script.py", "{input}", "{output}", *extra)


def test_a_closed_stdout_pipe_does_not_stop_the_run(tmp_path: Path) -> None:
    """`scaleup-ci run ... | head -1`: the reader goes away after one line; the run carries on,
    exits 0 and still writes report.json, summary.md and final/."""
    data = write_dataset(tmp_path / "data.jsonl", 120)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaleup_ci", "run", "--command", _eval("--sleep", "0.002"),
         "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "40s"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader is gone: every later print gets EPIPE
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    out = tmp_path / "scaleup-out"
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == "completed"
    assert (out / "summary.md").read_text().startswith("## scaleup-ci")
    assert len((out / "final" / "output.jsonl").read_text().splitlines()) == 120


def test_ctrl_c_during_a_progressive_max_keeps_its_validated_records(tmp_path: Path) -> None:
    """SIGINT while max streams records: exit 130, and the records it validated before the
    stop are in final/, every line valid, with the reason saying so."""
    data = write_dataset(tmp_path / "data.jsonl", 5000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaleup_ci", "run", "--command", _eval("--sleep", "0.01"),
         "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "60s"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("scaleup-ci: stage max:"):
            break
    else:
        proc.wait(timeout=10)
        raise AssertionError("max never started:\n" + "".join(lines))
    time.sleep(4.0)  # some hundreds of records land
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, "".join(lines) + rest
    out = tmp_path / "scaleup-out"
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == "cancelled"
    mx = next(s for s in rep["stages"] if s["name"] == "max")
    assert mx["killed_by"] == "cancelled" and mx["partial"] is True, mx
    assert mx["records"] > 100, mx
    assert "kept in final/" in rep["reason"], rep["reason"]
    final = (out / "final" / "output.jsonl").read_text().splitlines()
    assert len(final) == mx["records"]
    schema = json.loads(SCHEMA.read_text())
    for i, line in enumerate(final):
        rec = json.loads(line)
        jsonschema.validate(rec, schema)
        assert rec["id"] == f"ex-{i:05d}"


def test_a_misspelt_program_is_a_config_error_before_any_stage(tmp_path: Path) -> None:
    """A program not on PATH: exit 2, a did-you-mean, and no stage ran."""
    data = write_dataset(tmp_path / "data.jsonl", 50)
    r = run_cli(tmp_path, "run", "--command", "pyhton3 x.py {input} {output}",
                "--full-file", str(data), "--time-budget", "20s")
    assert r.code == 2, r.stdout + r.stderr
    assert "'pyhton3' not found on PATH" in r.stderr and "did you mean 'python3'" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("not found on PATH") == 1, r.stderr
    assert not (r.out_dir / "stages").exists() or not any((r.out_dir / "stages").iterdir())


def test_a_script_path_that_is_not_executable_says_how_to_run_it(tmp_path: Path) -> None:
    """`./eval.py` without the executable bit: exit 2, suggesting the interpreter."""
    data = write_dataset(tmp_path / "data.jsonl", 50)
    script = tmp_path / "eval.py"
    script.write_text((SCRIPTS / "eval_script.py").read_text())
    script.chmod(0o644)
    r = run_cli(tmp_path, "run", "--command", "./eval.py {input} {output}",
                "--full-file", str(data), "--time-budget", "20s")
    assert r.code == 2, r.stdout + r.stderr
    assert "not an executable file" in r.stderr and "python ./eval.py" in r.stderr


def test_a_misspelt_placeholder_is_a_config_error(tmp_path: Path) -> None:
    """{inpt} would reach the script as literal text: exit 2 naming the fix."""
    data = write_dataset(tmp_path / "data.jsonl", 50)
    r = run_cli(tmp_path, "run", "--command", _eval().replace("{input}", "{inpt}"),
                "--full-file", str(data), "--time-budget", "20s")
    assert r.code == 2, r.stdout + r.stderr
    assert "{inpt} is not a placeholder; did you mean {input}?" in r.stderr
    assert "Traceback" not in r.stderr


def test_reports_are_ordinary_readable_files(tmp_path: Path) -> None:
    """report.json and summary.md follow the umask (0644 under 022), not mkstemp's 0600, so a
    later upload step running as another user can read them."""
    data = write_dataset(tmp_path / "data.jsonl", 20)
    r = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data),
                "--time-budget", "20s")
    assert r.code == 0, r.stdout + r.stderr
    old = os.umask(0o022)
    os.umask(old)
    for name in ("report.json", "summary.md"):
        mode = stat.S_IMODE((r.out_dir / name).stat().st_mode)
        assert mode == 0o666 & ~old, (name, oct(mode))


def test_a_config_file_in_another_folder_runs_its_command_there(tmp_path: Path) -> None:
    """`--config project/scaleup.yml` from elsewhere: the config's relative paths, and the
    command's, start at the config file's folder."""
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "eval.py").write_text((SCRIPTS / "eval_script.py").read_text())
    write_dataset(proj / "data.jsonl", 30)
    (proj / "schema.json").write_text(SCHEMA.read_text())
    (proj / "scaleup.yml").write_text(
        f"command: {sys.executable} eval.py {{input}} {{output}}\n"
        "full-file: data.jsonl\nschema: schema.json\ntime-budget: 30s\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run_cli(elsewhere, "run", "--config", str(proj / "scaleup.yml"))
    assert r.code == 0, r.stdout + r.stderr
    assert r.report["status"] == "completed"


def test_the_refitted_estimate_is_close_to_the_real_rate(tmp_path: Path) -> None:
    """A 20 ms-per-example script over 20,000 examples in 30 s: the report's after-run
    estimate of the whole dataset (refitted to every stage, the progressive max included)
    is within a factor of 1.5 of the real 400 s, and the summary and console show it."""
    data = write_dataset(tmp_path / "data.jsonl", 20000)
    r = run_cli(tmp_path, "run", "--command", _eval("--sleep", "0.02"), "--full-file",
                str(data), "--schema", str(SCHEMA), "--time-budget", "30s")
    assert r.code == 0, r.stdout + r.stderr
    rep = r.report
    jsonschema.validate(rep, load_report_schema())
    est = rep["estimate"]
    assert est["dataset_size"] == 20000 and "max" in est["stages"], est
    assert 400 / 1.5 <= est["whole_dataset_seconds"] <= 400 * 1.5, est
    assert "refitted to every finished stage" in r.stdout
    # The live progress line, about every 10 s while max streams its records.
    assert re.search(r"scaleup-ci: \[max\] [\d,]+/20,000 records · [\d.]+/s · ETA \d+ s "
                     r"\(will be stopped at the deadline\) · \d+ s to deadline · memory", r.stdout)
    assert "After the run, refitted" in (r.out_dir / "summary.md").read_text()


def test_a_rejected_config_says_nothing_ran_and_keeps_the_previous_outputs(
        tmp_path: Path) -> None:
    """A good run, then a run with a misspelt option: exit 2, the summary says nothing ran
    (no "0.00 s of a 0.00 s budget"), and the first run's final/ is still there."""
    data = write_dataset(tmp_path / "data.jsonl", 20)
    good = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data),
                   "--time-budget", "20s")
    assert good.code == 0, good.stdout + good.stderr
    (tmp_path / "scaleup.yml").write_text("time-budgt: 20s\n")
    bad = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data))
    assert bad.code == 2, bad.stdout + bad.stderr
    assert "did you mean" in bad.stderr and "Traceback" not in bad.stderr
    summary = (bad.out_dir / "summary.md").read_text()
    assert "before any stage ran" in summary and "0.00 s" not in summary, summary
    assert "left as they were" in summary
    assert len((bad.out_dir / "final" / "output.jsonl").read_text().splitlines()) == 20


BIG_RECORDS = """
import json, sys, time
rows = [json.loads(line) for line in open(sys.argv[1])]
pad = "y" * 50_000
with open(sys.argv[2], "w") as out:
    for r in rows:
        time.sleep(0.001)
        out.write(json.dumps({"id": r["id"], "score": 1, "pad": pad}) + "\\n")
        out.flush()
"""


def test_a_progressive_max_with_large_records_ends_within_the_budget(tmp_path: Path) -> None:
    """50 KB records streamed for the whole budget (some hundreds of MB): final/ is the
    stage's own file, hard-linked (a copy after the stop ran seconds past the budget), it
    holds exactly the validated records, and the run ends within its 15 s."""
    data = write_dataset(tmp_path / "data.jsonl", 40000)
    script = tmp_path / "big.py"
    script.write_text(BIG_RECORDS)
    r = run_cli(tmp_path, "run", "--command", f"{sys.executable} big.py {{input}} {{output}}",
                "--full-file", str(data), "--time-budget", "15s")
    assert r.code == 0, r.stdout + r.stderr
    rep = r.report
    assert rep["elapsed_seconds"] <= 15.0 and r.elapsed <= 15.5, (rep["elapsed_seconds"], r.elapsed)
    mx = next(s for s in rep["stages"] if s["name"] == "max")
    assert mx["partial"] and mx["records"] > 1000, mx
    final = r.out_dir / "final" / "output.jsonl"
    assert final.stat().st_ino == Path(mx["output_path"]).stat().st_ino
    # Streamed, not read whole: hundreds of MB in this process would inflate the maxrss that
    # later tests' subprocesses inherit through fork.
    count, last = 0, b""
    with final.open("rb") as fh:
        for line in fh:
            count, last = count + 1, line
    assert last.endswith(b"\n") and count == mx["records"]


def test_a_malformed_dataset_is_rejected_before_any_stage_and_keeps_the_previous_outputs(
        tmp_path: Path) -> None:
    """Bad JSON on line 4000 of a dataset: exit 2 naming the line, before any stage ran, and
    the previous run's final/ is still there."""
    data = write_dataset(tmp_path / "data.jsonl", 20)
    good = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(data),
                   "--time-budget", "20s")
    assert good.code == 0, good.stdout + good.stderr
    bad = write_dataset(tmp_path / "bad.jsonl", 5000)
    lines = bad.read_text().splitlines()
    lines[3999] = "{broken"
    bad.write_text("\n".join(lines) + "\n")
    r = run_cli(tmp_path, "run", "--command", _eval(), "--full-file", str(bad),
                "--time-budget", "20s")
    assert r.code == 2, r.stdout + r.stderr
    assert "line 4000" in r.stderr and "Traceback" not in r.stderr
    assert "stage mini" not in r.stdout
    assert len((r.out_dir / "final" / "output.jsonl").read_text().splitlines()) == 20
    assert "left as they were" in (r.out_dir / "summary.md").read_text()


WRITES_A_BIG_FILE = """
import json, os, sys
block = b"z" * (1 << 20)
with open(os.path.join(os.path.dirname(sys.argv[2]), "scratch.bin"), "wb") as fh:
    for _ in range(300):  # 300 MiB through the page cache, about 10 MiB resident
        fh.write(block)
rows = [json.loads(line) for line in open(sys.argv[1])]
with open(sys.argv[2], "w") as out:
    for r in rows:
        out.write(json.dumps({"id": r["id"], "score": 1}) + "\\n")
"""


def test_page_cache_of_written_files_is_not_counted_as_memory(tmp_path: Path) -> None:
    """A script that writes 300 MiB to disk with little memory of its own: the stage's peak
    memory (which caps max) is its own memory, not the cgroup's page cache, so max is not
    memory-capped under a 1 GiB limit."""
    data = write_dataset(tmp_path / "data.jsonl", 400)
    (tmp_path / "w.py").write_text(WRITES_A_BIG_FILE)
    r = run_cli(tmp_path, "run", "--command", f"{sys.executable} w.py {{input}} {{output}}",
                "--full-file", str(data), "--time-budget", "40s", "--stages", "mini,10,50,max",
                "--memory-limit", "1GiB")
    assert r.code == 0, r.stdout + r.stderr
    for s in r.report["stages"]:
        assert s["peak_rss_bytes"] < 150 * 2**20, (s["name"], s["peak_rss_bytes"],
                                                   s["peak_rss_source"])
    assert not (r.report.get("plan") or {}).get("memory_capped")


def test_progress_of_a_stage_that_writes_at_the_end_shows_the_clock(tmp_path: Path) -> None:
    """Output written only at the end: the progress line has no rate to show (not "0/N
    records · 0.0/s · ETA ?"), but says how long it has run and how long it may still run."""
    data = write_dataset(tmp_path / "data.jsonl", 5000)
    r = run_cli(tmp_path, "run", "--command", _eval("--sleep", "0.01", "--at-end"),
                "--full-file", str(data), "--schema", str(SCHEMA), "--time-budget", "30s")
    assert r.code == 0, r.stdout + r.stderr
    assert r.stage("max")["n"] > 500
    assert re.search(r"scaleup-ci: \[max\] [\d,]+ examples · running \d+ s, no output records "
                     r"yet · \d+ s to its limit · memory", r.stdout), r.stdout
    assert "0.0/s" not in r.stdout


def test_a_whole_dataset_that_fits_gets_a_limit_that_fits(tmp_path: Path) -> None:
    """500,000 tiny examples, a script with no sleep: the plan says the whole dataset fits, and
    max gets a limit that covers it, validation included (a per-record guess of 10 s for the
    validation once left max a limit of 0 s: killed at once, exit 3)."""
    data = tmp_path / "data.jsonl"
    with data.open("w") as fh:
        for i in range(500_000):
            fh.write(f'{{"id": {i}}}\n')
    script = tmp_path / "fast.py"
    script.write_text("import sys\nout = open(sys.argv[2], 'w')\n"
                      "for line in open(sys.argv[1]):\n"
                      "    out.write(line)\n    out.flush()\n")
    r = run_cli(tmp_path, "run", "--command", f"{sys.executable} fast.py {{input}} {{output}}",
                "--full-file", str(data), "--time-budget", "15s")
    assert r.code == 0, r.stdout + r.stderr
    mx = r.stage("max")
    assert mx["killed_by"] is None and mx["records"] == 500_000, mx
    assert r.report["elapsed_seconds"] <= 15
