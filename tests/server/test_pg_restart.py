"""PostgreSQL restarted under load: the ingest answers 503 while it is down, Flowyard recovers
without a restart of its own, and no acknowledged webhook is lost or run twice."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.postgres import pg_binary, run_as_postgres
from tests.server.conftest import ServerProcess, free_port
from tests.server.streams import stream_webhooks
from tests.server.test_http_api import deploy

pytestmark = pytest.mark.postgres_only

TOTAL = 400
RATE = 100


@dataclass
class Postgres:
    """A PostgreSQL server of this test's own, so restarting it disturbs no other test."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        data, log = str(self.root / "data"), str(self.root / "log")
        command = [pg_binary("pg_ctl"), "-D", data, "-o", options, "-l", log, *args]
        subprocess.run(run_as_postgres(*command), check=True, capture_output=True)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="flowyard-pg-restart-"))
    shutil.chown(root, "postgres")
    server = Postgres(root, free_port())
    subprocess.run(
        run_as_postgres(
            pg_binary("initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres"
        ),
        check=True,
        capture_output=True,
    )
    server.ctl("-w", "start")
    try:
        yield server
    finally:
        subprocess.run(
            run_as_postgres(
                pg_binary("pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(300)
def test_a_postgres_restart_under_load_loses_nothing(postgres: Postgres, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        free_port(),
        tmp_path / "server.log",
        env={"FLOWYARD_DATABASE_URL": postgres.url, "FLOWYARD_LEASE_SECONDS": "3"},
    )
    server.start()
    try:
        url = deploy(server, "count.yaml", "restart")["count"]
        refused: list[int] = []
        loop = asyncio.new_event_loop()
        sending = loop.create_task(stream_webhooks(url, TOTAL, RATE, refused))
        loop.run_until_complete(asyncio.sleep(1.5))
        postgres.ctl("-m", "fast", "-w", "stop")
        loop.run_until_complete(asyncio.sleep(2.0))  # down: the ingest answers 503
        postgres.ctl("-w", "start")
        acked = loop.run_until_complete(sending)
        loop.close()
        assert refused, "the ingest never answered 503 while the database was down"
        assert len(acked) == TOTAL
        deadline = time.monotonic() + 120  # generous: the machine may be busy
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            try:
                listed = httpx.get(f"{server.url}/api/executions", params={"limit": 1}).json()
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            counts = {status: n for status, n in listed["counts"].items() if n}
            if counts.get("succeeded", 0) >= TOTAL:
                break
            time.sleep(0.5)
        assert counts == {"succeeded": TOTAL}, counts
        assert len(set(acked.values())) == TOTAL
        assert server.process is not None and server.process.poll() is None  # never restarted
    finally:
        server.stop()
