"""Several processes on one PostgreSQL: a web server that runs no executions and two workers.

Under a steady stream of webhooks one worker is killed with SIGKILL and another started: every
acknowledged webhook ends with exactly one succeeded execution, nothing is left running. The
processes share this machine's loopback (the network-namespace variant is not built yet).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.persistence.crypto import KEY_FILE_NAME, SECRET_KEY_ENV
from tests.server.conftest import ROOT, ServerProcess, free_port
from tests.server.streams import stream_webhooks
from tests.server.test_http_api import deploy

pytestmark = pytest.mark.postgres_only

TOTAL = 600
RATE = 100  # webhooks per second
LEASE = 2.0  # seconds: a killed worker's executions are claimed again this soon


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(extra)
    return env


def start_worker(tmp: Path, name: str, key: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with (tmp / f"{name}.log").open("ab") as log:  # the child keeps its own copy of the handle
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "app", "worker", "--data-dir", str(tmp / name)),
                *("--health-port", str(port), "--workers", "32", "--grace", "5"),
            ],
            cwd=ROOT,
            env=child_env(**{SECRET_KEY_ENV: key, "FLOWYARD_LEASE_SECONDS": str(LEASE)}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((tmp / f"{name}.log").read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"worker {name} did not start: {(tmp / f'{name}.log').read_text()}")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "web",
        free_port(),
        tmp_path / "web.log",
        env={"FLOWYARD_LEASE_SECONDS": str(LEASE)},
        args=["--workers", "0"],
    )
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(180)
def test_killing_a_worker_under_load_loses_nothing_and_runs_nothing_twice(
    web: ServerProcess, tmp_path: Path
) -> None:
    key = (web.data_dir / KEY_FILE_NAME).read_text().strip()
    url = deploy(web, "durable.yaml", "scale")["count"]
    first, _ = start_worker(tmp_path, "w1", key)
    second, _ = start_worker(tmp_path, "w2", key)
    workers = [first, second]
    try:
        sender = asyncio.new_event_loop()
        sending = sender.create_task(stream_webhooks(url, TOTAL, RATE))
        sender.run_until_complete(asyncio.sleep(2.5))
        first.send_signal(signal.SIGKILL)  # mid-stream, with executions in flight
        first.wait(10)
        third, _ = start_worker(tmp_path, "w3", key)
        workers.append(third)
        acked = sender.run_until_complete(sending)
        sender.close()
        assert len(acked) == TOTAL
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = httpx.get(f"{web.url}/api/executions", params={"limit": 1}).json()
            if listed["counts"].get("succeeded", 0) >= TOTAL:
                break
            time.sleep(0.5)
        time.sleep(LEASE)  # nothing may finish twice after the last one finished
        listed = httpx.get(f"{web.url}/api/executions", params={"limit": 1}).json()
        counts = {status: n for status, n in listed["counts"].items() if n}
        assert counts == {"succeeded": TOTAL}, counts
        assert listed["total"] == TOTAL
        assert len(set(acked.values())) == TOTAL  # one execution id per delivery
        for n in (0, TOTAL // 2, TOTAL - 1):
            detail = httpx.get(f"{web.url}/api/executions/{acked[n]}").json()
            assert detail["status"] == "succeeded"
            parity = "even" if n % 2 == 0 else "odd"
            done = [s["step_id"] for s in detail["steps"] if s["status"] == "succeeded"]
            assert done == ["trigger", "route", parity]
        logs = [(tmp_path / f"w{i}.log").read_text() for i in (2, 3)]
        assert not any("Traceback" in text for text in logs), logs
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


@pytest.mark.timeout(120)
def test_serve_runs_its_executions_in_local_worker_processes(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "web",
        free_port(),
        tmp_path / "web.log",
        env={"FLOWYARD_LEASE_SECONDS": str(LEASE)},
        args=["--workers", "0", "--worker-processes", "2"],  # the server itself runs none
    )
    server.start()
    try:
        assert server.process is not None
        deadline = time.monotonic() + 30
        while len(children_of(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        first, second = children_of(server.process.pid)
        url = deploy(server, "durable.yaml", "local")["count"]
        os.kill(first, signal.SIGKILL)  # a dead worker process is replaced
        acked = asyncio.run(stream_webhooks(url, 200, RATE))
        deadline = time.monotonic() + 60
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            listed = httpx.get(f"{server.url}/api/executions", params={"limit": 1}).json()
            counts = {status: n for status, n in listed["counts"].items() if n}
            if counts.get("succeeded", 0) >= len(acked):
                break
            time.sleep(0.3)
        assert counts == {"succeeded": 200}, counts
        now = children_of(server.process.pid)
        assert len(now) == 2 and second in now and first not in now
    finally:
        server.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in now)  # they stop with the server
