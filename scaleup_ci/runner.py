"""Run one stage: spawn the user's command, watch it, stop it at its limit, collect the result.

The child starts in its own session through the rlimit trampoline. One loop (no threads) drains
stdout and stderr into complete log files, echoes them with a stage prefix, samples the process
tree, follows the output file as records land, and enforces the deadline and the memory limit.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaleup_ci import limits as limits_mod
from scaleup_ci.errors import ConfigError
from scaleup_ci.monitor import TreeMonitor
from scaleup_ci.report import tail_bytes
from scaleup_ci.validate import RecordValidator, StreamValidator, ValidationResult, validate_output

PLACEHOLDERS = ("input", "output", "n", "stage", "full")
_PLACEHOLDER_RE = re.compile(r"\{(input|output|n|stage|full)\}")
_SAMPLE_EVERY = 0.1
#: The first process-tree sample comes this long after the start, not at once: a sample scans
#: every process of the machine (~2-3 ms), and a stage that ends sooner needs none (its peak comes
#: from the cgroup's high-water mark or wait4's ru_maxrss, its CPU time from wait4).
_FIRST_SAMPLE = 0.02
_ECHO_CAP = 1 << 20  # bytes echoed per stream per stage; the log files keep everything
_FOLLOW_CHUNK = 1 << 20  # bytes read at a time from the output file being followed
_FOLLOW_PER_POLL = 16 << 20  # bytes validated per loop pass while the script runs
_HEAD = 1 << 16  # bytes looked at to tell JSONL from a JSON document
_MAX_LINE = 64 << 20  # an output line longer than this is not buffered (and not valid)
_OVERLONG = b"\x00 line too long"  # stands in for such a line: it fails to parse
_INCREMENTAL_MIN_SPAN = 0.25  # seconds over which records must arrive to count as incremental
CANCEL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL when the run is cancelled
#: The cgroup's hard limit sits this much above the tree watchdog's limit: a tree that grows
#: steadily is stopped by the watchdog (a clean kill with evidence), never left stalling in
#: reclaim at the cgroup limit; the kernel's OOM killer catches spikes the sampling misses.
CGROUP_HEADROOM = 1.1
CGROUP_STALL = 1.0  # seconds a stage may sit at its cgroup memory limit before it is stopped

# stderr patterns that reveal a memory failure the exit code hides.
MEMORY_PATTERNS = (
    re.compile(rb"MemoryError"),
    re.compile(rb"std::bad_alloc"),
    re.compile(rb"CUDA out of memory"),
    re.compile(rb"Cannot allocate memory"),
    re.compile(rb"out of memory", re.IGNORECASE),
    re.compile(rb"Unable to allocate"),
)


def build_argv(command: str, values: Mapping[str, str], *, shell: bool) -> list[str]:
    """Substitute the placeholders and return the argv to start.

    Without a shell the command is split with shlex first and each placeholder becomes exactly the
    value (one argument, never re-split). With ``shell`` the values are shell-quoted into the
    string, which runs under ``/bin/sh -c``.
    """
    def sub(text: str, quote: bool) -> str:
        return _PLACEHOLDER_RE.sub(
            lambda m: shlex.quote(values[m.group(1)]) if quote else values[m.group(1)], text
        )

    if shell:
        return ["/bin/sh", "-c", sub(command, True)]
    try:
        tokens = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            f"command: cannot split {command!r}: {exc}",
            hint="check the quotes in `command`, or set `shell: true` to run it under /bin/sh",
        ) from None
    if not tokens:
        raise ConfigError("command: is empty", hint="set `command` to the script to run")
    return [sub(tok, False) for tok in tokens]


@dataclass
class StageSpec:
    """Everything needed to run one stage."""

    name: str
    n: int
    command: str
    shell: bool
    cwd: Path
    stage_dir: Path
    input_path: Path
    output_path: Path
    full_path: Path
    base_env: Mapping[str, str]
    kill_at: float  # time.monotonic() at which SIGTERM is sent
    grace: float
    memory_limit: int | None = None
    watchdog: bool = True
    rlimit_data: int | None = None
    rlimit_as: int | None = None
    cpu_seconds: int | None = None
    log_max_bytes: int = 1 << 30
    validator: RecordValidator | None = None
    target: str = "record"
    expected: int | None = None
    fail_fast: bool = True
    max_errors: int = 5
    predicted_seconds: float | None = None
    limit_seconds: float | None = None
    redact: Sequence[re.Pattern[bytes]] = ()
    on_progress: Callable[[StageProgress], None] | None = None
    # A script that stops itself near SCALEUP_DEADLINE with a valid prefix (exit 0, fewer
    # records than examples) keeps that prefix as a partial result instead of failing the count.
    allow_partial: bool = False
    # time.monotonic() by which the stage must be over, its output validated: a stage that may
    # end partial is stopped early when validating its backlog would not fit before it.
    finish_by: float | None = None
    # How limits reach the child: "auto" (directly while single-threaded, else the trampoline),
    # "direct" or "trampoline".
    spawn: str = "auto"
    cgroup_dir: Path | None = None  # parent memory cgroup: run the stage in a child of it
    cgroup_version: int | None = None
    max_processes: int | None = None  # stop the stage when its tree holds more processes


@dataclass
class StageProgress:
    """A live view of a running stage, for the progress line."""

    name: str
    n: int
    elapsed: float
    records: int
    rss_bytes: int
    seconds_left: float


@dataclass
class StageResult:
    """What happened in one stage. ``to_dict`` is the report.json entry."""

    name: str
    n: int
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_rss_source: str = "sampled"
    exit_code: int | None = None
    signal: str | None = None
    valid: bool = False
    records: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    problem: str | None = None
    killed_by: str | None = None
    cause: str = "ok"
    evidence: list[str] = field(default_factory=list)
    partial: bool = False
    incremental: bool = False
    # Seconds per record late in the stage over early in it (records written as they go).
    slowdown: float | None = None
    fail_fast: bool = False
    predicted_seconds: float | None = None
    limit_seconds: float | None = None
    remaining_at_start: float | None = None  # budget left (to the work end) when it started
    skipped: bool = False
    stage_dir: str = ""
    input_path: str = ""
    output_path: str = ""
    stdout_path: str = ""
    stderr_path: str = ""
    log_truncated: bool = False
    digest: str | None = None
    notes: list[str] = field(default_factory=list)
    pass_no: int = 1
    output_bytes: int = 0
    # JSONL output: the size up to the end of its last complete line (what a partial keeps).
    complete_bytes: int | None = None
    # The cgroup's high-water mark of charged memory, page cache included (see peak_rss_bytes).
    peak_charged_bytes: int | None = None
    # How fast the output was validated (bytes/s), when enough of it was timed.
    validate_bytes_per_second: float | None = None

    @property
    def ok(self) -> bool:
        """True when the stage produced a validated outcome (a partial prefix counts).

        A script that exits 0 after a memory failure it caught (``MemoryError`` on stderr, a
        cgroup OOM kill of one of its processes) is not ok: its output cannot be trusted.
        """
        return self.valid and (self.exit_code == 0 or self.partial) and self.cause != "memory"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        return d


_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT,
                  signal.SIGSYS, signal.SIGTRAP)
#: What ``killed_by`` is for each ``cause`` the runner can give itself.
_OUR_CAUSE = {"invalid-output": "script-error"}


def _memory_pattern(stderr_tail: bytes) -> str | None:
    for pat in MEMORY_PATTERNS:
        m = pat.search(stderr_tail)
        if m:
            return m.group(0).decode(errors="replace")
    return None


def _classify(res: StageResult, stderr_tail: bytes, our_kill: str | None, cpu_limit: int | None,
              status: int | None, *, oom_kills: int = 0, have_oom_counter: bool = False) -> None:
    """Decide why a stage ended: ``killed_by`` and a finer ``cause``, with the evidence.

    ``cause`` is one of ok, memory, cpu, deadline, processes, signal, crash, script-error,
    cancelled. Evidence, strongest first: our own kill (deadline, watchdog, cancel), the stage
    cgroup's OOM-kill counter, the signal (SIGXCPU = CPU limit; SEGV/BUS/ILL/FPE/ABRT = crash),
    and memory-error patterns in stderr (``MemoryError``, ``std::bad_alloc``, ``CUDA out of
    memory`` ...). A bare SIGKILL with none of these is ``signal``, never ``memory``.
    """
    if status is not None and status < 0:
        try:
            res.signal = signal.Signals(-status).name
        except ValueError:
            res.signal = str(-status)
    if our_kill is not None:
        res.killed_by = our_kill
        res.cause = _OUR_CAUSE.get(our_kill, our_kill)
        return
    if status is None:
        return
    if oom_kills > 0:
        res.killed_by = "memory"
        res.cause = "memory"
        res.evidence.append(f"the stage cgroup's OOM-kill counter rose by {oom_kills} (the kernel "
                            "killed a process of the stage at the memory limit)")
        return
    pattern = _memory_pattern(stderr_tail)
    if status < 0:
        sig = -status
        if sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and cpu_limit is not None and res.cpu_seconds >= cpu_limit * 0.98
        ):
            res.killed_by = "cpu"
            res.cause = "cpu"
            res.evidence.append(f"{res.signal} after {res.cpu_seconds:.1f} s of CPU "
                                f"(RLIMIT_CPU {cpu_limit} s)")
            return
        if pattern is not None:
            res.killed_by = "memory"
            res.cause = "memory"
            res.evidence.append(f"terminated by {res.signal} and stderr shows {pattern!r}")
            return
        res.killed_by = "signal"
        res.cause = "crash" if sig in _CRASH_SIGNALS else "signal"
        if sig == signal.SIGKILL:
            res.evidence.append(
                "terminated by SIGKILL from outside scaleup-ci with no sign of a memory failure ("
                + ("the stage cgroup's OOM-kill counter did not rise" if have_oom_counter
                   else "no cgroup OOM counter to check") + ", no memory error on stderr)")
        else:
            res.evidence.append(f"terminated by {res.signal}")
        return
    if pattern is not None:
        res.killed_by = "memory"
        res.cause = "memory"
        res.evidence.append(f"stderr shows {pattern!r}"
                            + (" although the script exited 0" if status == 0 else ""))
        return
    if status > 0:
        res.cause = "script-error"
        res.evidence.append(f"exit code {status}")


class _OutputFollower:
    """Follows a JSONL output file while the script writes it; validates each line as it lands."""

    def __init__(self, spec: StageSpec) -> None:
        self.path = spec.output_path
        self.fh: Any = None
        # The unfinished last line. A bytearray grows in place: with bytes, a line that keeps
        # growing without a newline was copied whole at every chunk (quadratic: a 480 MB line
        # took 87 s to follow, and the run ended far past its budget).
        self.buf = bytearray()
        self.overlong = False  # inside a line longer than _MAX_LINE (its bytes are dropped)
        self.complete_end = 0  # file offset just past the last complete line read
        self.notes: list[str] = []
        self.line_no = 0
        self.mode: str | None = None  # None = undecided, "jsonl", "document"
        self.stream = StreamValidator(
            spec.validator, target="record", max_errors=spec.max_errors, fail_fast=spec.fail_fast
        ) if spec.target == "record" else None
        # When records were first and last seen while the script ran (see incremental()).
        self.first_record_at: float | None = None
        self.last_record_at: float | None = None
        # (time, records so far) at each poll that found new records while the script ran.
        self.arrivals: list[tuple[float, int]] = []
        self.failed = False
        # Bytes read from the output and the seconds spent validating them: the rate says how
        # long the backlog (bytes written, not yet validated) takes to validate after a stop.
        self.read_bytes = 0
        self.validate_seconds = 0.0

    def rate(self) -> float | None:
        """Validation speed in bytes per second, once 1 MiB or 50 ms of work has been timed
        (``None`` for a JSON document, which is validated whole after the script ends)."""
        if self.mode == "document" or (self.read_bytes < (1 << 20)
                                       and self.validate_seconds < 0.05):
            return None
        return self.read_bytes / max(self.validate_seconds, 1e-6)

    def backlog(self) -> int:
        """Bytes the script has written that are not validated yet."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return 0
        return max(0, size - self.read_bytes)

    def poll(self, final: bool = False) -> None:
        if self.stream is None or self.mode == "document":
            return
        if self.fh is None:
            try:
                self.fh = self.path.open("rb")
            except OSError:
                return
        # Bounded reads (memory stays flat for a 1,000,000-record output) and a bounded amount of
        # work per call, so the loop still watches the deadline; ``final`` reads to the end.
        budget = None if final else _FOLLOW_PER_POLL
        before = self.stream.records
        try:
            self._read(budget)
        finally:
            if not final and self.stream.records > before:
                self.last_record_at = time.monotonic()
                if self.first_record_at is None:
                    self.first_record_at = self.last_record_at
                self.arrivals.append((self.last_record_at, self.stream.records))

    def incremental(self, ended_at: float) -> bool:
        """Whether the records arrived over time while the script worked, not in one burst.

        The arrivals must span at least :data:`_INCREMENTAL_MIN_SPAN` seconds and at least half
        of the time from the first record to the script's exit. A script that writes everything
        at the end and then tears down (or uploads, or exits slowly) fails the second test: its
        records are not a prefix that a stop at the deadline would keep."""
        if self.first_record_at is None or self.last_record_at is None:
            return False
        span = self.last_record_at - self.first_record_at
        return span >= _INCREMENTAL_MIN_SPAN and span >= 0.5 * (ended_at - self.first_record_at)

    def slowdown(self) -> float | None:
        """Seconds per record in the second half of the arrivals over the first half: above 1
        when records that come later in the input cost more to produce. ``None`` when too few
        arrivals were seen to tell (under 8 polls or 0.5 s)."""
        arr = self.arrivals
        if len(arr) < 8 or arr[-1][0] - arr[0][0] < 0.5:
            return None
        (t0, c0), (t1, c1) = arr[0], arr[-1]
        th, ch = next((t, c) for t, c in arr if c >= (c0 + c1) / 2)
        if ch <= c0 or c1 <= ch or th <= t0:
            return None
        first = (th - t0) / (ch - c0)
        second = (t1 - th) / (c1 - ch)
        return second / first if first > 0 else None

    def _read(self, budget: int | None) -> None:
        assert self.stream is not None and self.fh is not None
        while budget is None or budget > 0:
            t_chunk = time.monotonic()
            chunk = self.fh.read(_FOLLOW_CHUNK)
            if not chunk:
                return
            self.read_bytes += len(chunk)
            if budget is not None:
                budget -= len(chunk)
            halt = self._take(chunk)
            self.validate_seconds += time.monotonic() - t_chunk
            if halt:
                return

    def _take(self, chunk: bytes) -> bool:
        """Add a chunk of the output and validate the lines it completes. True when reading
        should stop: the output is a JSON document, or the validator stopped (fail fast)."""
        assert self.stream is not None
        self.buf += chunk
        nl = chunk.find(b"\n")
        if self.mode is None:
            head = bytes(self.buf[:_HEAD]).lstrip(b"\xef\xbb\xbf \t\r\n")
            if not head:
                return False
            if head[:1] == b"[":
                self.mode = "document"
                return True
            if nl < 0:
                return False
            end = len(self.buf) - len(chunk) + nl  # where the first line ends
            first = bytes(self.buf[:end]).strip() if end <= 2 * _HEAD else (
                bytes(self.buf[:_HEAD]).lstrip() + bytes(self.buf[end - _HEAD:end]).rstrip())
            if first in (b"{", b"[") or (first.startswith(b"{") and not first.endswith(b"}")):
                self.mode = "document"
                return True
            self.mode = "jsonl"
        if self.overlong:
            # Inside a line past _MAX_LINE: drop its bytes; when it ends it stands as a record
            # that does not parse (its line is named), not hundreds of MB held here.
            if nl < 0:
                self.buf = bytearray(_OVERLONG)
                return False
            self.buf = bytearray(_OVERLONG) + chunk[nl:]
            self.overlong = False
        elif nl < 0:
            if len(self.buf) > _MAX_LINE:
                self.overlong = True
                self.notes.append(f"output line {self.line_no + 1} is longer than "
                                  f"{_MAX_LINE >> 20} MiB: not kept in memory, and not a valid "
                                  "record")
                self.buf = bytearray(_OVERLONG)
            return False  # the same line goes on: nothing to validate yet
        lines = bytes(self.buf).split(b"\n")
        self.buf = bytearray(lines.pop())
        self.complete_end = self.read_bytes - len(self.buf)
        # The batch path of the validator (fast validator, no per-line call overhead).
        self.line_no = self.stream.feed_lines(lines, self.line_no + 1) - 1
        if self.stream.stopped:
            self.failed = True
            return True
        return False

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def _redact(data: bytes, patterns: Sequence[re.Pattern[bytes]]) -> bytes:
    for pat in patterns:
        data = pat.sub(b"***", data)
    return data


class _LogPump:
    """Drains one pipe into its log file and echoes complete lines with the stage prefix."""

    def __init__(self, path: Path, prefix: str, echo: Callable[[str], None], cap: int,
                 redact: Sequence[re.Pattern[bytes]]) -> None:
        self.fh = path.open("wb")
        self.prefix = prefix
        self.echo = echo
        self.cap = cap
        self.written = 0
        self.truncated = False
        self.echoed = 0
        self.partial = b""
        self.redact = redact

    def feed(self, data: bytes) -> None:
        if self.redact:
            data = _redact(data, self.redact)
        if self.written < self.cap:
            room = self.cap - self.written
            self.fh.write(data[:room])
            self.written += min(room, len(data))
            if len(data) > room:
                self.truncated = True
                self.fh.write(b"\n[scaleup-ci: log cut at log-max-bytes]\n")
        elif data and not self.truncated:
            # The cap was reached exactly at the end of an earlier write: mark the cut now.
            self.truncated = True
            self.fh.write(b"\n[scaleup-ci: log cut at log-max-bytes]\n")
        if self.echoed >= _ECHO_CAP:
            return
        text = self.partial + data
        lines = text.split(b"\n")
        self.partial = lines.pop()[-4096:]
        for line in lines:
            self.echoed += len(line) + 1
            self.echo(f"{self.prefix}{line.decode('utf-8', errors='replace').rstrip(chr(13))}")
            if self.echoed >= _ECHO_CAP:
                self.echo(f"{self.prefix}[scaleup-ci: echo stops here; the full log is in "
                          f"{self.fh.name}]")
                return

    def close(self) -> None:
        if self.partial and self.echoed < _ECHO_CAP:
            self.echo(f"{self.prefix}{self.partial.decode('utf-8', errors='replace')}")
        self.fh.close()


class CancelToken:
    """Set from a signal handler; the runner polls it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0

    def set(self, signum: int) -> None:
        self.signum = signum
        self.count += 1

    @property
    def is_set(self) -> bool:
        return self.signum is not None


def run_stage(spec: StageSpec, *, echo: Callable[[str], None] = print,
              echo_err: Callable[[str], None] | None = None,
              cancel: CancelToken | None = None) -> StageResult:
    """Run one stage to completion or to its limit and return what happened."""
    stage_dir = spec.stage_dir
    stage_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        spec.output_path.unlink()
    res = StageResult(
        name=spec.name, n=spec.n, predicted_seconds=spec.predicted_seconds,
        limit_seconds=spec.limit_seconds, stage_dir=str(stage_dir),
        input_path=str(spec.input_path), output_path=str(spec.output_path),
        stdout_path=str(stage_dir / "stdout.log"), stderr_path=str(stage_dir / "stderr.log"),
    )
    values = {"input": str(spec.input_path), "output": str(spec.output_path), "n": str(spec.n),
              "stage": spec.name, "full": str(spec.full_path)}
    argv = build_argv(spec.command, values, shell=spec.shell)
    deadline_unix = time.time() + max(0.0, spec.kill_at - time.monotonic())
    env = dict(spec.base_env)
    env.update({
        "SCALEUP_INPUT": values["input"], "SCALEUP_OUTPUT": values["output"],
        "SCALEUP_N": values["n"], "SCALEUP_STAGE": spec.name, "SCALEUP_FULL": values["full"],
        "SCALEUP_DEADLINE": f"{deadline_unix:.3f}", "PYTHONUNBUFFERED": "1",
    })
    cgroup: limits_mod.StageCgroup | None = None
    if spec.cgroup_dir is not None and spec.cgroup_version is not None:
        try:
            cgroup = limits_mod.StageCgroup.create(
                spec.cgroup_dir, spec.cgroup_version, f"{os.getpid()}-{spec.name}",
                int(spec.memory_limit * CGROUP_HEADROOM) if spec.memory_limit else None)
        except OSError as exc:
            res.notes.append(f"could not create the stage's memory cgroup under {spec.cgroup_dir} "
                             f"({exc.strerror or exc}); the process-tree watchdog enforces memory")
    procs_file = cgroup.procs_file if cgroup is not None else None
    # Limits are applied in the child before exec: directly (preexec_fn) while scaleup-ci runs a
    # single thread, which is safe and saves a Python start per stage; otherwise through the
    # exec trampoline, which is safe with any number of threads.
    preexec = None
    if spec.spawn == "direct" or (spec.spawn == "auto" and limits_mod.single_threaded()):
        preexec = limits_mod.child_setup(
            data_bytes=spec.rlimit_data, as_bytes=spec.rlimit_as, cpu_seconds=spec.cpu_seconds,
            cgroup_procs=procs_file)
        wrapped = argv
    else:
        wrapped = limits_mod.trampoline_argv(
            argv, data_bytes=spec.rlimit_data, as_bytes=spec.rlimit_as,
            cpu_seconds=spec.cpu_seconds, env=env, cgroup_procs=procs_file, compiled=True,
        )
    prefix = f"[{spec.name}] "
    out_pump = _LogPump(stage_dir / "stdout.log", prefix, echo, spec.log_max_bytes, spec.redact)
    err_pump = _LogPump(stage_dir / "stderr.log", prefix, echo_err or echo, spec.log_max_bytes,
                        spec.redact)
    follower = _OutputFollower(spec)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            wrapped, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, close_fds=True, preexec_fn=preexec,
        )
    except OSError as exc:
        out_pump.close()
        err_pump.close()
        if cgroup is not None:
            cgroup.remove()
        res.cause = "script-error"
        if isinstance(exc, FileNotFoundError):
            res.exit_code = 127
            res.problem = f"command not found: {argv[0]}"
        elif isinstance(exc, PermissionError):
            res.exit_code = 126
            res.problem = f"command is not executable (permission denied): {argv[0]}"
        else:
            res.exit_code = 126
            res.problem = f"could not start {argv[0]!r}: {exc.strerror or exc}"
        return res
    pgid = proc.pid
    monitor = TreeMonitor(proc.pid)
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    for pipe, pump in ((proc.stdout, out_pump), (proc.stderr, err_pump)):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ, pump)

    our_kill: str | None = None
    at_limit_since: float | None = None
    last_failcnt = 0
    term_sent_at: float | None = None
    killed_hard = False
    status: int | None = None
    rusage: Any = None
    last_sample = started - _SAMPLE_EVERY + _FIRST_SAMPLE
    last_progress = started
    last_backlog = started
    anon_peak = 0  # the cgroup's anonymous memory (page cache left out), highest sample
    sample = None

    def drain(timeout: float) -> None:
        for key, _ in sel.select(timeout):
            try:
                data = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                key.data.feed(data)
            else:
                sel.unregister(key.fileobj)

    # Once both pipes are at EOF the child has usually exited: poll wait4 after 1 ms, backing off
    # to 50 ms (a script that closed its pipes but runs on costs at most 20 wake-ups a second).
    idle = 0.001
    while status is None:
        if sel.get_map():
            drain(0.05)
        else:
            time.sleep(idle)
            idle = min(0.05, idle * 2)
        now = time.monotonic()
        pid, wstatus, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status = os.waitstatus_to_exitcode(wstatus)
            rusage = ru
            break
        if now - last_sample >= _SAMPLE_EVERY:
            last_sample = now
            sample = monitor.sample()
            if cgroup is not None:
                anon_peak = max(anon_peak, cgroup.anon())
            if (our_kill is None and spec.watchdog and spec.memory_limit
                    and sample.rss_bytes > spec.memory_limit):
                our_kill = "memory"
                res.evidence.append(
                    f"process tree RSS {sample.rss_bytes} bytes over the limit {spec.memory_limit}"
                )
            failcnt = cgroup.failcnt() if cgroup is not None else 0
            if (our_kill is None and cgroup is not None and spec.memory_limit
                    and (failcnt > last_failcnt or cgroup.under_oom()
                         or cgroup.anon() >= spec.memory_limit * CGROUP_HEADROOM * 0.97)
                    and cgroup.anon() >= spec.memory_limit):
                # At the cgroup limit the kernel reclaims, then OOM-kills; a tree can also stall
                # there (no swap, only its own anonymous memory left). Stuck 1 s = out of memory:
                # anonymous memory >= 90% with allocations failing, or >= 97% of the limit.
                # Page cache alone never counts: writing big files also hits the limit.
                at_limit_since = at_limit_since or now
                if cgroup.under_oom() or now - at_limit_since >= CGROUP_STALL:
                    our_kill = "memory"
                    res.evidence.append(
                        f"the stage cgroup stayed at its memory limit {spec.memory_limit} bytes "
                        f"(memory.failcnt {cgroup.failcnt()}"
                        + (", under_oom" if cgroup.under_oom() else "") + ")")
            elif cgroup is not None:
                at_limit_since = None
            last_failcnt = failcnt
            nprocs = max(sample.processes, len(cgroup.pids()) if cgroup is not None else 0)
            if (our_kill is None and spec.max_processes
                    and nprocs > spec.max_processes):
                our_kill = "processes"
                res.evidence.append(f"the stage had {nprocs} processes, over max-processes "
                                    f"{spec.max_processes}")
            follower.poll()
            if our_kill is None and follower.failed:
                our_kill = "invalid-output"
                res.fail_fast = True
            if spec.on_progress and now - last_progress >= 10:
                last_progress = now
                spec.on_progress(StageProgress(
                    spec.name, spec.n, now - started,
                    follower.stream.records if follower.stream else 0,
                    sample.rss_bytes, spec.kill_at - now))
        if our_kill is None and now >= spec.kill_at:
            our_kill = "deadline"
        if (our_kill is None and spec.allow_partial and spec.finish_by is not None
                and now - last_backlog >= _SAMPLE_EVERY):
            last_backlog = now
            if _backlog_too_late(follower, spec, now, now - started):
                our_kill = "deadline"
                res.notes.append("stopped before its deadline: validating the records already "
                                 "written would not fit in the time left otherwise")
        if our_kill is None and cancel is not None and cancel.is_set:
            our_kill = "cancelled"
        if our_kill is not None:
            if term_sent_at is None:
                term_sent_at = now
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGTERM)
            elif not killed_hard and (
                now - term_sent_at >= (min(spec.grace, CANCEL_GRACE) if our_kill == "cancelled"
                                       else spec.grace)
                or our_kill in ("memory", "processes")
                or (cancel is not None and cancel.count >= 2)
            ):
                killed_hard = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                for p in [*monitor.pids(), *(cgroup.pids() if cgroup is not None else ())]:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGKILL)

    res.wall_seconds = time.monotonic() - started
    # Anything of the stage still alive (daemons, setsid escapees) dies with the stage.
    leftovers = [*monitor.pids(), *(cgroup.pids() if cgroup is not None else ())]
    hurry = our_kill is not None or (cancel is not None and cancel.is_set)
    limits_mod.kill_process_group(pgid, leftovers, grace=0.1 if hurry else 0.5)
    oom_kills = 0
    cg_peak: int | None = None
    cg_peak_source = ""
    if cgroup is not None:
        oom_kills = max(0, cgroup.oom_kills() - cgroup.oom_kills_at_start)
        cg_peak, cg_peak_source = cgroup.peak()
        if not cgroup.remove():
            res.notes.append(f"could not remove the stage cgroup {cgroup.path}")
    end_drain = time.monotonic() + 1.0
    while sel.get_map() and time.monotonic() < end_drain:
        drain(0.05)
    for key in list(sel.get_map().values()):
        sel.unregister(key.fileobj)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = status
    out_pump.close()
    err_pump.close()
    res.log_truncated = out_pump.truncated or err_pump.truncated

    res.exit_code = status
    if rusage is not None:
        res.cpu_seconds = max(rusage.ru_utime + rusage.ru_stime,
                              monitor.last.cpu_seconds if monitor.last else 0.0)
        maxrss = rusage.ru_maxrss * 1024
        # The cgroup's high-water mark counts the page cache of every file the stage wrote
        # (a 2 GB output reads as 2 GB of memory), which the kernel reclaims before any OOM
        # kill: the peak that predicts a memory kill is the anonymous memory, which the
        # samples, the tree's RSS and the largest process's maxrss bound from below.
        candidates = [(maxrss, "wait4 ru_maxrss (largest single process)")]
        if cgroup is not None:
            candidates.append((anon_peak, f"cgroup v{cgroup.version} anonymous memory "
                                          "(memory.stat, page cache not counted) sampled every "
                                          f"{_SAMPLE_EVERY:g} s"))
        if cg_peak is not None:
            res.peak_charged_bytes = cg_peak
        res.peak_rss_bytes, res.peak_rss_source = max(candidates, key=lambda c: c[0])
        if monitor.peak_rss_bytes > res.peak_rss_bytes:
            res.peak_rss_bytes = monitor.peak_rss_bytes
            res.peak_rss_source = f"process-tree RSS sampled every {_SAMPLE_EVERY:g} s"
    _classify(res, tail_bytes(stage_dir / "stderr.log", 64 * 1024)[0], our_kill, spec.cpu_seconds,
              status, oom_kills=oom_kills, have_oom_counter=cgroup is not None)

    # Validate what the script wrote.
    document_rate: float | None = None  # bytes/s of a whole-document validation, when timed
    stopped = our_kill is not None
    # Did a well-behaved script stop itself because SCALEUP_DEADLINE was near?
    self_stopped = (spec.allow_partial and not stopped and status == 0
                    and time.monotonic() >= spec.kill_at - max(2.0, 0.1 * (spec.limit_seconds or 0)))
    if self_stopped:
        stopped = True
    if follower.mode == "jsonl" and follower.stream is not None and not follower.failed:
        follower.poll(final=True)
        tail = bytes(follower.buf)
        if tail.strip():
            if stopped:
                res.notes.append("dropped a partly written last line")
            else:
                follower.line_no += 1
                follower.stream.feed(tail, follower.line_no)
        follower.close()
        # With fail-fast the stream stops counting at the first bad record: a count would lie.
        halted = bool(getattr(follower.stream, "stopped", False))
        vres = follower.stream.result(expected=None if stopped or halted else spec.expected)
    elif follower.failed and follower.stream is not None:
        follower.close()
        vres = follower.stream.result(expected=None)
    else:
        follower.close()
        t_validate = time.monotonic()
        vres = validate_output(spec.output_path, spec.validator,
                               expected=None if stopped else spec.expected,
                               target=spec.target, max_errors=spec.max_errors)
        took = time.monotonic() - t_validate
        with contextlib.suppress(OSError):
            size = os.stat(spec.output_path).st_size
            if size >= (1 << 20) and took > 0:
                document_rate = size / took
    _process_problem(res, stopped, _last_error_line(stage_dir / "stderr.log"))
    _apply_validation(res, vres)
    res.incremental = follower.incremental(started + res.wall_seconds)
    res.notes.extend(follower.notes)
    if follower.mode == "jsonl":
        res.complete_bytes = follower.complete_end
    with contextlib.suppress(OSError):
        res.output_bytes = os.stat(spec.output_path).st_size
    if (v_rate := follower.rate() or document_rate) is not None:
        res.validate_bytes_per_second = round(v_rate, 1)
    if res.incremental:
        slow = follower.slowdown()
        res.slowdown = None if slow is None else round(slow, 3)
    if stopped and res.killed_by == "deadline" and res.valid and res.records > 0:
        res.partial = True
    if (stopped and res.killed_by == "cancelled" and spec.allow_partial and res.valid
            and res.records > 0):
        # Cancelled during max: what it validated so far is finished work, and is kept.
        res.partial = True
    if self_stopped and res.valid and 0 < res.records < spec.n:
        res.partial = True
        res.notes.append(f"the script stopped itself before SCALEUP_DEADLINE after "
                         f"{res.records} of {spec.n} examples")
    return res


def _backlog_too_late(follower: _OutputFollower, spec: StageSpec, now: float,
                      elapsed: float) -> bool:
    """Whether a stop now is the last that still validates, before ``finish_by``, every record
    the script will have written: the backlog, plus what it writes during the grace period.
    Records far larger than usual (or a script far faster than the validator) make this bite
    long before ``kill_at``, which budgets for ordinary records."""
    rate = follower.rate()
    if rate is None or spec.finish_by is None or elapsed <= 0:
        return False
    backlog = follower.backlog()
    written = follower.read_bytes + backlog
    during_grace = written / elapsed * spec.grace
    need = spec.grace + 1.25 * (backlog + during_grace) / rate + 0.2
    return now + need >= spec.finish_by


def _last_error_line(path: Path) -> str | None:
    """The script's last non-blank stderr line (usually the exception), for the one-line message."""
    tail = tail_bytes(path, 4096)[0].decode("utf-8", errors="replace").strip().splitlines()
    for line in reversed(tail):
        line = line.strip()
        if line and not line.startswith("[scaleup-ci"):
            return line[:300]
    return None


def _process_problem(res: StageResult, stopped: bool, last_err: str | None = None) -> None:
    """Say how the process ended, before any complaint about its output (which follows from it)."""
    if stopped or res.problem is not None:
        return
    if res.cause == "memory":
        res.problem = "memory failure: " + "; ".join(res.evidence)
    elif res.cause == "cpu":
        res.problem = "the CPU-time limit stopped the script: " + "; ".join(res.evidence)
    elif res.signal:
        kind = "crashed" if res.cause == "crash" else "was terminated"
        res.problem = f"the script {kind} ({res.signal})"
        if res.cause == "signal" and res.evidence:
            res.problem += ": " + res.evidence[0]
    elif res.exit_code not in (0, None):
        res.problem = f"the script exited with code {res.exit_code}"
        if last_err:
            res.problem += f" ({last_err})"


def _apply_validation(res: StageResult, vres: ValidationResult) -> None:
    res.records = vres.records
    res.errors = [e.to_dict() for e in vres.errors]
    res.error_count = vres.error_count
    res.valid = vres.valid
    res.digest = vres.digest
    res.notes.extend(vres.notes)
    if vres.problem and res.problem is None:
        res.problem = vres.problem
    elif not vres.valid and vres.errors and res.problem is None:
        res.problem = "invalid output: " + vres.describe_first_error()
