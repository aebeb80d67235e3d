"""Crash soak: signed webhooks at a steady rate into a real server that is SIGKILLed mid-run.

    .venv/bin/python -m bench.soak [--deliveries 10000] [--rate 200] [--kills 3]

Starts `flowyard serve` on 127.0.0.1 with a fresh data directory, deploys `fixtures/soak.yaml`
(a Standard-Webhooks-signed flow whose one HTTP step posts the delivery's id to a loopback sink
that counts side effects per id) and sends `--deliveries` signed requests at `--rate` per second.
The server is killed with SIGKILL `--kills` times, evenly through the run, and restarted each
time. Like a real sender, the soak retries a delivery that failed or was not answered (a
connection error, a 5xx) with the same `webhook-id`, signed afresh, until it is acknowledged.

At the end it prints:

- lost: acknowledged deliveries without a succeeded execution;
- duplicated: webhook-ids with more than one execution;
- re-run side effects: ids the sink saw more than once (a step that ran, then its execution was
  re-run after a crash: at-least-once execution allows it, so it is reported, not failed);
- p50 / p99 acknowledgement latency of attempts made outside the kill windows (a kill to one
  second after the restarted server answers);

and the database checks: integrity, no step recorded twice, nothing left in the inbox. It exits
1 when anything was lost, duplicated or left, 0 otherwise. Ratios and latencies are figures for
the reader; `tests/server/test_soak.py` runs a 1,000-delivery soak and asserts only the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import httpx

from bench.serving import ServerProcess, deploy_text, free_port, standard_signature

__all__ = ["Sink", "SoakReport", "main", "run_soak"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FIXTURE = Path(__file__).parent / "fixtures" / "soak.yaml"
WINDOW_TAIL = 1.0
"""Seconds after a restarted server answers that still count as its kill window."""


class Sink:
    """A loopback HTTP server counting the POSTs it gets per delivery id (`{"id": ...}`)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        lock = threading.Lock()
        counts = self.counts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                delivery = json.loads(self.rfile.read(length) or b"{}").get("id", "")
                with lock:
                    counts[str(delivery)] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/effect"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class SoakReport:
    """What a soak found; `ok` is False on any loss, duplicate, failure or leftover."""

    deliveries: int
    acknowledged: int
    kills: int
    lost: int
    duplicated: int
    not_succeeded: int
    rerun_side_effects: int
    missing_side_effects: int
    wrong_outputs: int
    """Executions whose output is not their own delivery's number."""
    duplicated_step_records: int
    inbox_left: int
    integrity: str
    refused: list[str] = field(default_factory=list)
    """Deliveries answered with a 4xx: the sender would not retry them."""
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.acknowledged == self.deliveries
            and self.lost == 0
            and self.duplicated == 0
            and self.not_succeeded == 0
            and self.missing_side_effects == 0
            and self.wrong_outputs == 0
            and self.duplicated_step_records == 0
            and self.inbox_left == 0
            and self.integrity == "ok"
            and not self.refused
        )

    def percentile(self, q: float) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]

    def lines(self) -> list[str]:
        return [
            f"deliveries {self.deliveries}, acknowledged {self.acknowledged}, "
            f"server killed {self.kills} times, {self.seconds:.1f} s",
            f"lost (acknowledged, no succeeded execution): {self.lost}",
            f"duplicated (more than one execution per webhook-id): {self.duplicated}",
            f"executions not succeeded: {self.not_succeeded}",
            f"re-run side effects (ids the sink saw more than once): {self.rerun_side_effects}",
            f"missing side effects (executed ids the sink never saw): {self.missing_side_effects}",
            f"outputs not their delivery's: {self.wrong_outputs}",
            f"steps recorded twice: {self.duplicated_step_records}, inbox rows left: "
            f"{self.inbox_left}, integrity: {self.integrity}",
            f"refused deliveries: {len(self.refused)} {self.refused[:3]}",
            f"ack latency outside kill windows: p50 {self.percentile(50):.1f} ms, "
            f"p99 {self.percentile(99):.1f} ms ({len(self.latencies_ms)} attempts)",
        ]


@dataclass
class _Sent:
    acked: dict[str, str] = field(default_factory=dict)
    """webhook-id -> execution id."""
    attempts: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) of each acknowledged attempt."""
    refused: list[str] = field(default_factory=list)


async def _send_all(url: str, deliveries: int, rate: float, answer_timeout: float) -> _Sent:
    sent = _Sent()
    # aiohttp, not httpx: after a SIGKILL httpcore's pool kept its slots busy (PoolTimeout on
    # every request) while aiohttp's connector recovers at once.
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=answer_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(n: int) -> None:
            msg_id, body, pause = f"msg_{n}", json.dumps({"n": n}).encode(), 0.2
            while True:
                timestamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": timestamp,
                    "webhook-signature": standard_signature(SECRET, msg_id, timestamp, body),
                }
                start = time.monotonic()
                try:
                    async with client.post(url, data=body, headers=headers) as response:
                        status, text = response.status, await response.text()
                except (aiohttp.ClientError, TimeoutError):
                    status, text = 0, ""
                if status in (200, 202):
                    sent.acked[msg_id] = json.loads(text)["execution_id"]
                    sent.attempts.append((start, time.monotonic()))
                    return
                if status and status < 500:
                    sent.refused.append(f"{msg_id}: {status} {text[:200]}")
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

        tasks = []
        start = time.monotonic()
        for n in range(deliveries):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return sent


def _kill_repeatedly(
    server: ServerProcess, kills: int, every: float, windows: list[tuple[float, float]]
) -> None:
    """SIGKILL and restart the server `kills` times, `every` seconds apart at the least."""
    due = time.monotonic()
    for _ in range(kills):
        due += every
        time.sleep(max(0.0, due - time.monotonic()))
        killed = time.monotonic()
        server.kill()
        server.start(timeout=60)
        windows.append((killed, time.monotonic() + WINDOW_TAIL))
        due = max(due, time.monotonic())


def _wait_until_idle(server: ServerProcess, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{server.url}/api/executions", params={"limit": 1}, timeout=30)
        counts = answer.json()["counts"]
        if counts["queued"] == 0 and counts["running"] == 0 and sum(counts.values()) >= total:
            return
        time.sleep(0.5)
    raise TimeoutError(f"executions still running after {timeout} s: {counts}")


def _outside(windows: list[tuple[float, float]], start: float, end: float) -> bool:
    return all(end < killed or start > ready for killed, ready in windows)


def run_soak(
    root: Path,
    deliveries: int = 10_000,
    rate: float = 200.0,
    kills: int = 3,
    drain_timeout: float = 300.0,
) -> SoakReport:
    """Run one soak in `root` (data directory and server log); see the module docstring."""
    began = time.monotonic()
    server = ServerProcess(root / "data", free_port(), root / "server.log")
    with Sink() as sink:
        server.start(timeout=60)
        try:
            urls = deploy_text(
                server.url, FIXTURE.read_text(), "soak", config={"sink_url": sink.url}
            )
            windows: list[tuple[float, float]] = []
            killer = threading.Thread(
                target=_kill_repeatedly,
                args=(server, kills, deliveries / rate / (kills + 1), windows),
            )
            killer.start()
            try:
                sent = asyncio.run(_send_all(urls["deliver"], deliveries, rate, 10.0))
            finally:
                killer.join()
            _wait_until_idle(server, len(sent.acked), drain_timeout)
        finally:
            server.stop()
        report = _check_database(server.data_dir / "flowyard.db", sent, sink.counts)
    report.deliveries = deliveries
    report.kills = len(windows)
    report.latencies_ms = [
        (end - start) * 1000 for start, end in sent.attempts if _outside(windows, start, end)
    ]
    report.seconds = time.monotonic() - began
    return report


def _check_database(path: Path, sent: _Sent, effects: Counter[str]) -> SoakReport:
    db = sqlite3.connect(path)
    try:
        per_id = dict(
            db.execute(
                "SELECT i.delivery_id, COUNT(e.id) FROM inbox i "
                "LEFT JOIN executions e ON e.id = i.execution_id GROUP BY i.delivery_id"
            ).fetchall()
        )
        status = dict(db.execute("SELECT id, status FROM executions").fetchall())
        twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM step_records "
            "GROUP BY execution_id, step_id, iteration_path HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        left = db.execute("SELECT COUNT(*) FROM inbox WHERE status != 'done'").fetchone()[0]
        wrong = db.execute(
            "SELECT COUNT(*) FROM inbox i JOIN executions e ON e.id = i.execution_id "
            "WHERE 'msg_' || json_extract(e.output, '$.n') != i.delivery_id"
        ).fetchone()[0]
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    lost = sum(1 for execution in sent.acked.values() if status.get(execution) != "succeeded")
    executed = [msg_id for msg_id in sent.acked if per_id.get(msg_id)]
    return SoakReport(
        deliveries=0,
        acknowledged=len(sent.acked),
        kills=0,
        lost=lost,
        duplicated=sum(1 for count in per_id.values() if count > 1),
        not_succeeded=sum(1 for s in status.values() if s != "succeeded"),
        rerun_side_effects=sum(1 for count in effects.values() if count > 1),
        missing_side_effects=sum(1 for msg_id in executed if effects[msg_id] == 0),
        wrong_outputs=wrong,
        duplicated_step_records=twice,
        inbox_left=left,
        integrity=str(integrity),
        refused=sent.refused,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries per second")
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowyard-soak-") as root:
        report = run_soak(Path(root), args.deliveries, args.rate, args.kills)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
