"""Sample a child's process tree: resident memory, CPU time, and every descendant seen.

The runner calls ``sample()`` from its own loop (no thread), so there is nothing to race with
``fork``. Descendants are remembered by (pid, create_time) so that a process which left the group
(``setsid``) can still be killed at the end, and a reused pid is never mistaken for one of ours.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class TreeSample:
    """One reading of the whole tree."""

    rss_bytes: int
    cpu_seconds: float
    processes: int


@dataclass
class TreeMonitor:
    """Tracks one stage's process tree from its root pid."""

    root_pid: int
    peak_rss_bytes: int = 0
    samples: int = 0
    last: TreeSample | None = None
    known: dict[int, float] = field(default_factory=dict)  # pid -> create_time
    _dead_cpu: dict[int, float] = field(default_factory=dict)
    _cpu: dict[int, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def _tree(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        try:
            root = psutil.Process(self.root_pid)
            procs.append(root)
            procs.extend(root.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            pass
        # Descendants that left the tree (setsid + reparent) are still ours to watch.
        seen = {p.pid for p in procs}
        for pid, ctime in list(self.known.items()):
            if pid in seen:
                continue
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - ctime) < 0.01:
                    procs.append(proc)
                else:
                    del self.known[pid]
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                self.known.pop(pid, None)
        return procs

    def sample(self) -> TreeSample:
        """Read RSS and CPU of every live process in the tree and update the peak."""
        rss = 0
        alive: set[int] = set()
        for proc in self._tree():
            try:
                with proc.oneshot():
                    if proc.pid not in self.known:
                        self.known[proc.pid] = proc.create_time()
                    mem = proc.memory_info().rss
                    times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            rss += mem
            self._cpu[proc.pid] = times.user + times.system
            alive.add(proc.pid)
        for pid in list(self._cpu):
            if pid not in alive:
                self._dead_cpu[pid] = self._cpu.pop(pid)
        self.samples += 1
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        cpu = sum(self._cpu.values()) + sum(self._dead_cpu.values())
        self.last = TreeSample(rss_bytes=rss, cpu_seconds=cpu, processes=len(alive))
        return self.last

    def pids(self) -> list[int]:
        """Every descendant pid seen so far that is not this process."""
        me = os.getpid()
        return [pid for pid in self.known if pid != me]
