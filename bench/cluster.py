"""The processes of bench/scale.py: the echo server, a SQLite single server, a cluster.

`echo_server()` runs bench/ingest's echo server (the third-party API the bench flow calls);
`sqlite_server(...)` is `flowyard serve` alone on its SQLite file; `running_cluster(...)` is a
`flowyard serve --workers 0` web host on a fresh PostgreSQL schema, to which
`Cluster.add_workers(n)` adds `flowyard worker` processes. Each yields once the bench integration
(`bench/fixtures/e2e.yaml`) is deployed and stops every process it started on the way out.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from app.persistence.crypto import KEY_FILE_NAME, SECRET_KEY_ENV
from app.persistence.db import DATABASE_URL_ENV, create_db_engine
from app.persistence.models import InboxRow
from app.persistence.repositories import table_of
from bench.ingest import _deploy, _serve_echo
from bench.postgres import postmaster_pid, schema_url
from bench.serving import ServerProcess, WorkerProcess, free_port

__all__ = ["Cluster", "Deployment", "echo_server", "running_cluster", "sqlite_server", "tracebacks"]


@dataclass
class Deployment:
    """A running configuration with the bench integration deployed."""

    url: str
    """Where the API answers (the execution counts the bench polls)."""
    webhook: str
    pids: dict[str, int]
    """The processes whose CPU is counted, by the name printed."""
    logs: dict[str, Callable[[], str]] = field(default_factory=dict)


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """bench/ingest's echo server in a child process: its URL and process id."""
    port = free_port()
    echo = multiprocessing.get_context("spawn").Process(
        target=_serve_echo, args=(port,), daemon=True
    )
    echo.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not echo.is_alive():
                    raise RuntimeError("the echo server did not start") from None
                time.sleep(0.1)
        assert echo.pid is not None
        yield f"http://127.0.0.1:{port}", echo.pid
    finally:
        echo.terminate()
        echo.join(10)


@contextlib.contextmanager
def sqlite_server(tmp: Path, echo_url: str, echo_pid: int) -> Iterator[Deployment]:
    """`flowyard serve` alone on its SQLite file, as bench/ingest's end-to-end runs it."""
    # An empty URL means the data directory's SQLite file, whatever this process was given.
    tmp.mkdir(parents=True)
    sqlite = {DATABASE_URL_ENV: ""}
    server = ServerProcess(tmp / "data", free_port(), tmp / "server.log", env=sqlite)
    try:
        server.start(60)
        assert server.process is not None
        yield Deployment(
            server.url,
            _deploy(server.url, echo_url),
            {"server": server.process.pid, "echo": echo_pid},
            {"server": server.log},
        )
    finally:
        server.stop()


class Cluster:
    """A `flowyard serve --workers 0` web host and `flowyard worker` processes on one database."""

    deployment: Deployment
    """Set by `start()`."""

    def __init__(self, tmp: Path, database_url: str, echo_pid: int) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True)
        self.env = {DATABASE_URL_ENV: database_url}
        self.db = create_db_engine(url=database_url)
        self.web = ServerProcess(
            tmp / "web", free_port(), tmp / "web.log", env=self.env, args=["--workers", "0"]
        )
        self.workers: list[WorkerProcess] = []
        self.pids = {"echo": echo_pid}
        if (postgres := postmaster_pid(database_url)) is not None:
            self.pids["postgres"] = postgres

    def start(self, echo_url: str) -> Deployment:
        self.web.start(60)
        assert self.web.process is not None
        self.pids["web"] = self.web.process.pid
        self.deployment = Deployment(self.web.url, _deploy(self.web.url, echo_url), self.pids)
        self.deployment.logs["web"] = self.web.log
        return self.deployment

    def add_workers(self, count: int) -> None:
        """Start `count` more workers side by side; return once each answers its health check."""
        key = (self.web.data_dir / KEY_FILE_NAME).read_text().strip()
        new = []
        for _ in range(count):
            name = f"w{len(self.workers) + 1}"
            worker = WorkerProcess(
                self.tmp / name,
                self.tmp / f"{name}.log",
                env={**self.env, SECRET_KEY_ENV: key},
                # Stops come after every execution finished: nothing to wait for.
                args=["--grace", "2"],
            )
            self.workers.append(worker)
            new.append((name, worker))
            worker.launch()
        for name, worker in new:
            worker.wait_ready(60)
            assert worker.process is not None
            self.pids[name] = worker.process.pid
            self.deployment.logs[name] = worker.log

    def queued(self) -> int:
        """Inbox rows no worker has claimed yet: the backlog (the API counts executions, which
        begin when a row is claimed)."""
        with self.db.connect() as conn:
            inbox = table_of(InboxRow)
            query = select(func.count()).select_from(inbox).where(inbox.c.status == "queued")
            return int(conn.execute(query).scalar_one())

    def stop(self) -> None:
        self.db.dispose()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop()
        self.web.stop()


@contextlib.contextmanager
def running_cluster(tmp: Path, base_url: str, echo_url: str, echo_pid: int) -> Iterator[Cluster]:
    """A cluster on a fresh schema of the server at `base_url`, web host started; stopped after."""
    with schema_url(base_url) as url:
        cluster = Cluster(tmp, url, echo_pid)
        try:
            cluster.start(echo_url)
            yield cluster
        finally:
            cluster.stop()


def tracebacks(deployment: Deployment, say: Callable[[str], None]) -> None:
    """Say each log of `deployment` that holds a traceback."""
    for name, log in deployment.logs.items():
        text = log()
        if "Traceback" in text:
            say(f"  {name} log:\n{text}")
