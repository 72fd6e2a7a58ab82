"""What machine is this: CPUs, memory, GPUs, disk and runner facts, each with its source.

Container aware: the CPU and memory figures are the minimum of what the machine has and what the
process's cgroup (v1 or v2, walked up to the root of the hierarchy) allows. ``detect`` never raises
for a missing or unreadable file; a figure it cannot read falls back and says so in ``sources``.

``root`` lets tests point at a fake ``/proc`` and ``/sys/fs/cgroup`` tree. Only the runner facts
come from the ``env`` mapping; ``nvidia-smi`` is looked up on the real ``PATH``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
#: cgroup v1 reports "no limit" as a huge page-aligned number such as 9223372036854771712.
V1_UNLIMITED = 2**60
NVIDIA_SMI_TIMEOUT = 10.0
NVIDIA_SMI_QUERY = ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]
RUNNER_VARS = {
    "os": "RUNNER_OS",
    "arch": "RUNNER_ARCH",
    "name": "RUNNER_NAME",
    "environment": "RUNNER_ENVIRONMENT",
}


@dataclass(frozen=True)
class Gpu:
    """One GPU as ``nvidia-smi`` reports it; ``memory_bytes`` is None when it says ``[N/A]``."""

    index: int
    name: str
    memory_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "memory_bytes": self.memory_bytes}


@dataclass(frozen=True)
class CgroupInfo:
    """The process's cgroup: hierarchy version and the directory that holds its memory controller.

    ``memory_dir`` is the real path (under ``root``) of the deepest existing memory cgroup directory
    of this process; ``writable`` tells whether this process could create a sub-cgroup there.
    """

    version: int | None
    memory_dir: Path | None
    writable: bool


@dataclass(frozen=True)
class Hardware:
    """What the stages can use. ``sources`` says where each figure came from."""

    cpus: float
    memory_bytes: int
    gpus: tuple[Gpu, ...]
    disk_free_bytes: int | None
    runner: dict[str, str]
    sources: dict[str, str]
    cgroup: CgroupInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``hardware`` block of ``report.json``."""
        return {
            "cpus": self.cpus,
            "memory_bytes": self.memory_bytes,
            "gpus": [g.to_dict() for g in self.gpus],
            "disk_free_bytes": self.disk_free_bytes,
            "runner": dict(self.runner),
            "sources": dict(self.sources),
        }


def detect(out_dir: Path, env: Mapping[str, str], *, root: Path = Path("/")) -> Hardware:
    """Detect the hardware available to this process. Never raises for missing files."""
    root = Path(root)
    cg = _read_cgroup(root)
    sources: dict[str, str] = {}

    cpus, sources["cpus"] = _detect_cpus(root, cg)
    memory, sources["memory_bytes"] = _detect_memory(root, cg)
    gpus, sources["gpus"] = _detect_gpus()
    disk, sources["disk_free_bytes"] = _detect_disk(out_dir)
    return Hardware(
        cpus=cpus,
        memory_bytes=memory,
        gpus=gpus,
        disk_free_bytes=disk,
        runner=_runner_facts(env),
        sources=sources,
        cgroup=cg.info() if cg is not None else None,
    )


# --------------------------------------------------------------------------- cgroups


@dataclass
class _Cgroup:
    """Where this process's cgroup limits live (real paths under ``root``), deepest first."""

    root: Path
    version: int
    memory_dirs: list[Path] = field(default_factory=list)
    cpu_dirs: list[Path] = field(default_factory=list)

    def info(self) -> CgroupInfo:
        mem = self.memory_dirs[0] if self.memory_dirs else None
        writable = mem is not None and os.access(mem, os.W_OK)
        return CgroupInfo(version=self.version, memory_dir=mem, writable=writable)

    def shown(self, path: Path) -> str:
        """The path as it is on the machine being described (without the test ``root``)."""
        try:
            return "/" + path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _walk(mount: Path, rel: str) -> list[Path]:
    """Existing cgroup directories from ``mount/rel`` up to ``mount``, deepest first.

    Inside a container ``/proc/self/cgroup`` often names a path of the host hierarchy that is
    not visible here; then only the mount root (which is the container's own cgroup) remains.
    """
    parts = [p for p in rel.strip("/").split("/") if p]
    if ".." in parts:  # a cgroup namespace shows paths outside it as ../..: trust the mount root
        parts = []
    dirs = []
    for i in range(len(parts), -1, -1):
        d = mount.joinpath(*parts[:i])
        if d.is_dir():
            dirs.append(d)
    return dirs


def _read_cgroup(root: Path) -> _Cgroup | None:
    base = root / "sys" / "fs" / "cgroup"
    text = _read_text(root / "proc" / "self" / "cgroup")
    v2_path: str | None = None
    v1: dict[str, str] = {}
    v1_mounts: dict[str, str] = {}
    for line in (text or "").splitlines():
        bits = line.strip().split(":", 2)
        if len(bits) != 3:
            continue
        hier, controllers, path = bits
        if hier == "0" and controllers == "":
            v2_path = path
            continue
        for c in controllers.split(","):
            if c:
                v1[c] = path
                v1_mounts[c] = controllers
    if "memory" in v1 or "cpu" in v1:
        cg = _Cgroup(root=root, version=1)
        if "memory" in v1:
            cg.memory_dirs = _walk(base / "memory", v1["memory"])
        if "cpu" in v1:
            for name in (v1_mounts["cpu"], "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (base / name).is_dir():
                    cg.cpu_dirs = _walk(base / name, v1["cpu"])
                    break
        return cg
    if (base / "cgroup.controllers").is_file():
        dirs = _walk(base, v2_path or "/")
        return _Cgroup(root=root, version=2, memory_dirs=dirs, cpu_dirs=dirs)
    return None


def _cgroup_cpu_quota(cg: _Cgroup) -> tuple[float | None, str]:
    """The smallest CPU quota on the way up the hierarchy, in CPUs, and the file that set it."""
    best: float | None = None
    where = ""
    for d in cg.cpu_dirs:
        quota: float | None = None
        if cg.version == 2:
            f = d / "cpu.max"
            text = _read_text(f)
            if text is None:
                continue
            bits = text.split()
            if len(bits) >= 1 and bits[0] != "max":
                try:
                    period = float(bits[1]) if len(bits) > 1 else 100000.0
                    quota = float(bits[0]) / period if period > 0 else None
                except ValueError:
                    quota = None
            label = f"cgroup v2 cpu.max ({cg.shown(f)})"
        else:
            f = d / "cpu.cfs_quota_us"
            q_text, p_text = _read_text(f), _read_text(d / "cpu.cfs_period_us")
            if q_text is None or p_text is None:
                continue
            try:
                q, p = int(q_text.strip()), int(p_text.strip())
            except ValueError:
                continue
            if q > 0 and p > 0:
                quota = q / p
            label = f"cgroup v1 cpu.cfs_quota_us ({cg.shown(f)})"
        if quota is not None and quota > 0 and (best is None or quota < best):
            best, where = quota, label
    return best, where


def _cgroup_memory_limit(cg: _Cgroup) -> tuple[int | None, str]:
    """The smallest memory limit on the way up the hierarchy, in bytes, and the file that set it."""
    best: int | None = None
    where = ""
    name = "memory.max" if cg.version == 2 else "memory.limit_in_bytes"
    for d in cg.memory_dirs:
        f = d / name
        text = _read_text(f)
        if text is None:
            continue
        text = text.strip()
        if text == "max":
            continue
        try:
            value = int(text)
        except ValueError:
            continue
        if value <= 0 or value >= V1_UNLIMITED:
            continue
        if best is None or value < best:
            best, where = value, f"cgroup v{cg.version} {name} ({cg.shown(f)})"
    return best, where


# --------------------------------------------------------------------------- figures


def _format_cpus(value: float) -> str:
    return f"{value:g}"


def _detect_cpus(root: Path, cg: _Cgroup | None) -> tuple[float, str]:
    try:
        count: float = float(len(os.sched_getaffinity(0)))
        source = "sched_getaffinity"
    except (AttributeError, OSError):
        count = float(os.cpu_count() or 1)
        source = "os.cpu_count"
    if cg is not None:
        quota, where = _cgroup_cpu_quota(cg)
        if quota is not None and quota < count:
            return round(quota, 3), f"{where} = {_format_cpus(quota)} CPUs < {source} {count:g}"
    return count, source


def _detect_memory(root: Path, cg: _Cgroup | None) -> tuple[int, str]:
    physical: int | None = None
    source = ""
    meminfo = _read_text(root / "proc" / "meminfo")
    for line in (meminfo or "").splitlines():
        if line.startswith("MemTotal:"):
            bits = line.split()
            try:
                physical = int(bits[1]) * (1024 if bits[-1].lower() == "kb" else 1)
                source = "/proc/meminfo MemTotal"
            except (IndexError, ValueError):
                physical = None
            break
    if physical is None and root == Path("/"):
        try:
            import psutil

            physical = int(psutil.virtual_memory().total)
            source = "psutil.virtual_memory().total"
        except Exception:  # noqa: BLE001 - any failure just means "unknown"
            physical = None
    limit, where = _cgroup_memory_limit(cg) if cg is not None else (None, "")
    if limit is not None and (physical is None or limit < physical):
        return limit, where
    if physical is None:
        return 0, "unknown (no /proc/meminfo)"
    return physical, source


def _detect_gpus() -> tuple[tuple[Gpu, ...], str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return (), "nvidia-smi not found"
    try:
        proc = subprocess.run(
            [exe, *NVIDIA_SMI_QUERY],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (), f"nvidia-smi timed out after {NVIDIA_SMI_TIMEOUT:g} s"
    except OSError as exc:
        return (), f"nvidia-smi could not run: {exc.strerror or exc}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        why = f": {detail[0][:200]}" if detail else ""
        return (), f"nvidia-smi failed (exit {proc.returncode}){why}"
    gpus = []
    for n, line in enumerate(proc.stdout.splitlines(), start=1):
        if not line.strip():
            continue
        bits = [b.strip() for b in line.split(",")]
        if len(bits) < 3:
            return (), f"nvidia-smi output not understood (line {n}: {line.strip()[:100]!r})"
        try:
            index = int(bits[0])
        except ValueError:
            return (), f"nvidia-smi output not understood (line {n}: {line.strip()[:100]!r})"
        try:
            mem: int | None = int(float(bits[-1]) * MIB)
        except ValueError:
            mem = None  # "[N/A]" on some virtual GPUs
        gpus.append(Gpu(index=index, name=",".join(bits[1:-1]), memory_bytes=mem))
    return tuple(gpus), "nvidia-smi"


def _detect_disk(out_dir: Path) -> tuple[int | None, str]:
    path = Path(os.path.abspath(out_dir))
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return int(shutil.disk_usage(path).free), f"shutil.disk_usage({path})"
    except OSError as exc:
        return None, f"shutil.disk_usage({path}) failed: {exc.strerror or exc}"


def _runner_facts(env: Mapping[str, str]) -> dict[str, str]:
    facts = {key: env[var] for key, var in RUNNER_VARS.items() if env.get(var)}
    facts["system"] = platform.system()
    facts["machine"] = platform.machine()
    facts["python"] = platform.python_version()
    return facts
