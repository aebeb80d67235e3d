"""`flowyard serve --worker-processes N` on PostgreSQL: local `flowyard worker` processes run the
server's executions, one that dies is replaced, and they stop with the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ServerProcess, free_port
from tests.server.streams import stream_webhooks
from tests.server.test_http_api import deploy

pytestmark = pytest.mark.postgres_only

RATE = 100
LEASE = 2.0


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
        url = deploy(server, "count.yaml", "local")["count"]
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
