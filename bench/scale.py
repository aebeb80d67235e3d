"""Scaling on PostgreSQL: end-to-end executions/s with 1, 2 and 4 `flowyard worker` processes
beside the SQLite single server, and synchronous-webhook latency behind a backlog, in one run.

    .venv/bin/python -m bench.scale [--deliveries 3000] [--rounds 2] [--workers 1,2,4]
                                    [--backlog 5000] [--sync 200] [--sync-workers 2]

It starts a PostgreSQL server in a temporary directory (`bench/postgres.py`) with
`synchronous_commit=off`: like SQLite's `synchronous=NORMAL`, which Flowyard uses, a power cut
may lose the last commits but never corrupts. Each configuration gets a fresh schema.

- Throughput: one `flowyard serve --workers 0` web host takes the webhooks (and the API the bench
  polls) and N `flowyard worker` processes run them. The flow, the aiohttp echo server standing
  in for the third-party API and the load (aiohttp, `--concurrency` requests at once) are
  bench/ingest's end-to-end; each round sends `--deliveries` webhooks and times until every
  execution succeeded (a few are read back with every step record). The SQLite single server
  (`flowyard serve` alone, as bench/ingest runs it) is measured the same way in the same run.
- Sync latency: the web host, with no worker yet, acknowledges `--backlog` async webhooks
  (nothing runs them, so exactly that many are queued); then `--sync-workers` workers start
  draining them and `--sync` requests with `X-Flowyard-Sync: true` are timed, each a full round
  trip through the flow. The queue depth is sampled throughout.

Every round prints the 1-minute load, how busy the machine's cores were (and how much of that was
other processes' work) and the CPU each of the bench's processes used. Nothing is pinned: see
`docs/performance.md` for why. Targets (issue 20): 2 workers >= 1.6x one worker; sync p99 < 1 s.
Figures, not verdicts: timings never gate a test (`tests/test_bench_scale.py` runs `measure` with
tiny sizes to prove the bench works end to end).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.cluster import (
    Cluster,
    Deployment,
    echo_server,
    running_cluster,
    sqlite_server,
    tracebacks,
)
from bench.cpu import CpuMeter, Usage
from bench.ingest import (
    FINISHED_BAD,
    _e2e_round,
    _event,
    _send,
    _spot_check,
    _until_finished,
)
from bench.postgres import postgres_server

__all__ = ["PG_SETTINGS", "Round", "ScaleOptions", "ScaleReport", "SyncResult", "main", "measure"]

PG_SETTINGS = ("synchronous_commit=off", "max_connections=200")
"""How the bench's PostgreSQL runs; each web host and worker holds up to 16 connections."""
TWO_WORKER_TARGET = 1.6
SYNC_P99_TARGET = 1.0
SYNC_HEADERS = {"Content-Type": "application/json", "X-Flowyard-Sync": "true"}
Say = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ScaleOptions:
    """Sizes of one run; the defaults are what `make bench` measures."""

    deliveries: int = 3000
    rounds: int = 2
    warmup: int = 200
    concurrency: int = 64
    worker_counts: tuple[int, ...] = (1, 2, 4)
    backlog: int = 5000
    sync_requests: int = 200
    sync_concurrency: int = 1
    sync_workers: int = 2
    idle_sync: int = 20
    """Synchronous requests timed before the backlog, for comparison."""
    spot_check: int = 5
    """Executions read back with every step record after each round."""


# --- throughput ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One round of end-to-end deliveries."""

    deliveries: int
    acked: float
    """Seconds until every webhook was acknowledged."""
    finished: float
    """Seconds until every execution succeeded."""
    usage: Usage

    @property
    def rate(self) -> float:
        return self.deliveries / self.finished


@dataclass(frozen=True)
class Throughput:
    label: str
    workers: int | None
    """`flowyard worker` processes; None for the SQLite single server."""
    rounds: list[Round]

    @property
    def best(self) -> Round:
        return max(self.rounds, key=lambda r: r.rate)


def _check_succeeded(url: str, expected: int) -> None:
    counts = httpx.get(f"{url}/api/executions", params={"limit": 1}, timeout=30).json()["counts"]
    if counts["succeeded"] != expected or any(counts[k] for k in FINISHED_BAD):
        raise RuntimeError(f"expected {expected} succeeded executions, found {counts}")


def _throughput(
    deployment: Deployment, label: str, workers: int | None, options: ScaleOptions, say: Say
) -> Throughput:
    n, c = options.deliveries, options.concurrency
    url, webhook = deployment.url, deployment.webhook
    say(f"{label}:")
    asyncio.run(_e2e_round(url, webhook, 0, options.warmup, c))
    sent = options.warmup
    meter = CpuMeter(deployment.pids)
    rounds = []
    for number in range(1, options.rounds + 1):
        mark = meter.read()
        acked, finished, ids = asyncio.run(_e2e_round(url, webhook, sent, n, c))
        result = Round(n, acked, finished, meter.since(mark))
        rounds.append(result)
        sent += n
        _spot_check(url, ids, options.spot_check)
        say(
            f"  round {number}: {n:,} acked in {acked:.2f} s, all succeeded in {finished:.2f} s: "
            f"{result.rate:,.0f} executions/s"
        )
        for line in result.usage.describe(n).splitlines():
            say(f"    {line}")
    _check_succeeded(url, sent)
    return Throughput(label, workers, rounds)


# --- synchronous latency behind a backlog --------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    workers: int
    idle: list[float]
    """Seconds per synchronous round trip with nothing queued and no worker running."""
    latencies: list[float]
    """Seconds per synchronous round trip behind the backlog, in the order sent."""
    with_backlog: int
    """How many of them were sent while async executions were still queued."""
    backlog_acked: float
    """Seconds the web host took to acknowledge the backlog."""
    queued_before_workers: int
    depth_start: int
    depth_end: int
    usage: Usage


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile (0 < p <= 100) of non-empty `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def _timed_sync(
    session: aiohttp.ClientSession, webhook: str, first: int, requests: int, concurrency: int
) -> list[tuple[float, float]]:
    """(start, seconds) of each synchronous request, `concurrency` at a time; raises unless each
    was answered 200 with the flow's reply."""
    numbers = iter(range(first, first + requests))
    timed: list[tuple[float, float]] = []

    async def one_at_a_time() -> None:
        for i in numbers:
            started = time.perf_counter()
            async with session.post(webhook, data=_event(i), headers=SYNC_HEADERS) as response:
                answer = await response.json()
            timed.append((started, time.perf_counter() - started))
            if response.status != 200 or answer != {"received": f"evt_{i}"}:
                raise RuntimeError(f"synchronous webhook answered {response.status}: {answer}")

    await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
    return sorted(timed)


async def _watch_queue(
    queued: Callable[[], int], samples: list[tuple[float, int]], stop: asyncio.Event
) -> None:
    """Sample the backlog four times a second until `stop` is set."""
    while not stop.is_set():
        samples.append((time.perf_counter(), await asyncio.to_thread(queued)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def _sync_phase(cluster: Cluster, options: ScaleOptions) -> SyncResult:
    deployment = cluster.deployment
    url, webhook = deployment.url, deployment.webhook
    connector = aiohttp.TCPConnector(limit=options.concurrency + 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = min(5, options.idle_sync)
        await _timed_sync(session, webhook, 0, warm, 1)
        idle = await _timed_sync(session, webhook, warm, options.idle_sync, 1)
        sent = warm + options.idle_sync
        started = time.perf_counter()
        await _send(session, webhook, sent, options.backlog, options.concurrency)
        backlog_acked = time.perf_counter() - started
        sent += options.backlog
        queued_before = await asyncio.to_thread(cluster.queued)
        await asyncio.to_thread(cluster.add_workers, options.sync_workers)
        meter = CpuMeter(deployment.pids)
        mark = meter.read()
        samples: list[tuple[float, int]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_queue(cluster.queued, samples, stop))
        try:
            depth_start = await asyncio.to_thread(cluster.queued)
            timed = await _timed_sync(
                session, webhook, sent, options.sync_requests, options.sync_concurrency
            )
            depth_end = await asyncio.to_thread(cluster.queued)
        finally:
            stop.set()
            await watcher
        usage = meter.since(mark)
        sent += options.sync_requests
        await _until_finished(session, url, sent)
    _check_succeeded(url, sent)
    emptied = next((at for at, queued in samples if queued == 0), math.inf)
    return SyncResult(
        workers=options.sync_workers,
        idle=[seconds for _, seconds in idle],
        latencies=[seconds for _, seconds in timed],
        with_backlog=sum(1 for start, _ in timed if start < emptied),
        backlog_acked=backlog_acked,
        queued_before_workers=queued_before,
        depth_start=depth_start,
        depth_end=depth_end,
        usage=usage,
    )


def _describe_sync(result: SyncResult, options: ScaleOptions, say: Say) -> None:
    ms = 1000
    say(
        f"  idle (nothing queued, no worker): p50 {percentile(result.idle, 50) * ms:.0f} ms, "
        f"p99 {percentile(result.idle, 99) * ms:.0f} ms over {len(result.idle)} requests"
    )
    say(
        f"  backlog: {options.backlog:,} async webhooks acked in {result.backlog_acked:.1f} s; "
        f"{result.queued_before_workers:,} queued before the workers started, "
        f"{result.depth_start:,} when the first synchronous request left, "
        f"{result.depth_end:,} after the last one"
    )
    n = len(result.latencies)
    say(
        f"  behind the backlog: p50 {percentile(result.latencies, 50) * ms:.0f} ms, "
        f"p99 {percentile(result.latencies, 99) * ms:.0f} ms, max "
        f"{max(result.latencies) * ms:.0f} ms over {n} requests "
        f"({result.with_backlog} of them sent while executions were still queued)"
    )
    for line in result.usage.describe().splitlines():
        say(f"    {line}")


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleReport:
    sqlite: Throughput
    postgres: list[Throughput]
    sync: SyncResult


def measure(base_url: str, options: ScaleOptions, say: Say = print) -> ScaleReport:
    """Run every configuration against the PostgreSQL server at `base_url` (a fresh schema each)
    and the SQLite single server; print each round and the summary through `say`."""
    n, c = options.deliveries, options.concurrency
    say(
        f"bench/scale: {n:,} webhooks x{options.rounds} rounds (best counts) per configuration, "
        f"concurrency {c}; webhook -> branch -> transform -> HTTP call to a local aiohttp "
        "server -> respond, every step recorded"
    )
    with echo_server() as (echo_url, echo_pid), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with sqlite_server(root / "sqlite", echo_url, echo_pid) as deployment:
            try:
                sqlite = _throughput(
                    deployment, "SQLite: `flowyard serve` alone", None, options, say
                )
            finally:
                tracebacks(deployment, say)
        postgres = []
        for workers in options.worker_counts:
            label = f"PostgreSQL: `flowyard serve --workers 0` + {workers} `flowyard worker`"
            with running_cluster(root / f"pg{workers}", base_url, echo_url, echo_pid) as group:
                try:
                    group.add_workers(workers)
                    postgres.append(_throughput(group.deployment, label, workers, options, say))
                finally:
                    tracebacks(group.deployment, say)
        say(
            f"synchronous webhooks behind a backlog: PostgreSQL, web host + "
            f"{options.sync_workers} workers, {options.sync_requests} requests "
            f"{options.sync_concurrency} at a time"
        )
        with running_cluster(root / "sync", base_url, echo_url, echo_pid) as group:
            try:
                sync = asyncio.run(_sync_phase(group, options))
            finally:
                tracebacks(group.deployment, say)
        _describe_sync(sync, options, say)
    report = ScaleReport(sqlite, postgres, sync)
    _summary(report, say)
    return report


def _summary(report: ScaleReport, say: Say) -> None:
    say(
        "summary: best round of each; ratio to one worker; CPU per execution of every process "
        "the bench runs (load generator included); the rate the cores could hold at that cost"
    )
    one = next((t for t in report.postgres if t.workers == 1), None)
    rows = [("SQLite, flowyard serve alone", report.sqlite, "")]
    for throughput in report.postgres:
        count = throughput.workers
        shown = f"{throughput.best.rate / one.best.rate:.2f}" if one else "-"
        plural = "s" if count != 1 else ""
        rows.append((f"PostgreSQL, web host + {count} worker{plural}", throughput, shown))
    for label, throughput, shown in rows:
        best = throughput.best
        usage, n = best.usage, best.deliveries
        say(
            f"  {label:<35}: {best.rate:6,.0f} executions/s {shown:>5}  "
            f"{usage.ms_per(n):.2f} ms CPU, {usage.ceiling(n):6,.0f}/s"
        )
    two = next((t for t in report.postgres if t.workers == 2), None)
    if one and two:
        ratio = two.best.rate / one.best.rate
        met = "met" if ratio >= TWO_WORKER_TARGET else "NOT met"
        say(f"  target: 2 workers >= {TWO_WORKER_TARGET}x one worker: {ratio:.2f}x, {met}.")
        if ratio < TWO_WORKER_TARGET:
            say(f"    Bound: {_bound(two.best, one.best)}")
    sync = report.sync
    p99 = percentile(sync.latencies, 99)
    met = "met" if p99 < SYNC_P99_TARGET else "NOT met"
    say(
        f"  target: synchronous p99 < {SYNC_P99_TARGET:.0f} s behind the backlog: "
        f"{p99 * 1000:.0f} ms, {met}."
    )
    if p99 >= SYNC_P99_TARGET:
        usage = sync.usage
        say(
            f"    Bound: while the workers drained the backlog the cores were "
            f"{usage.machine:.0%} busy ({usage.outside:.0%} with other work): the synchronous "
            "run starts at once in the web host, but waits for a core like everything else."
        )


def _bound(two: Round, one: Round) -> str:
    """What the CPU figures say about a 2-worker shortfall."""
    usage, n = two.usage, two.deliveries
    workers = [name for name in usage.processes if name.startswith("w") and name[1:].isdigit()]
    parts = {
        "the workers": usage.ms_per(n, workers),
        "the web host": usage.ms_per(n, ["web"]),
        "PostgreSQL": usage.ms_per(n, ["postgres"]),
        "the load generator and echo server": usage.ms_per(n, ["client", "echo"]),
    }
    spent = ", ".join(f"{name} {ms:.2f}" for name, ms in parts.items())
    worker_ms = one.usage.ms_per(one.deliveries, ["w1"])
    # One worker is one Python process: about one core at most, whatever the machine has.
    one_cap = min(one.usage.ceiling(one.deliveries), 1000 / worker_ms)
    possible = usage.ceiling(n) / one_cap
    verdict = (
        f"below {TWO_WORKER_TARGET}x: this machine cannot meet the target"
        if possible < TWO_WORKER_TARGET
        else "so the target is within reach of these cores"
    )
    return (
        f"with 2 workers an execution cost {usage.ms_per(n):.2f} ms of CPU ({spent}), so the "
        f"{os.cpu_count()} cores hold at most {usage.ceiling(n):,.0f}/s. One worker (its own "
        f"process {worker_ms:.2f} ms, one core: ~{1000 / worker_ms:,.0f}/s; "
        f"{one.usage.ms_per(one.deliveries):.2f} ms in all) could reach {one_cap:,.0f}/s on the "
        f"same cores: at best 2 workers gain {possible:.2f}x here, {verdict}. In the rounds "
        f"measured the cores were {one.usage.machine:.0%} and {usage.machine:.0%} busy, "
        f"{one.usage.outside:.0%} and {usage.outside:.0%} with other work."
    )


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` stops the bench's processes."""

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of counts like 1,2,4")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ScaleOptions()
    parser.add_argument("--deliveries", type=int, default=defaults.deliveries)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=defaults.worker_counts,
        help="worker process counts to measure, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--backlog", type=int, default=defaults.backlog)
    parser.add_argument("--sync", type=int, default=defaults.sync_requests)
    parser.add_argument("--sync-concurrency", type=int, default=defaults.sync_concurrency)
    parser.add_argument("--sync-workers", type=int, default=defaults.sync_workers)
    args = parser.parse_args()
    sizes = ("deliveries", "rounds", "concurrency", "backlog", "sync")
    for name in (*sizes, "sync_concurrency", "sync_workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    options = ScaleOptions(
        deliveries=args.deliveries,
        rounds=args.rounds,
        concurrency=args.concurrency,
        worker_counts=args.workers,
        backlog=args.backlog,
        sync_requests=args.sync,
        sync_concurrency=args.sync_concurrency,
        sync_workers=args.sync_workers,
    )
    _stop_on_signals()
    settings = ", ".join(PG_SETTINGS)
    print(f"PostgreSQL: a fresh server in a temporary directory ({settings})", flush=True)
    with postgres_server(PG_SETTINGS) as base_url:
        measure(base_url, options, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
