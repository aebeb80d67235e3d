"""CPU accounting for the benchmarks: how busy the machine was and which processes used it.

`CpuMeter({"web": pid, ...})`: `mark = meter.read()`, run something, `meter.since(mark)` is a
`Usage` with each named process's CPU seconds (its child processes included), this process's
as `client`, the machine's busy and available core-seconds and the load average. Linux only
(/proc), like the machines the figures come from.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import _cpu_seconds

__all__ = ["CpuMeter", "Usage", "machine_seconds"]


def machine_seconds() -> tuple[float, float]:
    """CPU seconds every core has been busy, and in all, since boot (Linux's /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    total = sum(fields)  # user nice system idle iowait irq softirq steal
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


@dataclass(frozen=True)
class Usage:
    """Where the CPU went during one measured stretch."""

    wall: float
    processes: dict[str, float]
    """CPU seconds of each of the bench's processes (with their child processes)."""
    busy: float
    """CPU seconds the machine's cores were busy, whoever used them."""
    capacity: float
    """CPU seconds the machine's cores had (wall time x cores)."""
    load: float
    """The 1-minute load average at the end."""

    @property
    def machine(self) -> float:
        return self.busy / self.capacity if self.capacity else math.nan

    @property
    def outside(self) -> float:
        """The share of every core busy with work that is not the bench's."""
        ours = sum(v for v in self.processes.values() if not math.isnan(v))
        return max(0.0, self.busy - ours) / self.capacity if self.capacity else math.nan

    def ms_per(self, executions: int, names: Iterable[str] | None = None) -> float:
        """CPU milliseconds per execution of the named processes (default: every one)."""
        chosen = self.processes if names is None else {n: self.processes[n] for n in names}
        return sum(chosen.values()) * 1000 / executions

    def ceiling(self, executions: int) -> float:
        """Executions per second the machine's cores could hold at this CPU cost per execution
        (every process counted, the load generator's too) with nothing else running."""
        return (os.cpu_count() or 1) * 1000 / self.ms_per(executions)

    def describe(self, executions: int | None = None) -> str:
        """Two lines: the machine, then each process as % of one core (and ms per execution
        with the ceiling that cost sets, given `executions`)."""
        machine = (
            f"load {self.load:.1f}; {os.cpu_count()} cores {self.machine:.0%} busy, "
            f"{self.outside:.0%} of them with other work"
        )
        if executions is None:
            shares = ", ".join(
                f"{name} {cpu / self.wall:.0%}" for name, cpu in self.processes.items()
            )
            return f"{machine}\nCPU, % of one core: {shares}"
        shares = ", ".join(
            f"{name} {cpu / self.wall:.0%}/{cpu * 1000 / executions:.2f}"
            for name, cpu in self.processes.items()
        )
        return (
            f"{machine}\nCPU, % of one core/ms per execution: {shares}; in all "
            f"{self.ms_per(executions):.2f} ms, so the cores could hold "
            f"{self.ceiling(executions):,.0f}/s"
        )


class CpuMeter:
    """CPU used by named processes and by the whole machine between `read()` and `since()`.

    A process counts its children too (the web host's engine process, PostgreSQL's backends);
    `client` is this process: the load generator and the API polls.
    """

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def read(self) -> tuple[float, dict[str, float], tuple[float, float]]:
        used = {name: sum(_cpu_seconds(pid)) for name, pid in self.pids.items()}
        used["client"] = time.process_time()
        return time.perf_counter(), used, machine_seconds()

    def since(self, mark: tuple[float, dict[str, float], tuple[float, float]]) -> Usage:
        started, before, (busy, total) = mark
        now, after, (busy_after, total_after) = self.read()
        return Usage(
            wall=now - started,
            processes={name: after[name] - before[name] for name in after},
            busy=busy_after - busy,
            capacity=total_after - total,
            load=os.getloadavg()[0],
        )
