"""The hostile suite's server: a real `flowyard serve`, a canary instance, what a case left.

`Harness.start()` runs a server on a fresh data directory and deploys the target integration
(`fixtures/target.yaml`, instance `target`) and the canary (`fixtures/canary.yaml`, instance
`canary`, a separate integration). Around each case:

- `before()` takes a `Snapshot`: the highest inbox row id, row counts of the tables a request
  could write, and where the server log ends;
- `stored_since(snapshot)` lists what appeared since, outside the canary (inbox rows, executions,
  integrations, instances, test payloads): a refused request must leave this empty;
- `canary_alive()` posts to the canary's webhook and waits (up to `CANARY_SECONDS`, a liveness
  bound, not a performance figure) for its execution to succeed; `None` when it did, else why;
- `tracebacks_since(snapshot)` is what the server logged as a crash meanwhile.

A case that leaves the server unable to run the canary marks the harness `poisoned`; the next
case's `ensure_healthy()` starts a fresh server, so one failure is reported once, by its case.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.serving import ServerProcess, deploy_text, free_port

__all__ = [
    "CANARY_SECONDS",
    "FIXTURES",
    "READ_TIMEOUT",
    "UNSET",
    "Harness",
    "Snapshot",
    "strings_in",
    "wait_for_execution",
]

READ_TIMEOUT = 2.0
"""The hostile server's `FLOWYARD_READ_TIMEOUT` (the default, 30 s, would make its row slow)."""

UNSET: Any = object()
"""No expectation on this field of a case."""

FIXTURES = Path(__file__).parent / "fixtures"
CANARY_SECONDS = 10.0
"""How long the canary's execution may take before the server counts as stalled."""

_TABLES = ("executions", "integrations", "instances", "test_payloads", "flows")


@dataclass(frozen=True)
class Snapshot:
    """What the database and the log held before a case."""

    inbox_max_id: int
    rows: dict[str, int]
    log_offset: int


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def strings_in(value: Any) -> str:
    """Every string in a JSON value, one a line: fragments are matched against text unescaped."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(strings_in(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(strings_in(v) for v in value)
    return ""


def wait_for_execution(base_url: str, execution_id: str, timeout: float) -> dict[str, Any]:
    """The execution's detail once finished; `AssertionError` when it is not within `timeout`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        response = httpx.get(f"{base_url}/api/executions/{execution_id}", timeout=timeout)
        last = response.text[:500]
        if response.status_code == 200 and response.json()["status"] not in ("queued", "running"):
            detail: dict[str, Any] = response.json()
            return detail
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout} s: {last}")


@dataclass
class Harness:
    """One server of the hostile suite (see the module docstring)."""

    root: Path
    server: ServerProcess | None = None
    urls: dict[str, str] = field(default_factory=dict)
    canary_url: str = ""
    canary_instance: str = ""
    poisoned: bool = False
    starts: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def db_path(self) -> Path:
        assert self.server is not None
        return self.server.data_dir / "flowyard.db"

    def path_of(self, flow: str) -> str:
        """The path of the target flow's webhook URL, e.g. `/webhooks/<token>`."""
        return urlsplit(self.urls[flow]).path

    def start(self) -> None:
        self.starts += 1
        run = self.root / f"run{self.starts}"
        run.mkdir(parents=True)
        self.server = ServerProcess(
            run / "data",
            free_port(),
            run / "server.log",
            env={"FLOWYARD_READ_TIMEOUT": str(READ_TIMEOUT)},
        )
        self.server.start()
        self.urls = deploy_text(self.url, (FIXTURES / "target.yaml").read_text(), "target")
        canary = deploy_text(self.url, (FIXTURES / "canary.yaml").read_text(), "canary")
        self.canary_url = canary["ping"]
        (instance,) = [
            i for i in httpx.get(f"{self.url}/api/instances").json() if i["name"] == "canary"
        ]
        self.canary_instance = instance["id"]
        self.poisoned = False

    def stop(self) -> None:
        if self.server is not None and self.poisoned:
            self.kill()
        elif self.server is not None:
            self.server.stop()

    def ensure_healthy(self) -> None:
        """Replace a server an earlier case left stalled or dead with a fresh one."""
        assert self.server is not None
        dead = self.server.process is None or self.server.process.poll() is not None
        if self.poisoned or dead:
            self.kill()
            self.start()

    def kill(self) -> None:
        """SIGKILL the server and its engine processes: a child stuck in a regex never notices
        that its parent is gone, and would burn a core for minutes."""
        assert self.server is not None and self.server.process is not None
        children = _children(self.server.process.pid)
        self.server.kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log(self) -> str:
        assert self.server is not None
        return self.server.log()

    # --- what a case left ---------------------------------------------------------------------

    def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        # a read-only connection beside the server's (WAL): it sees every committed row
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def before(self) -> Snapshot:
        (top,) = self._query("SELECT COALESCE(MAX(id), 0) FROM inbox")[0]
        rows = {table: self._count(table) for table in _TABLES}
        return Snapshot(inbox_max_id=top, rows=rows, log_offset=len(self.log()))

    def _count(self, table: str) -> int:
        if table == "executions":
            sql = "SELECT COUNT(*) FROM executions WHERE instance_id IS NOT ?"
            count: int = self._query(sql, self.canary_instance)[0][0]
            return count
        total: int = self._query(f"SELECT COUNT(*) FROM {table}")[0][0]
        return total

    def stored_since(self, snapshot: Snapshot) -> list[str]:
        """What appeared since `snapshot` outside the canary; empty when nothing was stored."""
        found = [
            f"inbox row {row_id} (flow {flow}, status {status})"
            for row_id, flow, status in self._query(
                "SELECT id, flow_id, status FROM inbox WHERE id > ? AND instance_id != ?",
                snapshot.inbox_max_id,
                self.canary_instance,
            )
        ]
        for table, count in snapshot.rows.items():
            now = self._count(table)
            if now != count:
                found.append(f"{table}: {count} rows before, {now} after")
        return found

    def inbox_rows_since(self, snapshot: Snapshot) -> int:
        sql = "SELECT COUNT(*) FROM inbox WHERE id > ? AND instance_id != ?"
        count: int = self._query(sql, snapshot.inbox_max_id, self.canary_instance)[0][0]
        return count

    def tracebacks_since(self, snapshot: Snapshot) -> str:
        """The log written since `snapshot` when it holds a traceback, else ""."""
        text = self.log()[snapshot.log_offset :]
        return text if "Traceback" in text else ""

    def canary_alive(self, n: int = 0) -> str | None:
        """None when the canary's execution succeeded in time; else what went wrong."""
        try:
            sent = httpx.post(self.canary_url, json={"n": n}, timeout=CANARY_SECONDS)
            if sent.status_code != 202:
                return f"the canary's webhook answered {sent.status_code}: {sent.text[:300]}"
            detail = wait_for_execution(self.url, sent.json()["execution_id"], CANARY_SECONDS)
        except (httpx.HTTPError, AssertionError) as exc:
            return f"the canary did not complete: {type(exc).__name__}: {exc}"
        if detail["status"] != "succeeded":
            return f"the canary's execution ended {detail['status']}: {detail.get('error')}"
        return None

    def require_canary(self, n: int = 0) -> None:
        """Assert the canary runs; a stalled server is marked for replacement first."""
        problem = self.canary_alive(n)
        if problem is not None:
            self.poisoned = True
            raise AssertionError(f"other integrations stopped running: {problem}")

    # --- one case -------------------------------------------------------------------------------

    @contextmanager
    def case(self) -> Iterator[Snapshot]:
        """Run one case: a healthy server before, and a stalled one replaced after a failure."""
        self.ensure_healthy()
        snapshot = self.before()
        try:
            yield snapshot
        except BaseException:
            if not self.poisoned and self.canary_alive() is not None:
                self.poisoned = True
            raise

    def settle(
        self,
        snapshot: Snapshot,
        *,
        accepted: bool,
        runs: int = 1,
        body_seen: Any = UNSET,
        outcome: str = "succeeded",
    ) -> None:
        """Check what a case left: an accepted request stored `runs` inbox rows whose executions
        ended `outcome` (the flow saw `body_seen`), a refused one stored nothing; the canary runs
        and the server logged no crash."""
        if accepted:
            rows = self._query(
                "SELECT execution_id FROM inbox WHERE id > ? AND instance_id != ?",
                snapshot.inbox_max_id,
                self.canary_instance,
            )
            assert len(rows) == runs, f"{len(rows)} requests stored, {runs} expected"
            for (execution_id,) in rows:
                detail = wait_for_execution(self.url, execution_id, CANARY_SECONDS)
                assert detail["status"] == outcome, detail.get("error")
                if body_seen is not UNSET:
                    (trigger,) = [s for s in detail["steps"] if s["step_id"] == "trigger"]
                    assert trigger["output"]["body"] == body_seen
        else:
            stored = self.stored_since(snapshot)
            assert stored == [], f"a refused request stored {stored}"
        self.still_serving(snapshot)

    def still_serving(self, snapshot: Snapshot) -> None:
        """The canary runs and the server logged no crash since `snapshot`."""
        self.require_canary()
        crash = self.tracebacks_since(snapshot)
        assert not crash, f"the server logged a crash:\n{crash[-3000:]}"
