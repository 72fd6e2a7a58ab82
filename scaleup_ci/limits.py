"""Limits fitted to the machine: choose them, apply them to a child, kill a process group.

How limits reach the child: the runner starts ``trampoline_argv(...)`` (a tiny stdlib-only
script, ``_trampoline.py``) instead of the user's command. The trampoline sets the rlimits in the
fresh process and ``execvp``s the command, which is safe while the runner has monitor threads
(unlike ``preexec_fn``). Rlimits are per process, so a process-tree RSS watchdog (monitor.py,
sampling every ``WATCHDOG_INTERVAL`` seconds) enforces the memory limit for the whole tree.

Enforcement modes (``Limits.mode``):
- ``rlimit-data+watchdog`` (auto on Linux): RLIMIT_DATA per process + tree RSS watchdog.
  RLIMIT_DATA counts private writable memory (heap and anonymous mmap, Linux >= 4.7), not
  address-space reservations, so it does not break JAX/CUDA/Go runtimes.
- ``rlimit-as+watchdog`` (only when asked): RLIMIT_AS caps virtual address space; stricter but
  breaks runtimes that reserve large ranges.
- ``watchdog``: no per-process memory rlimit (non-Linux, or asked for).
- ``none``: no memory limit and no CPU rlimit; only the wall-clock deadline applies.
- ``cgroup`` (auto when available): one child memory cgroup per stage under this process's own
  cgroup (a writable v1 memory controller, or a v2 subtree with the memory controller delegated),
  with ``memory.limit_in_bytes`` / ``memory.max`` set to the limit. The trampoline moves itself
  into the cgroup before it execs, so every descendant is inside and counted, including setsid
  escapees. The kernel's OOM killer enforces the limit for the whole tree; the cgroup's OOM
  counter is the evidence, its peak counter (``memory.max_usage_in_bytes`` / ``memory.peak``)
  cannot miss a spike, and its process list is how the stage's leftovers are found and killed.
  The process-tree RSS watchdog stays on as a second line. No per-process memory rlimit is set,
  so a refused allocation cannot disguise a memory failure as an ordinary error.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from scaleup_ci import _trampoline
from scaleup_ci.errors import ConfigError
from scaleup_ci.hardware import Hardware

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

GIB = 1024**3
HEADROOM_MIN = GIB
HEADROOM_FRACTION = 0.10
#: How often the process-tree RSS watchdog samples (monitor.py uses this value).
WATCHDOG_INTERVAL = 0.1
#: RLIMIT_CPU hard = soft + this, so the child gets SIGXCPU before SIGKILL.
CPU_HARD_EXTRA = _trampoline.CPU_HARD_EXTRA
#: Automatic per-stage CPU limit: ceil(stage_seconds * max(1, cpus) * factor) + extra.
CPU_AUTO_FACTOR = 1.5
CPU_AUTO_EXTRA = 5

MODES = ("auto", "cgroup", "rlimit-data+watchdog", "rlimit-as+watchdog", "watchdog", "none")
_MODE_ALIASES = {"rlimit-data": "rlimit-data+watchdog", "rlimit-as": "rlimit-as+watchdog"}
_RLIMIT_NAMES = {"data": "RLIMIT_DATA", "as": "RLIMIT_AS", "cpu": "RLIMIT_CPU"}


def format_bytes(n: int | None) -> str:
    """``2147483648`` -> ``2.0 GiB`` (binary units; ``None`` -> ``none``)."""
    if n is None:
        return "none"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Limits:
    """The limits every stage runs under, and how they are enforced.

    ``memory_bytes`` is the limit for the whole process tree (watchdog), ``None`` for no limit.
    ``rlimit_bytes`` is the per-process RLIMIT_DATA/RLIMIT_AS value (clamped to the inherited
    hard limit), ``None`` when the mode sets no memory rlimit. ``cpu_seconds`` is an explicit
    per-stage CPU limit, ``None`` for auto (see ``cpu_seconds_for_stage``) or ``0`` for off.
    """

    memory_bytes: int | None
    memory_source: str
    cpu_seconds: float | None
    mode: str
    enforcement: dict[str, str]
    warnings: tuple[str, ...] = ()
    rlimit_bytes: int | None = None
    cpu_rlimit: bool = True
    cgroup_dir: Path | None = None
    cgroup_version: int | None = None

    @property
    def data_bytes(self) -> int | None:
        """RLIMIT_DATA for the trampoline, or None."""
        return self.rlimit_bytes if self.mode == "rlimit-data+watchdog" else None

    @property
    def as_bytes(self) -> int | None:
        """RLIMIT_AS for the trampoline, or None."""
        return self.rlimit_bytes if self.mode == "rlimit-as+watchdog" else None

    @property
    def watchdog_bytes(self) -> int | None:
        """The process-tree RSS limit the monitor enforces, or None."""
        return None if self.mode == "none" else self.memory_bytes

    def to_dict(self) -> dict[str, Any]:
        """The ``limits`` block of ``report.json``."""
        return {
            "memory_bytes": self.memory_bytes,
            "memory_source": self.memory_source,
            "cpu_seconds": self.cpu_seconds,
            "mode": self.mode,
            "enforcement": dict(self.enforcement),
            "cgroup": str(self.cgroup_dir) if self.cgroup_dir is not None else None,
            "warnings": list(self.warnings),
        }


def cgroup_available(hw: Hardware, *, probe: bool = True) -> tuple[bool, str]:
    """Whether limits can be enforced with a per-stage memory cgroup, and why not.

    Needs this process's memory cgroup directory to be writable: cgroup v1 (memory controller) or
    cgroup v2 with ``memory`` in ``cgroup.subtree_control`` (delegated). With ``probe`` a child
    cgroup is really created, given a limit and removed, so a read-only or half-delegated
    hierarchy is found out before the first stage.
    """
    cg = hw.cgroup
    if cg is None or cg.version is None:
        return False, "no cgroup hierarchy found"
    if cg.memory_dir is None:
        return False, "no memory cgroup for this process"
    if not cg.writable:
        return False, f"cgroup {cg.memory_dir} is not writable"
    if cg.version == 2:
        ctl = _read(cg.memory_dir / "cgroup.subtree_control") or ""
        if "memory" not in ctl.split():
            return False, (f"cgroup v2 {cg.memory_dir}: the memory controller is not delegated "
                           "(not in cgroup.subtree_control)")
    elif cg.version != 1:
        return False, f"unknown cgroup version {cg.version}"
    if not probe:
        return True, f"cgroup v{cg.version} {cg.memory_dir}"
    try:
        test = StageCgroup.create(cg.memory_dir, cg.version, f"probe-{os.getpid()}", 256 * 2**20)
    except OSError as exc:
        return False, f"cannot create a memory cgroup under {cg.memory_dir}: {exc.strerror or exc}"
    test.remove()
    return True, f"cgroup v{cg.version} {cg.memory_dir}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, ValueError):
        return None


class StageCgroup:
    """One stage's memory cgroup: create with a limit, read peak and OOM counters, clean up."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version
        self.oom_kills_at_start = 0

    @classmethod
    def create(cls, parent: Path, version: int, name: str, limit: int | None) -> StageCgroup:
        """Make ``parent/scaleup-ci-<name>`` with the memory limit; raises OSError on failure."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]
        path = parent / f"scaleup-ci-{safe}"
        cls.remove_stale(parent)
        if path.is_dir():
            cls(path, version).remove()
        path.mkdir()
        cg = cls(path, version)
        try:
            if limit is not None:
                if version == 1:
                    (path / "memory.limit_in_bytes").write_text(str(int(limit)))
                    # Without swap accounting this file is absent; with it, cap swap use too.
                    with contextlib.suppress(OSError):
                        (path / "memory.memsw.limit_in_bytes").write_text(str(int(limit)))
                else:
                    (path / "memory.max").write_text(str(int(limit)))
                    with contextlib.suppress(OSError):
                        (path / "memory.swap.max").write_text("0")
            cg.oom_kills_at_start = cg.oom_kills()
        except OSError:
            cg.remove()
            raise
        return cg

    @classmethod
    def remove_stale(cls, parent: Path) -> None:
        """Remove empty ``scaleup-ci-<pid>-*`` cgroups left by a scaleup-ci that was killed (-9).

        Only cgroups whose owner pid is gone and that hold no process are touched, so runs of
        other scaleup-ci processes sharing the parent are left alone.
        """
        with contextlib.suppress(OSError):
            for d in parent.glob("scaleup-ci-*"):
                owner = d.name.removeprefix("scaleup-ci-").split("-", 1)[0]
                if not owner.isdigit() or psutil.pid_exists(int(owner)) or not d.is_dir():
                    continue
                if not (_read(d / "cgroup.procs") or "").strip():
                    with contextlib.suppress(OSError):
                        d.rmdir()

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def _kv(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in (_read(self.path / name) or "").splitlines():
            bits = line.split()
            if len(bits) == 2 and bits[1].lstrip("-").isdigit():
                out[bits[0]] = int(bits[1])
        return out

    def oom_kills(self) -> int:
        """The cgroup's OOM-kill counter (v1 memory.oom_control, v2 memory.events)."""
        if self.version == 1:
            return self._kv("memory.oom_control").get("oom_kill", 0)
        return self._kv("memory.events").get("oom_kill", 0)

    def failcnt(self) -> int:
        """How many times usage hit the limit (v1 memory.failcnt, v2 memory.events max)."""
        if self.version == 1:
            text = (_read(self.path / "memory.failcnt") or "0").strip()
            return int(text) if text.isdigit() else 0
        return self._kv("memory.events").get("max", 0)

    def peak(self) -> tuple[int | None, str]:
        """The high-water mark of the cgroup's memory, and the file it came from."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        text = (_read(self.path / name) or "").strip()
        if text.isdigit():
            return int(text), f"cgroup v{self.version} {name} (high-water mark, all processes)"
        return None, ""

    def usage(self) -> int:
        """Current memory charged to the cgroup (v1 memory.usage_in_bytes, v2 memory.current)."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        text = (_read(self.path / name) or "0").strip()
        return int(text) if text.isdigit() else 0

    def anon(self) -> int:
        """Anonymous (non page cache) memory charged: v1 total_rss + swap, v2 anon."""
        st = self._kv("memory.stat")
        if self.version == 1:
            return st.get("total_rss", st.get("rss", 0)) + st.get("total_swap", 0)
        return st.get("anon", 0)

    def under_oom(self) -> bool:
        """v1: the cgroup is stuck at its limit with the OOM killer pending (``under_oom 1``)."""
        return self.version == 1 and self._kv("memory.oom_control").get("under_oom", 0) > 0

    def pids(self) -> list[int]:
        text = _read(self.procs_file) or ""
        return [int(x) for x in text.split() if x.strip().isdigit()]

    def contains(self, pid: int) -> bool:
        return pid in self.pids()

    def remove(self, *, timeout: float = 2.0) -> bool:
        """Kill whatever is left in the cgroup and remove it. True when it is gone."""
        end = time.monotonic() + timeout
        while True:
            pids = [p for p in self.pids() if p != os.getpid()]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() >= end:
                    return False
                time.sleep(0.02)


def _inherited_hard_limits() -> dict[str, int | None]:
    """Current hard rlimits by short name; None means unlimited (or not available)."""
    out: dict[str, int | None] = {}
    for short, name in _RLIMIT_NAMES.items():
        res = getattr(resource, name, None) if resource is not None else None
        if res is None:
            out[short] = None
            continue
        hard = resource.getrlimit(res)[1]
        out[short] = None if hard == resource.RLIM_INFINITY or hard < 0 else int(hard)
    return out


def _normalise_mode(mode: str) -> str:
    m = _MODE_ALIASES.get(mode.strip().lower(), mode.strip().lower())
    if m not in MODES:
        raise ConfigError(
            f"unknown limit mode {mode!r}",
            hint=f"use one of: {', '.join(MODES)}",
        )
    return m


def choose_limits(
    hw: Hardware,
    *,
    memory_limit: int | None,
    cpu_limit: float | None,
    mode: str = "auto",
    hard_limits: Mapping[str, int | None] | None = None,
    platform: str | None = None,
    cgroup_probe: bool = True,
) -> Limits:
    """Choose the memory/CPU limits and how to enforce them on this machine.

    ``memory_limit``: None = auto (detected memory minus max(1 GiB, 10%)), 0 = no memory limit,
    otherwise bytes. ``cpu_limit``: None = auto per stage, 0 = no CPU rlimit, otherwise CPU
    seconds per stage. ``hard_limits`` maps ``data``/``as``/``cpu`` to the inherited hard rlimit
    (None = unlimited); by default it is read with ``resource.getrlimit``. ``platform`` defaults
    to ``sys.platform`` (tests pass another value).
    """
    requested = _normalise_mode(mode)
    plat = sys.platform if platform is None else platform
    warnings: list[str] = []
    hard = dict(_inherited_hard_limits() if hard_limits is None else hard_limits)
    have_resource = resource is not None

    # Memory: how much.
    memory: int | None
    if memory_limit is None:
        if hw.memory_bytes <= 0:
            memory = None
            source = "auto: memory unknown, no limit"
            warnings.append(
                "could not detect the machine's memory; running without a memory limit "
                "(set memory-limit to a size to enforce one)"
            )
        else:
            headroom = max(HEADROOM_MIN, int(hw.memory_bytes * HEADROOM_FRACTION))
            memory = hw.memory_bytes - headroom
            source = (
                f"auto: {format_bytes(hw.memory_bytes)} detected"
                f" - headroom {format_bytes(headroom)}"
            )
            if memory < hw.memory_bytes // 2:
                memory = hw.memory_bytes // 2
                source = f"auto: half of {format_bytes(hw.memory_bytes)} detected (small machine)"
    elif memory_limit < 0:
        raise ConfigError(
            f"memory-limit must not be negative (got {memory_limit})",
            hint="use auto, 0 (no limit) or a size such as 4GiB",
        )
    elif memory_limit == 0:
        memory, source = None, "explicit: no limit"
    else:
        memory, source = int(memory_limit), "explicit"
        if hw.memory_bytes > 0 and memory > hw.memory_bytes:
            warnings.append(
                f"memory-limit {format_bytes(memory)} is more than the "
                f"{format_bytes(hw.memory_bytes)} detected "
                f"({hw.sources.get('memory_bytes', 'unknown source')}); "
                "the system may kill the stage before the limit is reached"
            )

    # Memory: how it is enforced. The strongest available: a memory cgroup, else RLIMIT_DATA.
    cgroup_ok, cgroup_why = False, ""
    if requested in ("cgroup", "auto") and memory is not None and plat.startswith("linux"):
        cgroup_ok, cgroup_why = cgroup_available(hw, probe=cgroup_probe)
    if requested == "cgroup" and not cgroup_ok:
        why = cgroup_why or ("no memory limit" if memory is None else f"not on Linux ({plat})")
        warnings.append(f"memory enforcement 'cgroup' is not available ({why}); using auto")
        requested = "auto"
    chosen = requested
    if chosen == "auto" and cgroup_ok:
        chosen = "cgroup"
    if chosen == "auto":
        chosen = (
            "rlimit-data+watchdog" if plat.startswith("linux") and have_resource else "watchdog"
        )
        if chosen == "watchdog" and memory is not None:
            warnings.append(
                f"per-process memory rlimits are not reliable on {plat}; memory is enforced only "
                "by the process-tree RSS watchdog"
            )
    elif chosen.startswith("rlimit-") and not have_resource:
        warnings.append(
            "the resource module is not available; memory is enforced only by the watchdog"
        )
        chosen = "watchdog"
    if chosen == "none" and memory is not None:
        memory, source = None, "mode none: no limit"
    if memory is None:
        chosen = "none"

    rlimit_bytes: int | None = None
    if chosen in ("rlimit-data+watchdog", "rlimit-as+watchdog") and memory is not None:
        short = "data" if chosen.startswith("rlimit-data") else "as"
        rlimit_bytes = memory
        inherited = hard.get(short)
        if inherited is not None and inherited < memory:
            rlimit_bytes = inherited
            warnings.append(
                f"RLIMIT_{short.upper()} {format_bytes(memory)} is above the inherited hard limit "
                f"{format_bytes(inherited)}; clamped to {format_bytes(inherited)}"
            )

    # CPU.
    cpu_seconds: float | None = None
    cpu_rlimit = have_resource and requested != "none"
    if cpu_limit is not None:
        if cpu_limit < 0:
            raise ConfigError(
                f"cpu-limit must not be negative (got {cpu_limit})",
                hint="use auto, 0 (no CPU limit) or a number of CPU seconds per stage",
            )
        cpu_seconds = float(cpu_limit)
        if cpu_limit == 0:
            cpu_rlimit = False
        inherited_cpu = hard.get("cpu")
        if (
            cpu_rlimit
            and inherited_cpu is not None
            and cpu_seconds + CPU_HARD_EXTRA > inherited_cpu
        ):
            clamped = float(max(1, inherited_cpu - CPU_HARD_EXTRA))
            warnings.append(
                f"cpu-limit {cpu_seconds:g} s is above the inherited hard RLIMIT_CPU "
                f"{inherited_cpu} s; clamped to {clamped:g} s"
            )
            cpu_seconds = clamped

    enforcement = {
        "memory": _describe_memory(chosen, memory, rlimit_bytes, hw),
        "cpu": _describe_cpu(cpu_rlimit, cpu_seconds, have_resource),
    }
    if chosen != "cgroup" and cgroup_why and memory is not None:
        enforcement["cgroup"] = f"not used: {cgroup_why}"
    cg = hw.cgroup if chosen == "cgroup" else None
    return Limits(
        memory_bytes=memory,
        memory_source=source,
        cpu_seconds=cpu_seconds,
        mode=chosen,
        enforcement=enforcement,
        warnings=tuple(warnings),
        rlimit_bytes=rlimit_bytes,
        cpu_rlimit=cpu_rlimit,
        cgroup_dir=cg.memory_dir if cg is not None else None,
        cgroup_version=cg.version if cg is not None else None,
    )


def _describe_memory(mode: str, memory: int | None, rlimit_bytes: int | None,
                     hw: Hardware | None = None) -> str:
    watchdog = (
        f"process-tree RSS watchdog at {format_bytes(memory)}"
        f" sampling every {WATCHDOG_INTERVAL:g} s"
    )
    if mode == "rlimit-data+watchdog":
        return (f"RLIMIT_DATA={format_bytes(rlimit_bytes)} per process (set in the child before "
                f"exec) + {watchdog}")
    if mode == "rlimit-as+watchdog":
        return (f"RLIMIT_AS={format_bytes(rlimit_bytes)} per process (set in the child before "
                f"exec) + {watchdog}")
    if mode == "watchdog":
        return watchdog
    if mode == "cgroup" and hw is not None and hw.cgroup is not None:
        knob = "memory.limit_in_bytes" if hw.cgroup.version == 1 else "memory.max"
        return (f"cgroup v{hw.cgroup.version} {knob}=1.1 x {format_bytes(memory)} for the whole "
                "stage "
                f"(one child cgroup per stage under {hw.cgroup.memory_dir}; kernel OOM killer, "
                f"peak from its anonymous memory, page cache not counted) + {watchdog}")
    return "none"


def _describe_cpu(cpu_rlimit: bool, cpu_seconds: float | None, have_resource: bool) -> str:
    if not cpu_rlimit:
        why = "off" if have_resource else "not available (no resource module)"
        return f"{why}; the stage's wall-clock deadline still applies"
    if cpu_seconds is None:
        soft = f"ceil(stage time limit x max(1, cpus) x {CPU_AUTO_FACTOR:g}) + {CPU_AUTO_EXTRA} s"
    else:
        soft = f"{math.ceil(cpu_seconds)} s"
    return (
        f"RLIMIT_CPU soft={soft} hard=soft+{CPU_HARD_EXTRA} per process (SIGXCPU first); "
        "the wall-clock deadline is enforced separately"
    )


def cpu_seconds_for_stage(limits: Limits, stage_seconds: float, cpus: float) -> int | None:
    """The RLIMIT_CPU soft limit for one stage, or None for no CPU rlimit.

    An explicit limit wins. Otherwise CPU time cannot exceed wall time x CPUs, so allow
    ``ceil(stage_seconds * max(1, cpus) * 1.5) + 5``: the margin keeps legitimate runs alive, and
    the deadline is enforced separately by the wall clock.
    """
    if not limits.cpu_rlimit:
        return None
    if limits.cpu_seconds is not None:
        return max(1, math.ceil(limits.cpu_seconds)) if limits.cpu_seconds > 0 else None
    if not math.isfinite(stage_seconds) or stage_seconds <= 0:
        return None
    return math.ceil(stage_seconds * max(1.0, cpus) * CPU_AUTO_FACTOR) + CPU_AUTO_EXTRA


# --------------------------------------------------------------------------- the trampoline

TRAMPOLINE = Path(_trampoline.__file__).resolve()
_COMPILED: list[str] = []  # the resolved trampoline script, once per process


def _pyc_is_current(pyc: Path, source: bytes, mtime: int, size: int) -> bool:
    """Whether ``pyc`` is this interpreter's bytecode of exactly ``source`` (as import checks it)."""
    import importlib.util

    try:
        with pyc.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if len(head) < 16 or head[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(head[4:8], "little")
    if flags & 1:  # hash-based pyc (PEP 552)
        return head[8:16] == importlib.util.source_hash(source)
    return (int.from_bytes(head[8:12], "little") == mtime & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == size & 0xFFFFFFFF)


def _user_cache_dir() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.path.expanduser("~"), ".cache") if os.path.expanduser("~") != "~" else "")
    return Path(base) / "scaleup-ci" if base and os.path.isabs(base) else None


def compiled_trampoline() -> str:
    """The trampoline as this interpreter's compiled bytecode, so a stage start skips compiling.

    Run as a file (``python -I -S path``) a ``.py`` script is compiled on every start (~6-13 ms a
    stage); a ``.pyc`` file is loaded as is. The import system's own cached bytecode of
    ``_trampoline`` is used when it is current (an installed package, or a
    ``PYTHONPYCACHEPREFIX``); otherwise a private copy is compiled once into the user's cache
    directory (``~/.cache/scaleup-ci``, named by a digest of the interpreter's magic number and
    the source). When neither works, the ``.py`` path is returned.
    """
    if _COMPILED:
        return _COMPILED[0]
    result = str(TRAMPOLINE)
    try:
        source = TRAMPOLINE.read_bytes()
        st = TRAMPOLINE.stat()
        cached = getattr(_trampoline, "__cached__", None)
        if cached and _pyc_is_current(Path(cached), source, int(st.st_mtime), st.st_size):
            result = str(Path(cached).resolve())
        else:
            result = _private_pyc(source) or result
    except (OSError, ValueError, ImportError):
        pass
    _COMPILED.append(result)
    return result


def _private_pyc(source: bytes) -> str | None:
    import hashlib
    import importlib.util
    import marshal

    cache = _user_cache_dir()
    if cache is None:
        return None
    digest = hashlib.sha256(importlib.util.MAGIC_NUMBER + source).hexdigest()[:20]
    target = cache / f"trampoline-{digest}.pyc"
    if _pyc_is_current(target, source, 0, 0):  # written by an earlier run
        return str(target)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        code = compile(source, str(TRAMPOLINE), "exec", dont_inherit=True)
        # A hash-based pyc (flags 0b11: checked, but running a .pyc file never checks it).
        data = (importlib.util.MAGIC_NUMBER + (3).to_bytes(4, "little")
                + importlib.util.source_hash(source) + marshal.dumps(code))
        tmp = cache / f".{target.name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except (OSError, ValueError, SyntaxError):
        return None
    return str(target)


def single_threaded() -> bool:
    """True when this process runs exactly one thread (Linux ``/proc/self/status``, which also
    counts threads started by C extensions).

    Only then may Python code run between fork and exec (``preexec_fn``): with a second thread,
    the child could inherit a lock that thread held and hang. Anywhere else the answer is False
    and the runner uses the exec trampoline instead.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1]) == 1
    except (OSError, ValueError, IndexError):
        pass
    return False


def _prctl() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None


def child_setup(
    *,
    data_bytes: int | None,
    as_bytes: int | None,
    cpu_seconds: int | None,
    cgroup_procs: Path | str | None = None,
) -> Any:
    """A ``preexec_fn`` doing the trampoline's work in the forked child, before exec.

    Everything that can fail or allocate is prepared here, in the parent: the limits are clamped
    to the inherited hard limits, the cgroup path is a plain string and libc's ``prctl`` is looked
    up. The child then only makes system calls. Use it only when :func:`single_threaded` is True;
    it saves a Python start (about 10 ms) per stage.
    """
    import resource

    plan: list[tuple[int, int, int]] = []
    for res, value, extra in ((resource.RLIMIT_DATA, data_bytes, 0),
                              (resource.RLIMIT_AS, as_bytes, 0),
                              (resource.RLIMIT_CPU, cpu_seconds, CPU_HARD_EXTRA)):
        if value is None or value < 0:
            continue
        soft = max(int(value), 1) if res == resource.RLIMIT_CPU else int(value)
        hard = soft + extra
        _cur, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        plan.append((res, soft, hard))
    procs = str(cgroup_procs) if cgroup_procs is not None else None
    prctl = _prctl()
    setrlimit = resource.setrlimit

    def setup() -> None:
        for res, soft, hard in plan:
            with contextlib.suppress(OSError, ValueError):
                setrlimit(res, (soft, hard))
        if procs is not None:
            try:
                fd = os.open(procs, os.O_WRONLY)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
            except OSError:
                pass
        if prctl is not None:
            prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG = SIGKILL: the stage dies with scaleup-ci

    return setup


def trampoline_argv(
    argv: list[str],
    *,
    data_bytes: int | None,
    as_bytes: int | None,
    cpu_seconds: int | None,
    nproc: int | None = None,
    env: Mapping[str, str] | None = None,
    cgroup_procs: Path | str | None = None,
    compiled: bool = False,
) -> list[str]:
    """An argv that sets the given rlimits in a fresh process and then execs ``argv``.

    The interpreter runs isolated (``-I -S``) and loads the trampoline by absolute path, so the
    user's ``PYTHONPATH`` or current directory cannot interfere and start-up stays fast. Pass the
    child's ``env`` so that the trampoline restores its LC_CTYPE exactly (the interpreter
    coerces a C locale to C.UTF-8 in its own environment, which the exec would otherwise pass on).
    ``compiled`` loads the trampoline's bytecode instead (see ``compiled_trampoline``), which
    starts faster; the runner uses it for every stage.
    """
    if not argv:
        raise ValueError("trampoline_argv needs a command")
    out = [sys.executable, "-I", "-S", compiled_trampoline() if compiled else str(TRAMPOLINE)]
    for flag, value in (
        ("--data", data_bytes),
        ("--as", as_bytes),
        ("--cpu", cpu_seconds),
        ("--nproc", nproc),
    ):
        if value is not None:
            out += [flag, str(int(value))]
    if cgroup_procs is not None:
        out += ["--cgroup", str(cgroup_procs)]
    if env is not None:
        if "LC_CTYPE" in env:
            out += ["--lc-ctype", env["LC_CTYPE"]]
        else:
            out.append("--no-lc-ctype")
    out.append("--")
    out.extend(argv)
    return out


def wrap_argv(
    limits: Limits,
    argv: list[str],
    *,
    cpu_seconds: int | None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """``argv`` wrapped in the trampoline with ``limits``' rlimits, or unchanged when none apply."""
    data, as_ = limits.data_bytes, limits.as_bytes
    if data is None and as_ is None and cpu_seconds is None:
        return list(argv)
    return trampoline_argv(argv, data_bytes=data, as_bytes=as_, cpu_seconds=cpu_seconds, env=env)


# --------------------------------------------------------------------------- killing


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (recursive), tolerant of processes exiting meanwhile."""
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []
    return [pid, *(c.pid for c in children)]


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but not ours to signal: check members below
    # killpg(0) also succeeds for zombies that wait for their parent to reap them; they are dead.
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            continue
    return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _signal_proc(proc: psutil.Process, sig: signal.Signals) -> None:
    try:
        if proc.is_running():  # checks the pid was not reused (create time)
            proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        pass


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_process_group(pgid: int, pids: Iterable[int] = (), *, grace: float) -> None:
    """Stop a process group: SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left.

    ``pids`` are extra processes (for example descendants that called ``setsid`` and left the
    group) that get the same treatment. The caller's own process group and the caller itself are
    never signalled; asking to kill the caller's group raises ``ValueError``.
    """
    if pgid <= 1:
        raise ValueError(f"refusing to kill process group {pgid}")
    if pgid == os.getpgrp():
        raise ValueError(f"refusing to kill the caller's own process group {pgid}")
    me = os.getpid()
    procs: list[psutil.Process] = []
    for pid in dict.fromkeys(pids):
        if pid == me or pid <= 1:
            continue
        try:
            procs.append(psutil.Process(pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue

    _killpg(pgid, signal.SIGTERM)
    for p in procs:
        _signal_proc(p, signal.SIGTERM)

    deadline = time.monotonic() + max(0.0, grace)
    delay = 0.005
    while True:
        if not _group_alive(pgid) and not any(_alive(p) for p in procs):
            return
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.05)

    _killpg(pgid, signal.SIGKILL)
    for p in procs:
        if _alive(p):
            _signal_proc(p, signal.SIGKILL)


__all__ = [
    "CPU_HARD_EXTRA",
    "Limits",
    "MODES",
    "StageCgroup",
    "TRAMPOLINE",
    "WATCHDOG_INTERVAL",
    "cgroup_available",
    "choose_limits",
    "cpu_seconds_for_stage",
    "format_bytes",
    "kill_process_group",
    "trampoline_argv",
    "tree_pids",
    "wrap_argv",
]
