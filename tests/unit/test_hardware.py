"""Hardware detection against fake /proc and /sys/fs/cgroup trees."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from scaleup_ci import hardware
from scaleup_ci.hardware import Gpu, detect

GIB = 1024**3


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(autouse=True)
def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the process may run on 8 CPUs, whatever machine runs the tests."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


@pytest.fixture(autouse=True)
def no_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep any real nvidia-smi off PATH unless a test puts a fake one there."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def meminfo(root: Path, kib: int) -> None:
    write(root, "proc/meminfo", f"MemTotal:       {kib} kB\nMemFree:        1000 kB\n")


def v2_tree(root: Path, *, cpu_max: str, memory_max: str, path: str = "/") -> Path:
    write(root, "proc/self/cgroup", f"0::{path}\n")
    write(root, "sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n")
    leaf = root / "sys/fs/cgroup" / path.strip("/")
    leaf.mkdir(parents=True, exist_ok=True)
    (leaf / "cpu.max").write_text(cpu_max + "\n")
    (leaf / "memory.max").write_text(memory_max + "\n")
    return leaf


def test_v2_fractional_cpu_quota(tmp_path: Path) -> None:
    """A cgroup v2 cpu.max of "150000 100000" gives 1.5 CPUs, with the file as the source."""
    meminfo(tmp_path, 16 * 1024 * 1024)
    v2_tree(tmp_path, cpu_max="150000 100000", memory_max="max")
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.cpus == 1.5
    assert hw.sources["cpus"].startswith("cgroup v2 cpu.max (/sys/fs/cgroup/cpu.max)")


def test_v2_memory_max_below_physical(tmp_path: Path) -> None:
    """A cgroup v2 memory.max below MemTotal becomes the memory figure, with its source."""
    meminfo(tmp_path, 16 * 1024 * 1024)
    v2_tree(tmp_path, cpu_max="max 100000", memory_max=str(2 * GIB))
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.memory_bytes == 2 * GIB
    assert hw.sources["memory_bytes"] == "cgroup v2 memory.max (/sys/fs/cgroup/memory.max)"


def test_v2_unlimited_cpu_uses_affinity(tmp_path: Path) -> None:
    """cpu.max "max 100000" is no quota, so the CPU count comes from sched_getaffinity."""
    meminfo(tmp_path, 16 * 1024 * 1024)
    v2_tree(tmp_path, cpu_max="max 100000", memory_max="max")
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.cpus == 8.0
    assert hw.sources["cpus"] == "sched_getaffinity"
    assert hw.sources["memory_bytes"] == "/proc/meminfo MemTotal"


def test_v2_walks_up_to_the_smallest_limit(tmp_path: Path) -> None:
    """A limit on a parent cgroup applies when the process's own cgroup has none."""
    meminfo(tmp_path, 16 * 1024 * 1024)
    leaf = v2_tree(tmp_path, cpu_max="max 100000", memory_max="max", path="/a.slice/b.scope")
    write(tmp_path, "sys/fs/cgroup/a.slice/memory.max", f"{3 * GIB}\n")
    write(tmp_path, "sys/fs/cgroup/a.slice/cpu.max", "200000 100000\n")
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.memory_bytes == 3 * GIB
    assert hw.cpus == 2.0
    assert hw.sources["memory_bytes"] == (
        "cgroup v2 memory.max (/sys/fs/cgroup/a.slice/memory.max)"
    )
    assert hw.cgroup is not None
    assert hw.cgroup.version == 2
    assert hw.cgroup.memory_dir == leaf


def test_v1_unlimited_value_means_physical(tmp_path: Path) -> None:
    """cgroup v1 memory.limit_in_bytes of 9223372036854771712 means no limit."""
    meminfo(tmp_path, 8 * 1024 * 1024)
    write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.memory_bytes == 8 * GIB
    assert hw.sources["memory_bytes"] == "/proc/meminfo MemTotal"
    assert hw.cpus == 8.0
    assert hw.cgroup is not None
    assert hw.cgroup.version == 1
    assert hw.cgroup.memory_dir == tmp_path / "sys/fs/cgroup/memory"


def test_v1_limit_in_container_mount_root(tmp_path: Path) -> None:
    """Inside a container the v1 path is not visible, so the mount root's limits apply."""
    meminfo(tmp_path, 8 * 1024 * 1024)
    write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{GIB}\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.memory_bytes == GIB
    assert hw.sources["memory_bytes"] == (
        "cgroup v1 memory.limit_in_bytes (/sys/fs/cgroup/memory/memory.limit_in_bytes)"
    )
    assert hw.cpus == 0.5
    assert hw.sources["cpus"].startswith("cgroup v1 cpu.cfs_quota_us")


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    """Without any cgroup files the figures come from meminfo and affinity, and cgroup is None."""
    meminfo(tmp_path, 4 * 1024 * 1024)
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert (hw.cpus, hw.memory_bytes, hw.cgroup) == (8.0, 4 * GIB, None)


def test_empty_root_never_raises(tmp_path: Path) -> None:
    """An empty fake root gives an unknown (0) memory figure that says why, not an exception."""
    hw = detect(tmp_path / "out", {}, root=tmp_path)
    assert hw.memory_bytes == 0
    assert "unknown" in hw.sources["memory_bytes"]


def test_runner_facts_come_from_env(tmp_path: Path) -> None:
    """RUNNER_* values from the env mapping are recorded next to the platform facts."""
    env = {"RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_NAME": "gh-1", "OTHER": "x"}
    hw = detect(tmp_path, env, root=tmp_path)
    assert hw.runner["os"] == "Linux"
    assert hw.runner["arch"] == "X64"
    assert hw.runner["name"] == "gh-1"
    assert "environment" not in hw.runner
    assert {"system", "machine", "python"} <= set(hw.runner)


def test_disk_uses_nearest_existing_parent(tmp_path: Path) -> None:
    """Free disk space is measured at the nearest existing parent of a not-yet-created out dir."""
    hw = detect(tmp_path / "a" / "b", {}, root=tmp_path)
    assert hw.disk_free_bytes is not None and hw.disk_free_bytes > 0
    assert hw.sources["disk_free_bytes"] == f"shutil.disk_usage({tmp_path})"


def fake_nvidia_smi(bindir: Path, body: str) -> None:
    script = bindir / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_gpus_from_fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GPUs are parsed from nvidia-smi's CSV (index, name, MiB) found on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_nvidia_smi(bindir, 'printf "0, Tesla T4, 15360\\n1, NVIDIA A100-SXM4-40GB, 40960\\n"\n')
    monkeypatch.setenv("PATH", str(bindir))
    hw = detect(tmp_path, {}, root=tmp_path)
    assert hw.gpus == (
        Gpu(0, "Tesla T4", 15360 * 1024 * 1024),
        Gpu(1, "NVIDIA A100-SXM4-40GB", 40960 * 1024 * 1024),
    )
    assert hw.sources["gpus"] == "nvidia-smi"


def test_failing_nvidia_smi_gives_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing nvidia-smi gives an empty GPU list and a source that says why."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_nvidia_smi(bindir, 'echo "NVIDIA-SMI has failed: no driver" >&2\nexit 9\n')
    monkeypatch.setenv("PATH", str(bindir))
    hw = detect(tmp_path, {}, root=tmp_path)
    assert hw.gpus == ()
    assert hw.sources["gpus"] == "nvidia-smi failed (exit 9): NVIDIA-SMI has failed: no driver"


def test_no_nvidia_smi(tmp_path: Path) -> None:
    """Without nvidia-smi on PATH there are no GPUs and the source says so."""
    hw = detect(tmp_path, {}, root=tmp_path)
    assert (hw.gpus, hw.sources["gpus"]) == ((), "nvidia-smi not found")


def test_hung_nvidia_smi_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung nvidia-smi is stopped at the timeout (10 s by default) and gives no GPUs."""
    assert hardware.NVIDIA_SMI_TIMEOUT == 10.0
    monkeypatch.setattr(hardware, "NVIDIA_SMI_TIMEOUT", 0.2)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_nvidia_smi(bindir, "exec sleep 5\n")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    hw = detect(tmp_path, {}, root=tmp_path)
    assert hw.gpus == ()
    assert hw.sources["gpus"] == "nvidia-smi timed out after 0.2 s"


def test_to_dict_is_json(tmp_path: Path) -> None:
    """to_dict gives the report's hardware block, JSON-serialisable, with every source."""
    meminfo(tmp_path, 4 * 1024 * 1024)
    d = detect(tmp_path, {}, root=tmp_path).to_dict()
    json.dumps(d)
    assert set(d) == {"cpus", "memory_bytes", "gpus", "disk_free_bytes", "runner", "sources"}
    assert set(d["sources"]) == {"cpus", "memory_bytes", "gpus", "disk_free_bytes"}


def test_real_machine_detects_something(tmp_path: Path) -> None:
    """On the real machine, detection finds at least one CPU and some memory."""
    hw = detect(tmp_path, {})
    assert hw.cpus > 0
    assert hw.memory_bytes > 0
