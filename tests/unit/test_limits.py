"""Choosing limits, the rlimit trampoline and killing process groups (real subprocesses)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from scaleup_ci import limits as lm
from scaleup_ci.errors import ConfigError
from scaleup_ci.hardware import CgroupInfo, Hardware

GIB = 1024**3
MIB = 1024**2
UNLIMITED = {"data": None, "as": None, "cpu": None}


def hw(memory: int = 16 * GIB, cpus: float = 4.0, cgroup: CgroupInfo | None = None) -> Hardware:
    return Hardware(
        cpus=cpus,
        memory_bytes=memory,
        gpus=(),
        disk_free_bytes=None,
        runner={},
        sources={"cpus": "test", "memory_bytes": "test"},
        cgroup=cgroup,
    )


def choose(**kw: object) -> lm.Limits:
    args: dict[str, object] = {"memory_limit": None, "cpu_limit": None, "hard_limits": UNLIMITED}
    args.update(kw)
    machine = args.pop("hw", hw())
    return lm.choose_limits(machine, platform="linux", **args)  # type: ignore[arg-type]


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, **kw)  # type: ignore[call-overload, no-any-return]


# --------------------------------------------------------------------------- choose_limits


def test_auto_memory_keeps_ten_percent_headroom() -> None:
    """Auto memory on a 16 GiB machine is 16 GiB minus 10% (more than 1 GiB)."""
    limits = choose(hw=hw(16 * GIB))
    assert limits.memory_bytes == 16 * GIB - int(16 * GIB * 0.10)
    assert limits.memory_source.startswith("auto: 16.0 GiB detected - headroom 1.6 GiB")


def test_auto_memory_keeps_at_least_one_gib() -> None:
    """Auto memory on a 4 GiB machine keeps the 1 GiB minimum headroom."""
    assert choose(hw=hw(4 * GIB)).memory_bytes == 3 * GIB


def test_auto_mode_on_linux_is_rlimit_data_and_watchdog() -> None:
    """On Linux the auto mode sets RLIMIT_DATA per process and watches the tree's RSS."""
    limits = choose(memory_limit=2 * GIB)
    assert limits.mode == "rlimit-data+watchdog"
    assert (limits.data_bytes, limits.as_bytes, limits.watchdog_bytes) == (2 * GIB, None, 2 * GIB)
    assert limits.memory_source == "explicit"
    assert limits.enforcement["memory"].startswith("RLIMIT_DATA=2.0 GiB per process (set in the child")
    assert "sampling every 0.1 s" in limits.enforcement["memory"]


def test_rlimit_as_only_when_asked() -> None:
    """RLIMIT_AS is used only when the mode asks for it (the short alias works too)."""
    limits = choose(memory_limit=2 * GIB, mode="rlimit-as")
    assert limits.mode == "rlimit-as+watchdog"
    assert (limits.data_bytes, limits.as_bytes) == (None, 2 * GIB)


def test_zero_memory_limit_means_none() -> None:
    """memory_limit=0 turns memory enforcement off."""
    limits = choose(memory_limit=0)
    assert (limits.memory_bytes, limits.mode, limits.watchdog_bytes) == (None, "none", None)
    assert limits.enforcement["memory"] == "none"


def test_non_linux_falls_back_to_watchdog_with_warning() -> None:
    """Off Linux, memory is enforced by the watchdog only, and a warning says so."""
    limits = lm.choose_limits(
        hw(), memory_limit=None, cpu_limit=None, hard_limits=UNLIMITED, platform="darwin"
    )
    assert limits.mode == "watchdog"
    assert limits.data_bytes is None
    assert any("watchdog" in w for w in limits.warnings)


def test_cgroup_mode_falls_back_with_reason(tmp_path: Path) -> None:
    """Asking for cgroup enforcement where v2 has no delegated memory controller falls back."""
    (tmp_path / "cgroup.subtree_control").write_text("cpu pids\n")
    cg = CgroupInfo(version=2, memory_dir=tmp_path, writable=True)
    ok, why = lm.cgroup_available(hw(cgroup=cg))
    assert not ok and why
    limits = choose(hw=hw(cgroup=cg), mode="cgroup")
    assert limits.mode == "rlimit-data+watchdog"
    assert any("cgroup" in w for w in limits.warnings)


def test_unknown_mode_is_config_error() -> None:
    """An unknown mode is a configuration error listing the valid modes."""
    with pytest.raises(ConfigError, match="unknown limit mode 'cgroups'"):
        choose(mode="cgroups")


def test_memory_rlimit_clamped_to_inherited_hard_limit() -> None:
    """A memory rlimit above the inherited hard limit is clamped, with a warning, not a crash."""
    limits = choose(memory_limit=4 * GIB, hard_limits={"data": GIB, "as": None, "cpu": None})
    assert limits.memory_bytes == 4 * GIB
    assert limits.data_bytes == GIB
    assert any("clamped to 1.0 GiB" in w for w in limits.warnings)


def test_cpu_limit_clamped_to_inherited_hard_limit() -> None:
    """An explicit CPU limit above the inherited hard RLIMIT_CPU is clamped with a warning."""
    limits = choose(cpu_limit=1000, hard_limits={"data": None, "as": None, "cpu": 100})
    assert limits.cpu_seconds == 95
    assert any("RLIMIT_CPU" in w for w in limits.warnings)


def test_to_dict_has_the_report_fields() -> None:
    """to_dict has the report's limits fields, including how each limit is enforced."""
    d = choose(memory_limit=GIB, cpu_limit=60).to_dict()
    assert d["memory_bytes"] == GIB
    assert d["cpu_seconds"] == 60
    assert d["mode"] == "rlimit-data+watchdog"
    assert d["enforcement"]["cpu"].startswith("RLIMIT_CPU soft=60 s hard=soft+5 per process")


# --------------------------------------------------------------------------- CPU per stage


def test_auto_cpu_seconds_scale_with_stage_time_and_cpus() -> None:
    """Auto CPU limit is ceil(stage seconds x max(1, cpus) x 1.5) + 5."""
    limits = choose()
    assert lm.cpu_seconds_for_stage(limits, 100.0, 4.0) == 605
    assert lm.cpu_seconds_for_stage(limits, 10.0, 0.5) == 20


def test_explicit_cpu_seconds_win() -> None:
    """An explicit CPU limit is used for every stage."""
    assert lm.cpu_seconds_for_stage(choose(cpu_limit=30.2), 1000.0, 8.0) == 31


def test_zero_cpu_limit_means_no_rlimit() -> None:
    """cpu_limit=0 sets no RLIMIT_CPU at all."""
    assert lm.cpu_seconds_for_stage(choose(cpu_limit=0), 100.0, 4.0) is None


# --------------------------------------------------------------------------- trampoline


def test_trampoline_argv_shape() -> None:
    """The trampoline runs isolated by absolute path, flags first, then -- and the command."""
    argv = lm.trampoline_argv(["echo", "hi"], data_bytes=10, as_bytes=None, cpu_seconds=7)
    assert argv[:3] == [sys.executable, "-I", "-S"]
    assert Path(argv[3]).is_absolute() and argv[3].endswith("_trampoline.py")
    assert argv[4:] == ["--data", "10", "--cpu", "7", "--", "echo", "hi"]


def test_trampoline_sets_rlimit_data_and_cpu() -> None:
    """The child sees RLIMIT_DATA soft=hard=N and RLIMIT_CPU soft=M, hard=M+5."""
    probe = "import resource as r; print(r.getrlimit(r.RLIMIT_DATA), r.getrlimit(r.RLIMIT_CPU))"
    argv = lm.trampoline_argv(
        [sys.executable, "-c", probe], data_bytes=300 * MIB, as_bytes=None, cpu_seconds=30
    )
    out = run(argv)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"({300 * MIB}, {300 * MIB}) (30, 35)"


def test_rlimit_data_stops_a_large_allocation() -> None:
    """Under RLIMIT_DATA=200 MiB a 400 MiB bytearray fails with MemoryError."""
    argv = lm.trampoline_argv(
        [sys.executable, "-c", "bytearray(400 * 1024 * 1024)"],
        data_bytes=200 * MIB,
        as_bytes=None,
        cpu_seconds=None,
    )
    out = run(argv)
    assert out.returncode != 0
    assert "MemoryError" in out.stderr


def test_rlimit_data_lets_a_small_script_run() -> None:
    """Under RLIMIT_DATA=200 MiB a small Python script runs normally."""
    argv = lm.trampoline_argv(
        [sys.executable, "-c", "print(1)"], data_bytes=200 * MIB, as_bytes=None, cpu_seconds=None
    )
    out = run(argv)
    assert (out.returncode, out.stdout, out.stderr) == (0, "1\n", "")


def test_trampoline_clamps_to_inherited_hard_limit() -> None:
    """A limit above the inherited hard limit is clamped to it instead of failing."""
    inner = lm.trampoline_argv(
        [sys.executable, "-c", "import resource as r; print(r.getrlimit(r.RLIMIT_DATA)[1])"],
        data_bytes=GIB,
        as_bytes=None,
        cpu_seconds=None,
    )
    outer = lm.trampoline_argv(inner, data_bytes=300 * MIB, as_bytes=None, cpu_seconds=None)
    out = run(outer)
    assert (out.returncode, out.stdout.strip(), out.stderr) == (0, str(300 * MIB), "")


def test_missing_command_exits_127_with_message() -> None:
    """A command that does not exist exits 127 with a one-line message naming it."""
    argv = lm.trampoline_argv(["no-such-cmd-xyz"], data_bytes=None, as_bytes=None, cpu_seconds=5)
    out = run(argv)
    assert out.returncode == 127
    assert out.stderr == "scaleup-ci: command not found: no-such-cmd-xyz\n"


def test_non_executable_command_exits_126(tmp_path: Path) -> None:
    """A file that is not executable exits 126 with a one-line message naming it."""
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    argv = lm.trampoline_argv([str(script)], data_bytes=None, as_bytes=None, cpu_seconds=None)
    out = run(argv)
    assert out.returncode == 126
    assert out.stderr.count("\n") == 1 and str(script) in out.stderr


def test_trampoline_restores_lc_ctype_from_env() -> None:
    """The interpreter's C-locale coercion does not leak LC_CTYPE into the command."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "", "LANG": "C"}
    argv = lm.trampoline_argv(
        ["sh", "-c", 'echo "[${LC_CTYPE-unset}]"'],
        data_bytes=None,
        as_bytes=None,
        cpu_seconds=None,
        env=env,
    )
    out = run(argv, env=env)
    assert out.stdout == "[unset]\n"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_trampoline_restores_default_sigpipe() -> None:
    """The command starts with no signals ignored (Python's ignored SIGPIPE is undone)."""
    argv = lm.trampoline_argv(
        ["grep", "SigIgn", "/proc/self/status"], data_bytes=None, as_bytes=None, cpu_seconds=None
    )
    out = run(argv)
    mask = int(out.stdout.split()[1], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not mask & (1 << (sig - 1)), f"{sig.name} is still ignored (SigIgn {mask:#x})"


def test_wrap_argv_uses_the_limits() -> None:
    """wrap_argv adds the mode's rlimits, and leaves the command alone when nothing applies."""
    limits = choose(memory_limit=GIB)
    wrapped = lm.wrap_argv(limits, ["true"], cpu_seconds=9)
    assert wrapped[4:] == ["--data", str(GIB), "--cpu", "9", "--", "true"]
    assert lm.wrap_argv(choose(memory_limit=0), ["true"], cpu_seconds=None) == ["true"]


# --------------------------------------------------------------------------- killing


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def wait_for(pred: object, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


class Spawner:
    """Starts shells in their own sessions and kills whatever is left of them afterwards."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []

    def start(self, script: str, tree_size: int) -> list[int]:
        p = subprocess.Popen(["sh", "-c", script], start_new_session=True)
        self.procs.append(p)
        assert wait_for(lambda: len(lm.tree_pids(p.pid)) >= tree_size), "tree did not start"
        pids = lm.tree_pids(p.pid)
        self.pids.extend(pids)
        return pids

    def cleanup(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    spawner = Spawner()
    yield spawner
    spawner.cleanup()


def test_kill_group_kills_background_grandchild(spawn: Spawner) -> None:
    """Killing the group also stops a grandchild the shell put in the background."""
    pids = spawn.start("sleep 100 & sleep 100", 3)
    t = time.monotonic()
    lm.kill_process_group(pids[0], grace=2.0)
    assert time.monotonic() - t < 1.0  # sleep exits on SIGTERM: no need to wait out the grace
    assert wait_for(lambda: all(gone(p) for p in pids))


def test_kill_group_kills_listed_setsid_escapee(spawn: Spawner) -> None:
    """A grandchild that left the group with setsid is killed when its pid is listed."""
    pids = spawn.start("setsid sleep 100 & sleep 100", 3)

    def escaped() -> bool:
        return any(_sid(p) == p for p in pids[1:])

    assert wait_for(escaped), "setsid did not start a new session"
    lm.kill_process_group(pids[0], pids, grace=1.0)
    assert wait_for(lambda: all(gone(p) for p in pids))


def test_kill_group_escalates_to_sigkill(spawn: Spawner) -> None:
    """Processes that ignore SIGTERM are SIGKILLed once the grace period is over."""
    pids = spawn.start("trap '' TERM; sleep 100 & sleep 100", 3)
    t = time.monotonic()
    lm.kill_process_group(pids[0], grace=0.3)
    assert 0.25 <= time.monotonic() - t < 1.5
    assert wait_for(lambda: all(gone(p) for p in pids))


def test_kill_group_refuses_own_group() -> None:
    """Asking to kill the caller's own process group is refused."""
    with pytest.raises(ValueError, match="own process group"):
        lm.kill_process_group(os.getpgrp(), grace=0.1)


def test_kill_group_tolerates_missing_group() -> None:
    """A group that is already gone is not an error."""
    p = subprocess.Popen(["true"], start_new_session=True)
    p.wait()
    lm.kill_process_group(p.pid, grace=0.1)


def test_tree_pids_of_missing_process_is_empty() -> None:
    """tree_pids of a process that no longer exists is an empty list."""
    p = subprocess.Popen(["true"])
    p.wait()
    assert lm.tree_pids(p.pid) == []


def test_auto_mode_prefers_a_writable_v1_memory_cgroup(tmp_path: Path) -> None:
    """With a writable (fake) v1 memory cgroup, auto chooses cgroup and records where."""
    cg = CgroupInfo(version=1, memory_dir=tmp_path, writable=True)
    limits = choose(hw=hw(cgroup=cg), cgroup_probe=False)
    assert limits.mode == "cgroup"
    assert limits.cgroup_dir == tmp_path and limits.cgroup_version == 1
    assert "memory.limit_in_bytes" in limits.enforcement["memory"]
    assert limits.data_bytes is None and limits.as_bytes is None
    assert limits.to_dict()["cgroup"] == str(tmp_path)


def test_cgroup_probe_failure_falls_back_to_rlimit_data(tmp_path: Path) -> None:
    """When a child cgroup cannot be created, auto uses RLIMIT_DATA and says why in the report."""
    cg = CgroupInfo(version=1, memory_dir=tmp_path / "missing", writable=True)
    limits = choose(hw=hw(cgroup=cg))
    assert limits.mode == "rlimit-data+watchdog"
    assert "cannot create" in limits.enforcement["cgroup"]


def test_stage_cgroup_reads_counters_from_a_fake_v1_dir(tmp_path: Path) -> None:
    """StageCgroup writes the limit and reads the OOM counter, failcnt and peak (v1 names)."""
    cg = lm.StageCgroup.create(tmp_path, 1, "mini", 123 * 2**20)
    assert (cg.path / "memory.limit_in_bytes").read_text() == str(123 * 2**20)
    (cg.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (cg.path / "memory.failcnt").write_text("7\n")
    (cg.path / "memory.max_usage_in_bytes").write_text("4096\n")
    (cg.path / "cgroup.procs").write_text("")
    assert cg.oom_kills() == 2 and cg.failcnt() == 7
    assert cg.peak()[0] == 4096 and "max_usage_in_bytes" in cg.peak()[1]
    for f in cg.path.iterdir():
        f.unlink()
    assert cg.remove()


def test_stage_cgroup_v2_counters(tmp_path: Path) -> None:
    """v2: memory.max is written; oom_kill and max from memory.events, peak from memory.peak."""
    cg = lm.StageCgroup.create(tmp_path, 2, "10", 5 * 2**20)
    assert (cg.path / "memory.max").read_text() == str(5 * 2**20)
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (cg.path / "memory.peak").write_text("999\n")
    assert cg.oom_kills() == 1 and cg.failcnt() == 3 and cg.peak()[0] == 999


def test_trampoline_joins_the_cgroup_procs_file(tmp_path: Path) -> None:
    """--cgroup writes the trampoline's own pid (the exec'd command's pid) into the file."""
    procs = tmp_path / "cgroup.procs"
    argv = lm.trampoline_argv([sys.executable, "-c", "import os; print(os.getpid())"],
                              data_bytes=None, as_bytes=None, cpu_seconds=None,
                              cgroup_procs=procs)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    assert procs.read_text() == out


# --------------------------------------------------------------------------- classification

def _classified(status: int | None, stderr: bytes = b"", our_kill: str | None = None,
                **kw: object) -> object:
    from scaleup_ci.runner import StageResult, _classify

    res = StageResult(name="10", n=10)
    _classify(res, stderr, our_kill, None, status, **kw)  # type: ignore[arg-type]
    return res


def test_bare_sigkill_is_signal_not_memory() -> None:
    """A SIGKILL without an OOM counter or a memory message is `signal`, with the evidence said."""
    res = _classified(-9, have_oom_counter=True)
    assert res.killed_by == "signal" and res.cause == "signal"  # type: ignore[attr-defined]
    assert "did not rise" in res.evidence[0]  # type: ignore[attr-defined]


def test_sigkill_with_cgroup_oom_kill_is_memory() -> None:
    """A rise of the stage cgroup's OOM-kill counter makes the SIGKILL a memory kill."""
    res = _classified(-9, oom_kills=1, have_oom_counter=True)
    assert res.killed_by == "memory" and res.cause == "memory"  # type: ignore[attr-defined]


def test_sigabrt_with_bad_alloc_is_memory_plain_abort_is_crash() -> None:
    """SIGABRT after std::bad_alloc is memory; SIGABRT alone and SIGSEGV are crashes."""
    assert _classified(-6, b"what():  std::bad_alloc").cause == "memory"  # type: ignore[attr-defined]
    assert _classified(-6).cause == "crash"  # type: ignore[attr-defined]
    assert _classified(-11).cause == "crash"  # type: ignore[attr-defined]


def test_exit_zero_with_memoryerror_is_memory_and_not_ok() -> None:
    """A script that logs a MemoryError and exits 0 is classified memory and the stage is not ok."""
    res = _classified(0, b"Traceback ...\nMemoryError\n")
    res.valid = True  # type: ignore[attr-defined]
    res.exit_code = 0  # type: ignore[attr-defined]
    assert res.cause == "memory" and not res.ok  # type: ignore[attr-defined]


def test_sigxcpu_is_cpu_and_exit_1_is_script_error() -> None:
    """SIGXCPU is the CPU limit; a plain non-zero exit is a script error."""
    assert _classified(-24).cause == "cpu"  # type: ignore[attr-defined]
    assert _classified(1).cause == "script-error"  # type: ignore[attr-defined]


def test_single_threaded_sees_a_second_thread() -> None:
    """single_threaded() turns False while another thread runs, so preexec_fn is not used then."""
    import threading

    from scaleup_ci.limits import single_threaded

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert single_threaded() is False
    finally:
        stop.set()
        t.join()


def test_child_setup_applies_limits_before_exec() -> None:
    """The preexec_fn sets RLIMIT_DATA and RLIMIT_CPU (soft < hard) in the child before exec."""
    import subprocess
    import sys

    from scaleup_ci.limits import child_setup

    setup = child_setup(data_bytes=300 * 2**20, as_bytes=None, cpu_seconds=7)
    out = subprocess.run(
        [sys.executable, "-c",
         "import resource as r; print(r.getrlimit(r.RLIMIT_DATA), r.getrlimit(r.RLIMIT_CPU))"],
        preexec_fn=setup, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"({300 * 2**20}, {300 * 2**20}) (7, 12)"
