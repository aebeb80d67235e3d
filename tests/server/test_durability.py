"""Durability: a real server receives 2,000 webhooks at a steady rate and is killed with SIGKILL
twice mid-run; every acknowledged webhook ends with exactly one completed execution."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time

import aiohttp
import httpx
import pytest

from tests.server.conftest import ServerProcess
from tests.server.test_http_api import deploy

TOTAL = 2000
RATE = 150  # webhooks per second, paced like a real sender


async def send_all(url: str) -> dict[int, str]:
    """Send TOTAL webhooks at RATE/s; a sender retries until acknowledged, as real ones do."""
    acked: dict[int, str] = {}
    # aiohttp, not httpx: after a server is SIGKILLed, httpcore's pool kept its slots busy
    # (PoolTimeout on every request) while aiohttp's connector recovers at once.
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(n: int) -> None:
            headers = {"Idempotency-Key": f"delivery-{n}"}
            while True:
                try:
                    async with client.post(url, json={"n": n}, headers=headers) as response:
                        status, text = response.status, await response.text()
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.2)
                    continue
                if status in (200, 202):
                    acked[n] = json.loads(text)["execution_id"]
                    return
                if status >= 500:
                    await asyncio.sleep(0.2)
                    continue
                raise AssertionError(f"webhook {n}: {status} {text}")

        tasks = []
        start = time.monotonic()
        for n in range(TOTAL):
            delay = start + n / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return acked


def wait_until_idle(server: ServerProcess, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = httpx.get(f"{server.url}/api/executions", params={"limit": 1}).json()["counts"]
        if counts["queued"] == 0 and counts["running"] == 0 and sum(counts.values()) >= TOTAL:
            return counts
        time.sleep(0.5)
    raise AssertionError(f"not idle after {timeout} s: {counts}")


@pytest.mark.timeout(300)
def test_sigkill_twice_loses_nothing_and_runs_nothing_twice(server: ServerProcess) -> None:
    urls = deploy(server, "durable.yaml", "durable")
    duration = TOTAL / RATE
    crashes: list[float] = []

    def crash_twice() -> None:
        for at in (0.3, 0.65):
            time.sleep(max(0.0, start + duration * at - time.monotonic()))
            server.kill()
            crashes.append(time.monotonic())
            server.start()

    start = time.monotonic()
    killer = threading.Thread(target=crash_twice)
    killer.start()
    acked = asyncio.run(send_all(urls["count"]))
    killer.join()
    assert len(crashes) == 2

    assert len(acked) == TOTAL
    assert len(set(acked.values())) == TOTAL, "two webhooks share an execution"
    counts = wait_until_idle(server, timeout=120)
    assert counts["succeeded"] == TOTAL, counts
    assert sum(counts.values()) == TOTAL, counts

    for n in (0, 1, TOTAL // 2, TOTAL - 1):
        detail = httpx.get(f"{server.url}/api/executions/{acked[n]}").json()
        assert detail["status"] == "succeeded"
        parity = "even" if n % 2 == 0 else "odd"
        (record,) = [s for s in detail["steps"] if s["step_id"] == parity]
        assert record["output"] == {"n": n, "parity": parity}
    server.stop()

    db = sqlite3.connect(server.data_dir / "flowyard.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT id, status FROM executions").fetchall()
        assert sorted(r[0] for r in rows) == sorted(acked.values())
        assert {r[1] for r in rows} == {"succeeded"}
        duplicated = db.execute(
            "SELECT execution_id, step_id, COUNT(*) FROM step_records "
            "GROUP BY execution_id, step_id, iteration_path HAVING COUNT(*) > 1"
        ).fetchall()
        assert duplicated == []
        left = db.execute("SELECT COUNT(*) FROM inbox WHERE status != 'done'").fetchone()
        assert left == (0,)
    finally:
        db.close()
