"""The scaling benchmark's machinery works end to end, at tiny sizes.

No timing thresholds here (timings belong to `python -m bench.scale`): only that every
configuration really ran the deliveries through its processes (`measure` raises unless every
execution succeeded and a sample reads back with every step record), that the backlog was queued
where the bench says, and that nothing it started outlives it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.scale import ScaleOptions, measure

pytestmark = pytest.mark.postgres_only


def _children() -> set[int]:
    """This process's child processes, but multiprocessing's resource tracker (started with the
    first spawned process, it lives as long as this one)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
    return found


@pytest.mark.timeout(300)
def test_every_configuration_runs_and_every_process_is_stopped(
    postgres_base_url: str | None,
) -> None:
    assert postgres_base_url is not None
    options = ScaleOptions(
        deliveries=30,
        rounds=1,
        warmup=5,
        concurrency=8,
        worker_counts=(1, 2),
        backlog=40,
        sync_requests=6,
        idle_sync=3,
        sync_workers=1,
        spot_check=3,
    )
    before = _children()
    lines: list[str] = []

    report = measure(postgres_base_url, options, lines.append)

    assert _children() == before  # the servers, workers and echo server are gone
    assert [len(report.sqlite.rounds), report.sqlite.rounds[0].deliveries] == [1, 30]
    assert set(report.sqlite.best.usage.processes) == {"server", "echo", "client"}
    assert [t.workers for t in report.postgres] == [1, 2]
    for throughput, workers in zip(report.postgres, (["w1"], ["w1", "w2"]), strict=True):
        assert throughput.best.rate > 0
        processes = set(throughput.best.usage.processes)
        assert processes == {"web", "postgres", "echo", "client", *workers}
    sync = report.sync
    assert [len(sync.idle), len(sync.latencies)] == [3, 6]
    # `flowyard serve --workers 0` queues and runs nothing itself: all 40 were waiting
    assert sync.queued_before_workers == 40
    assert 0 <= sync.depth_end <= sync.depth_start <= 40
    assert any(line.startswith("  target: 2 workers >= 1.6x one worker") for line in lines)
    assert any("synchronous p99" in line for line in lines)
