"""The fault cases: each one a small real script or input, and what the tool must say about it.

``CASES`` is the table; ``run_case`` drives the real CLI (``python -m scaleup_ci run``) in a
subprocess for one case and returns an ``Outcome``; ``check_case`` asserts everything a case
promises. ``test_faults.py`` runs each case as one pytest case; ``table.py`` prints the table.

Every case asserts: the exit code; the report's ``status``; the failing stage's ``killed_by`` and
``cause``; a piece of the message; that earlier stages' outputs are intact (files, counts, the
report entry, and ``final/``); that the tool ended within its budget (report ``elapsed_seconds``
<= time-budget and the subprocess's wall clock <= time-budget + 2 s); and that no process the
script started (it writes their pids to a folder) is still alive afterwards.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "scripts" / "fault.py"
SCHEMA = ROOT / "tests" / "acceptance" / "record.schema.json"
UNSET: Any = object()
N = 60  # examples in the default dataset: stages mini (3), 10, 50


def rows(n: int = N) -> list[dict[str, Any]]:
    return [{"id": f"ex-{i:04d}", "text": "word " * (i % 5 + 1)} for i in range(n)]


def jsonl_bytes(items: list[dict[str, Any]], *, nl: str = "\n", ensure_ascii: bool = True) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=ensure_ascii) + nl for r in items).encode("utf-8")


def _data(name: str, payload: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(payload() if callable(payload) else payload)
        return p
    return make


DEFAULT_DATA = _data("data.jsonl", lambda: jsonl_bytes(rows()))


@dataclass
class Case:
    """One fault: how to provoke it and what the tool must say."""

    id: str
    what: str
    code: int
    message: str  # must appear (case-insensitively) in the tool's stderr
    mode: str | None = "ok"  # fault.py mode; None = use ``command``
    at: int = -1  # the stage size at which the fault happens (-1 = every stage)
    command: str | None = None
    args: tuple[str, ...] = ()
    budget: int = 20
    stages: str = "mini,10,50"
    data: Callable[[Path], Path] = DEFAULT_DATA
    schema: bool = True
    status: str | None = UNSET  # report status; None = no report expected
    stage: str | None = None  # the stage the fault hits
    killed_by: Any = UNSET
    cause: Any = UNSET
    intact: tuple[str, ...] = ()  # finished stages whose outputs must be intact
    signals: tuple[int, ...] = ()  # sent to the CLI once the faulty stage has started
    signal_gap: float = 0.3
    setup: Callable[[Path], list[str]] | None = None  # extra CLI args made in the folder
    teardown: Callable[[Path], None] | None = None
    check: Callable[[Outcome], object] | None = None
    needs: Callable[[], str | None] | None = None  # returns a reason to skip, or None
    wall_limit: float | None = None  # tighter limit on the wall clock, when the case has one
    budget_on_cli: bool = True  # False when the case's scaleup.yml sets time-budget itself


@dataclass
class Outcome:
    case: Case
    code: int
    stdout: str
    stderr: str
    wall: float
    out_dir: Path
    work: Path
    pids_dir: Path
    maxrss_bytes: int
    signalled_at: float | None = None
    ended_at: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def report(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.out_dir / "report.json").read_text("utf-8"))  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def stage(self, name: str) -> dict[str, Any]:
        rep = self.report or {}
        for s in rep.get("stages", []):
            if s["name"] == name and not s.get("skipped"):
                return s  # type: ignore[no-any-return]
        raise KeyError(f"no stage {name!r} in the report")

    @property
    def said(self) -> str:
        """The tool's first error line (or the last status line when it did not fail)."""
        for line in self.stderr.splitlines():
            if line.startswith("scaleup-ci: error:"):
                return line.removeprefix("scaleup-ci: error:").strip()
        rep = self.report
        if rep is not None:
            return f"{rep.get('status')}: {rep.get('reason', '')}"
        return self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stage_pids(pids_dir: Path) -> list[int]:
    if not pids_dir.is_dir():
        return []
    return [int(p.read_text()) for p in pids_dir.iterdir() if p.read_text().strip().isdigit()]


def _wait_for(path_glob: str, folder: Path, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if folder.is_dir() and any(folder.glob(path_glob)):
            return True
        time.sleep(0.02)
    return False


def run_case(case: Case, work: Path) -> Outcome:
    """Run one case through the real CLI in ``work`` and collect what it left."""
    work.mkdir(parents=True, exist_ok=True)
    pids_dir = work / "pids"
    data = case.data(work)
    args: list[str] = ["--full-file", str(data), "--stages", case.stages]
    if case.budget_on_cli:
        args += ["--time-budget", f"{case.budget}s"]
    if case.schema:
        args += ["--schema", str(SCHEMA)]
    if case.command is not None:
        args += ["--command", case.command]
    elif case.mode is not None:
        import shlex
        args += ["--command", shlex.join([sys.executable, str(SCRIPT), "{input}", "{output}",
                                          "--mode", case.mode, "--at", str(case.at),
                                          "--pids", str(pids_dir)])]
    if case.setup is not None:
        args += case.setup(work)
    args += list(case.args)
    out_dir = work / "scaleup-out"
    for i, a in enumerate(args):
        if a == "--out-dir":
            out_dir = (work / args[i + 1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEUP_", "GITHUB_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with (work / "cli.stdout").open("wb") as so, (work / "cli.stderr").open("wb") as se:
        t = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "scaleup_ci", "run", *args], cwd=work,
                                env=env, stdout=so, stderr=se, stdin=subprocess.DEVNULL)
        signalled_at = None
        if case.signals:
            st_name = case.stage or ""
            size = 3 if st_name == "mini" else int(st_name) if st_name.isdigit() else N
            if _wait_for(f"root{size}-*", pids_dir, case.budget):
                time.sleep(0.3)
                signalled_at = time.monotonic()
                for i, sig in enumerate(case.signals):
                    if i:
                        time.sleep(case.signal_gap)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, sig)
        deadline = t + case.budget + 30
        status = None
        ru = None
        while status is None:
            pid, st, r = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, ru = os.waitstatus_to_exitcode(st), r
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, st, r = os.wait4(proc.pid, 0)
                status, ru = os.waitstatus_to_exitcode(st), r
                break
            time.sleep(0.02)
        ended = time.monotonic()
        proc.returncode = status
    outcome = Outcome(
        case=case, code=status, stdout=(work / "cli.stdout").read_text("utf-8", "replace"),
        stderr=(work / "cli.stderr").read_text("utf-8", "replace"), wall=ended - t,
        out_dir=out_dir, work=work, pids_dir=pids_dir,
        maxrss_bytes=(ru.ru_maxrss * 1024 if ru is not None else 0),
        signalled_at=signalled_at, ended_at=ended,
    )
    return outcome


def cleanup(outcome: Outcome) -> None:
    """Kill anything a case left behind (so that a failing case cannot leak processes)."""
    for pid in stage_pids(outcome.pids_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if outcome.case.teardown is not None:
        outcome.case.teardown(outcome.work)


def check_case(o: Outcome) -> None:
    """Assert everything the case promises."""
    c = o.case
    ctx = f"\n--- stdout (tail)\n{o.stdout[-3000:]}\n--- stderr (tail)\n{o.stderr[-3000:]}"
    assert o.code == c.code, f"exit code {o.code}, expected {c.code}{ctx}"
    said = (o.stderr + "\n" + o.stdout).lower()
    assert c.message.lower() in said, f"{c.message!r} not in the tool's output{ctx}"
    # The script's own stderr is echoed with a "[stage] " prefix; only the tool's lines count.
    tool_err = "\n".join(line for line in o.stderr.splitlines() if not line.startswith("["))
    assert "Traceback (most recent call last)" not in tool_err, f"the tool itself crashed{ctx}"
    # Within its budget.
    assert o.wall <= c.budget + 2, f"wall {o.wall:.1f} s > budget {c.budget} + 2 s{ctx}"
    if c.wall_limit is not None:
        assert o.wall <= c.wall_limit, f"wall {o.wall:.1f} s > {c.wall_limit} s{ctx}"
    rep = o.report
    if c.status is None:
        pass
    elif c.status is not UNSET:
        assert rep is not None, f"no report.json{ctx}"
        assert rep["status"] == c.status, f"status {rep['status']}, expected {c.status}{ctx}"
    if rep is not None and rep.get("elapsed_seconds") is not None:
        assert rep["elapsed_seconds"] <= c.budget, f"elapsed {rep['elapsed_seconds']}{ctx}"
    if c.stage is not None and (c.killed_by is not UNSET or c.cause is not UNSET):
        st = o.stage(c.stage)
        if c.killed_by is not UNSET:
            assert st["killed_by"] == c.killed_by, f"killed_by {st['killed_by']}: {st}{ctx}"
        if c.cause is not UNSET:
            assert st["cause"] == c.cause, f"cause {st['cause']}: {st}{ctx}"
    # Earlier stages intact.
    if c.intact:
        assert rep is not None
        for name in c.intact:
            st = o.stage(name)
            assert st["valid"] is True, st
            lines = Path(st["output_path"]).read_text("utf-8").splitlines()
            assert len(lines) == st["n"] == st["records"], (name, len(lines), st)
            for line in lines:
                json.loads(line)
        final = json.loads((o.out_dir / "final" / "stage.json").read_text("utf-8"))
        assert final["stage"] == c.intact[-1], final
        final_lines = (o.out_dir / "final" / "output.jsonl").read_text("utf-8").splitlines()
        assert len(final_lines) == o.stage(c.intact[-1])["n"]
    if rep is not None and rep.get("status") not in (None, "running"):
        assert (o.out_dir / "summary.md").is_file(), "summary.md missing"
    # No process of the stage left alive.
    end = time.monotonic() + 2.0
    alive = [p for p in stage_pids(o.pids_dir) if _pid_alive(p)]
    while alive and time.monotonic() < end:
        time.sleep(0.05)
        alive = [p for p in alive if _pid_alive(p)]
    assert not alive, f"processes of the stage still alive: {alive[:10]}{ctx}"
    if c.check is not None:
        c.check(o)


# ------------------------------------------------------------------------------- extra checks

def _cancel_check(o: Outcome) -> None:
    assert o.signalled_at is not None, "the stage never started"
    took = o.ended_at - o.signalled_at
    assert took <= 5.0, f"took {took:.1f} s after the signal"
    rep = o.report
    assert rep is not None and rep["status"] == "cancelled" and rep["exit_code"] == 130
    assert (o.out_dir / "summary.md").read_text("utf-8").strip()


def _second_signal_check(o: Outcome) -> None:
    _cancel_check(o)
    assert "killing the stage now" in o.stderr
    assert o.signalled_at is not None and o.ended_at - o.signalled_at < 3.0


def _kill9_check(o: Outcome) -> None:
    rep = o.report
    assert rep is not None, "report.json unreadable after kill -9"
    assert [s["name"] for s in rep["stages"]][:2] == ["mini", "10"]
    final = json.loads((o.out_dir / "final" / "stage.json").read_text("utf-8"))
    assert final["stage"] == "10" and final["records"] == 10
    lines = (o.out_dir / "final" / "output.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 10 and all(json.loads(x) for x in lines)
    assert not list((o.out_dir / "final").glob(".*.tmp"))


def _log_cap_check(o: Outcome) -> None:
    st = o.stage("10")
    size = Path(st["stdout_path"]).stat().st_size
    assert size <= 10 * 2**20 + 1024, size
    assert st["log_truncated"] is True
    assert o.maxrss_bytes < 300 * 2**20, f"tool grew to {o.maxrss_bytes / 2**20:.0f} MiB"


def _fail_fast_check(o: Outcome) -> None:
    st = o.stage("50")
    assert st["wall_seconds"] < 4.0, st["wall_seconds"]  # the full run would take 10 s
    assert st["errors"][0]["index"] == 1 and st["errors"][0]["path"] == "$.score"


def _redact_check(o: Outcome) -> None:
    for p in [*o.out_dir.rglob("*.log"), o.out_dir / "summary.md", o.out_dir / "report.json"]:
        text = p.read_text("utf-8", "replace")
        assert "sk-SECRET-12345" not in text, p
    assert "***" in Path(o.stage("10")["stderr_path"]).read_text("utf-8")


def _evidence_has(o: Outcome, stage: str, text: str) -> None:
    st = o.stage(stage)
    assert any(text in e for e in st["evidence"]), st["evidence"]


def _quick_stage(name: str, limit: float) -> Callable[[Outcome], None]:
    def check(o: Outcome) -> None:
        assert o.stage(name)["wall_seconds"] < limit, o.stage(name)["wall_seconds"]
    return check


def _peak_check(o: Outcome) -> None:
    st = o.stage("10")
    assert st["peak_rss_bytes"] > 100 * 2**20, st["peak_rss_bytes"]


def _stages_inside(o: Outcome) -> None:
    rep = o.report
    assert rep is not None
    base = o.out_dir.resolve()
    for s in rep["stages"]:
        assert Path(s["stage_dir"]).resolve().is_relative_to(base), s["stage_dir"]


def _nothing_escaped(o: Outcome) -> None:
    assert not (o.work.parent / "x").exists()
    assert not (o.work / "scaleup-out" / "stages").exists() or not any(
        ".." in p.name for p in (o.work / "scaleup-out" / "stages").iterdir())


# ------------------------------------------------------------------------------- set-ups

def _cfg(text: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        (d / "scaleup.yml").write_text(text, "utf-8")
        return ["--config", str(d / "scaleup.yml")]
    return setup


def _bad_schema(text: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        (d / "bad.schema.json").write_text(text, "utf-8")
        return ["--schema", str(d / "bad.schema.json")]
    return setup


def _unwritable_out(d: Path) -> list[str]:
    (d / "afile").write_text("a regular file\n")
    return ["--out-dir", "afile/sub"]


_TMPFS = "tmpfs-out"


def _tmpfs_setup(d: Path) -> list[str]:
    m = d / _TMPFS
    m.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(m)], check=True,
                   capture_output=True)
    return ["--out-dir", _TMPFS]


def _tmpfs_teardown(d: Path) -> None:
    subprocess.run(["umount", "-l", str(d / _TMPFS)], capture_output=True)


def _can_mount() -> str | None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return "needs root to mount a small tmpfs"
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", t],
                           capture_output=True)
        if r.returncode != 0:
            return "cannot mount a tmpfs here"
        subprocess.run(["umount", t], capture_output=True)
    return None


def _has_memory_enforcement() -> str | None:
    if not sys.platform.startswith("linux"):
        return "memory enforcement tests need Linux"
    return None


def _root_nproc_note() -> str | None:
    return None


def _missing(d: Path) -> Path:
    return d / "no-such-data.jsonl"


def _ambiguous(d: Path) -> Path:
    p = d / "two-lists.json"
    p.write_text(json.dumps({"train": rows(5), "test": rows(5)}))
    return p


def _gzip_named_jsonl() -> bytes:
    return gzip.compress(jsonl_bytes(rows()))


SEC = signal.SIGINT

_py = sys.executable

CASES: list[Case] = [
    # -------------------------------------------------------------- crashes and exits
    Case("segfault", "SIGSEGV at stage 10", 1, "crashed (SIGSEGV)", mode="segfault", at=10,
         status="failed", stage="10", killed_by="signal", cause="crash", intact=("mini",)),
    Case("abort", "abort() (SIGABRT) with no memory message", 1, "crashed (SIGABRT)",
         mode="abort", at=50, status="failed", stage="50", killed_by="signal", cause="crash",
         intact=("mini", "10")),
    Case("script-error", "uncaught KeyError, exit 1", 1, "exited with code 1", mode="exit1",
         at=10, status="failed", stage="10", killed_by=None, cause="script-error",
         intact=("mini",)),
    Case("bare-sigkill", "SIGKILL with no evidence of memory trouble", 1, "SIGKILL",
         mode="self-sigkill", at=10, status="failed", stage="10", killed_by="signal",
         cause="signal", intact=("mini",),
         check=lambda o: _evidence_has(o, "10", "no sign of a memory failure")),
    Case("sigterm-self", "terminated by SIGTERM from elsewhere", 1, "terminated (SIGTERM)",
         mode="self-sigterm", at=10, status="failed", stage="10", killed_by="signal",
         cause="signal", intact=("mini",)),
    Case("command-not-found", "the command's program does not exist: exit 2 before any stage",
         2, "/no/such/program does not exist", mode=None,
         command="/no/such/program {input} {output}"),
    Case("program-not-on-path", "a misspelt program name: exit 2 with a did-you-mean", 2,
         "did you mean 'python3'", mode=None, command="pyhton3 {input} {output}"),
    Case("command-not-found-shell", "shell: true, program missing: the shell says so at mini",
         1, "not found", mode=None, command="no-such-program-xyz {input} {output}",
         args=("--shell",), status="failed", stage="mini", cause="script-error"),
    # -------------------------------------------------------------- memory
    Case("alloc-600-under-400", "really allocates 600 MiB under a 400 MiB limit", 3,
         "memory limit", mode="alloc", at=10, args=("--memory-limit", "400MiB"),
         status="failed", stage="10", killed_by="memory", cause="memory", intact=("mini",),
         check=_peak_check, needs=_has_memory_enforcement),
    Case("four-workers", "4 workers of 200 MiB each under a 400 MiB limit", 3, "memory limit",
         mode="workers", at=10, args=("--memory-limit", "400MiB"), status="failed", stage="10",
         killed_by="memory", cause="memory", intact=("mini",), needs=_has_memory_enforcement),
    Case("alloc-rlimit-data", "600 MiB under 400 MiB with memory-enforcement rlimit-data", 3,
         "MemoryError", mode="alloc", at=10,
         args=("--memory-limit", "400MiB", "--memory-enforcement", "rlimit-data"),
         status="failed", stage="10", killed_by="memory", cause="memory", intact=("mini",),
         needs=_has_memory_enforcement),
    Case("memoryerror-caught", "catches MemoryError, exits 0 with fine-looking output", 3,
         "ran out of memory although the script exited 0", mode="memoryerror-caught", at=10,
         status="failed", stage="10", killed_by="memory", cause="memory", intact=("mini",)),
    Case("memoryerror", "uncaught MemoryError", 3, "MemoryError", mode="memoryerror", at=50,
         status="failed", stage="50", killed_by="memory", cause="memory",
         intact=("mini", "10")),
    Case("bad-alloc", "std::bad_alloc then abort() (SIGABRT)", 3, "bad_alloc",
         mode="bad-alloc", at=10, status="failed", stage="10", killed_by="memory",
         cause="memory", intact=("mini",)),
    # -------------------------------------------------------------- cpu, deadline, processes
    Case("cpu-limit", "busy loop under cpu-limit 2s", 3, "CPU-time limit", mode="busy", at=10,
         args=("--cpu-limit", "2s"), status="failed", stage="10", killed_by="cpu", cause="cpu",
         intact=("mini",),
         check=lambda o: _evidence_has(o, "10", "SIGXCPU")),
    Case("deadline", "hangs at stage 10", 3, "time limit", mode="hang", at=10, budget=8,
         status="failed", stage="10", killed_by="deadline", cause="deadline", intact=("mini",)),
    Case("deadline-ignores-sigterm", "hangs and ignores SIGTERM", 3, "time limit",
         mode="hang-ignore-term", at=10, budget=8, args=("--grace-period", "1s"),
         status="failed", stage="10", killed_by="deadline", cause="deadline", intact=("mini",)),
    Case("fork-bomb", "forks 300 sleeping children under max-processes 50", 3,
         "max-processes", mode="forker", at=10, args=("--max-processes", "50"),
         status="failed", stage="10", killed_by="processes", cause="processes",
         intact=("mini",)),
    # -------------------------------------------------------------- process hygiene, output volume
    Case("print-1gib", "prints 1 GiB to stdout (log-max-bytes 10MiB)", 0, "effective configuration",
         mode="print-1gib", at=10, budget=40, args=("--log-max-bytes", "10MiB"),
         stages="mini,10", status="stopped-early", check=_log_cap_check),
    Case("child-floods-pipe", "a child writes 50 MiB to the inherited stdout nobody reads", 0,
         "effective configuration", mode="child-floods-pipe", at=10, stages="mini,10",
         args=("--log-max-bytes", "1MiB"), status="stopped-early"),
    Case("setsid-helper", "a helper calls setsid and keeps the output pipe open", 0,
         "effective configuration", mode="setsid-helper", at=10, stages="mini,10",
         status="stopped-early",
         check=_quick_stage("10", 5.0)),
    Case("grandchild", "a grandchild is left running after the script exits", 0,
         "effective configuration", mode="grandchild", stages="mini,10", status="stopped-early"),
    # -------------------------------------------------------------- output
    Case("output-not-json", "the output file is CSV, not JSON", 1, "line 1", mode="not-json",
         at=10, status="failed", stage="10", intact=("mini",)),
    Case("output-missing", "the script writes no output file", 1, "output", mode="no-output",
         at=10, status="failed", stage="10", intact=("mini",)),
    Case("wrong-count", "2 records short", 1, "records", mode="short", at=50, status="failed",
         stage="50", intact=("mini", "10")),
    Case("nan-in-output", "a record with NaN", 1, "NaN", mode="nan", at=10, status="failed",
         stage="10", intact=("mini",)),
    Case("fail-fast", "record 1 invalid while the script would run 10 s more", 1,
         "first invalid record", mode="invalid-slow", at=50, status="failed", stage="50",
         killed_by="invalid-output", intact=("mini", "10"), check=_fail_fast_check),
    Case("redact", "a secret on stdout and stderr, then exit 1", 1, "exited with code 1",
         mode="secret", at=10, args=("--redact", r"sk-SECRET-[0-9]+"), status="failed",
         stage="10", intact=("mini",), check=_redact_check),
    # -------------------------------------------------------------- bad input and configuration
    Case("schema-invalid", "the schema itself is invalid", 2, "bad.schema.json",
         schema=False, setup=_bad_schema('{"type": "nope"}')),
    Case("schema-not-json", "the schema file is not JSON", 2, "bad.schema.json", schema=False,
         setup=_bad_schema('{"type": "object",')),
    Case("missing-dataset", "full-file does not exist", 2, "no-such-data.jsonl", data=_missing),
    Case("empty-dataset", "full-file is empty", 2, "empty.jsonl", data=_data("empty.jsonl", b"")),
    Case("unwritable-out-dir", "out-dir lies under a regular file", 2, "out-dir",
         setup=_unwritable_out),
    Case("yaml-duplicate-key", "time-budget twice in scaleup.yml", 2, "line 2",
         setup=_cfg("time-budget: 20s\ntime-budget: 30s\n"), budget_on_cli=False),
    Case("yaml-sexagesimal", "time-budget: 1:30 (YAML 1.1 reads it as 90)", 2, "ambiguous",
         setup=_cfg("time-budget: 1:30\n"), budget_on_cli=False),
    Case("unknown-key", "time-budgt in scaleup.yml", 2, "did you mean",
         setup=_cfg("time-budgt: 20s\n")),
    Case("stage-name-escape", "a stage named ../../x", 2, "stages",
         args=("--stages", "mini,../../x"), check=_nothing_escaped),
    Case("out-dir-outside-cwd", "out-dir ../elsewhere is the user's choice; stages stay in it", 0,
         "effective configuration", args=("--out-dir", "../elsewhere-out"), status="stopped-early",
         check=_stages_inside),
    # -------------------------------------------------------------- datasets
    Case("dataset-utf8-bom", "a UTF-8 BOM at the start", 0, "effective configuration",
         data=_data("bom.jsonl", lambda: b"\xef\xbb\xbf" + jsonl_bytes(rows())),
         status="stopped-early"),
    Case("dataset-utf16", "UTF-16 text", 2, "UTF-16",
         data=_data("u16.jsonl", lambda: jsonl_bytes(rows()).decode().encode("utf-16"))),
    Case("dataset-gzip-as-jsonl", "gzip data under a .jsonl name", 0, "effective configuration",
         data=_data("gz.jsonl", _gzip_named_jsonl), status="stopped-early"),
    Case("dataset-crlf", "CRLF line ends", 0, "effective configuration",
         data=_data("crlf.jsonl", lambda: jsonl_bytes(rows(), nl="\r\n")), status="stopped-early"),
    Case("dataset-blank-lines", "blank lines between records", 0, "effective configuration",
         data=_data("blank.jsonl", lambda: jsonl_bytes(rows(), nl="\n\n")), status="stopped-early"),
    Case("dataset-no-final-newline", "no newline after the last record", 0,
         "effective configuration",
         data=_data("nofinal.jsonl", lambda: jsonl_bytes(rows())[:-1]), status="stopped-early"),
    Case("dataset-u2028", "U+2028 inside strings", 0, "effective configuration",
         data=_data("u2028.jsonl", lambda: jsonl_bytes(
             [{**r, "text": "a\u2028b\u2029c"} for r in rows()], ensure_ascii=False)),
         status="stopped-early"),
    Case("dataset-ambiguous", "a JSON object with two lists and no examples-key", 2,
         "examples-key", data=_ambiguous),
    # -------------------------------------------------------------- cancellation, kill -9, disk
    Case("sigint-mid-stage", "SIGINT to the CLI during stage 50", 130, "SIGINT received",
         mode="sleep", at=50, signals=(signal.SIGINT,), status="cancelled", stage="50",
         killed_by="cancelled", cause="cancelled", intact=("mini", "10"), check=_cancel_check),
    Case("sigterm-mid-stage", "SIGTERM to the CLI during stage 50", 130, "SIGTERM received",
         mode="sleep", at=50, signals=(signal.SIGTERM,), status="cancelled", stage="50",
         killed_by="cancelled", cause="cancelled", intact=("mini", "10"), check=_cancel_check),
    Case("sighup-mid-stage", "SIGHUP to the CLI during stage 50", 130, "SIGHUP received",
         mode="sleep", at=50, signals=(signal.SIGHUP,), status="cancelled", stage="50",
         killed_by="cancelled", cause="cancelled", intact=("mini", "10"), check=_cancel_check),
    Case("second-sigint", "SIGINT twice: the stage ignores SIGTERM; the second stops it now", 130,
         "killing the stage now", mode="hang-ignore-term", at=50,
         signals=(signal.SIGINT, signal.SIGINT), signal_gap=0.2, args=("--grace-period", "5s"),
         status="cancelled", stage="50", killed_by="cancelled", intact=("mini", "10"),
         check=_second_signal_check),
    Case("kill-9-tool", "kill -9 of scaleup-ci itself during stage 50", -9, "",
         mode="hang", at=50, signals=(signal.SIGKILL,), status=UNSET, stage="50",
         check=_kill9_check),
    Case("disk-full", "out-dir on a 12 MiB tmpfs; stage 50 would need ~25 MiB", 3,
         "not enough disk space for stage 50", mode="big-records", schema=False,
         setup=_tmpfs_setup, teardown=_tmpfs_teardown, status="failed", intact=("mini", "10"),
         needs=_can_mount),
]

assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
_ = (resource, _py, SEC, _root_nproc_note)
