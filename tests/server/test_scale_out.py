"""Several hosts on one PostgreSQL: a web host that runs no executions and two worker hosts.

Under a steady stream of Standard Webhooks-signed deliveries one worker is killed with SIGKILL
and another started: every acknowledged webhook ends with exactly one succeeded execution, none
is lost, none duplicated, nothing is left running.

The `network` parameter says where the hosts are. `namespaces`: PostgreSQL, the web server, each
worker and the load generator in a Linux network namespace of its own on one private bridge
(`tests/server/hosts.py`); they reach each other only by address, PostgreSQL listens on its
host's address and the web server is bound beyond loopback, so `/api` needs its token. Where
namespaces cannot be made (not root), this runs the same scenario on loopback and prints why.
`loopback`: every process on 127.0.0.1, on the suite's database. `make scale-test` runs the
namespace variant alone and shows its figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from app.persistence.crypto import SECRET_KEY_ENV
from app.persistence.db import DATABASE_URL_ENV
from bench.serving import deploy_text, standard_signature, stop_process
from tests.postgres import postgres_server
from tests.server.conftest import FIXTURES, ROOT, free_port
from tests.server.hosts import Hosts, hosts
from tests.server.streams import stream_webhooks

pytestmark = pytest.mark.postgres_only

TOTAL = 600
RATE = 100  # webhooks per second
LEASE = 2.0  # seconds: a killed worker's executions are claimed again this soon
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # durable.yaml's signing secret
HOSTS = ["pg", "web", "w1", "w2", "w3", "load"]


Start = tuple[str, list[str], tuple[str, str]]
"""A process to start: (host, `python -m app` arguments, (host to probe from, URL to probe))."""


@dataclass
class Cluster:
    """The scenario's hosts, the processes started on them and the way to the web server's API."""

    hosts: Hosts
    tmp: Path
    env: dict[str, str]
    """What every process gets: the database URL, the secret key, the short lease."""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_url: str = ""
    health: dict[str, str] = field(default_factory=dict)
    """worker host -> its health URL (on that host's loopback)."""

    def launch(self, *starts: Start) -> dict[str, subprocess.Popen[bytes]]:
        """Start all of `starts` at once; once each answers its probe with 200, {host: process}."""
        waiting = []
        for host, argv, (prober, url) in starts:
            with (self.tmp / f"{host}.log").open("ab") as log:  # the child keeps its own handle
                process = subprocess.Popen(
                    self.hosts.command(host, [sys.executable, "-m", "app", *argv]),
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.processes.append(process)
            waiting.append((host, process, self.hosts.submit(prober, _answers, process, url)))
        for host, _, answered in waiting:
            if not answered.result():
                log_text = (self.tmp / f"{host}.log").read_text(errors="replace")
                raise RuntimeError(f"{host} did not start:\n{log_text}")
        return {host: process for host, process, _ in waiting}

    def web(self) -> Start:
        """The web host: `flowyard serve` on its host's address, running no executions."""
        address, port = self.hosts.address("web"), free_port()
        self.web_url = f"http://{address}:{port}"
        argv = [
            "serve",
            "--host",
            address,
            "--port",
            str(port),
            "--data-dir",
            str(self.tmp / "web"),
        ]
        return "web", [*argv, "--workers", "0"], ("load", f"{self.web_url}/api/health")

    def worker(self, host: str) -> Start:
        port = free_port()  # the worker's health answers on its own host's loopback
        self.health[host] = f"http://127.0.0.1:{port}/health"
        argv = ["worker", "--data-dir", str(self.tmp / host), "--health-port", str(port)]
        return host, [*argv, "--workers", "32", "--grace", "5"], (host, self.health[host])

    @property
    def headers(self) -> dict[str, str]:
        """The API token, which a web server bound beyond loopback writes to its data dir."""
        token = self.tmp / "web" / "api-token"
        return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}

    def stop(self) -> None:
        for process in self.processes:  # all at once: each may take seconds to finish
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            stop_process(process)

    def api(self, path: str, **params: Any) -> Any:
        """GET the web server's `/api<path>` from the load generator's host."""

        def get() -> Any:
            response = httpx.get(
                f"{self.web_url}/api{path}", params=params, headers=self.headers, timeout=30
            )
            assert response.status_code == 200, response.text
            return response.json()

        return self.hosts.call("load", get)


def _busy(url: str, timeout: float = 15) -> bool:
    """Whether the worker whose health is at `url` runs an execution within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(url, timeout=1).json()["running"] > 0:
            return True
        time.sleep(0.05)
    return False


def _answers(process: subprocess.Popen[bytes], url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


@pytest.fixture(params=["loopback", "namespaces"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["FLOWYARD_LEASE_SECONDS"] = str(LEASE)
    env[SECRET_KEY_ENV] = Fernet.generate_key().decode()  # the cluster's: every host has it
    with ExitStack() as stack:  # unwinds in reverse: processes, then PostgreSQL, then hosts
        made = stack.enter_context(hosts(HOSTS, isolate=request.param == "namespaces"))
        if request.param == "namespaces" and not made.isolated:
            with capsys.disabled():
                print(f"\nscale-out test on loopback instead of namespaces: {made.note}")
        if made.isolated:
            server = postgres_server(listen=made.address("pg"), netns=made.namespaces["pg"])
            env[DATABASE_URL_ENV] = stack.enter_context(server)
        cluster = Cluster(made, tmp_path, env)
        stack.callback(cluster.stop)
        yield cluster


def signed(n: int) -> tuple[bytes, dict[str, str]]:
    """Delivery `n`'s body and Standard Webhooks headers (its `webhook-id` is its delivery id)."""
    msg_id, body, timestamp = f"msg_{n}", json.dumps({"n": n}).encode(), str(int(time.time()))
    return body, {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_signature(SECRET, msg_id, timestamp, body),
    }


def refused_forgery(url: str) -> int:
    body, headers = signed(-1)
    headers["webhook-signature"] = standard_signature(SECRET, "msg_other", "0", body)
    return httpx.post(url, content=body, headers=headers, timeout=30).status_code


def all_executions(cluster: Cluster) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while page := cluster.api("/executions", limit=500, offset=len(found))["executions"]:
        found += page
    return found


@pytest.mark.timeout(180)
def test_killing_a_worker_under_load_loses_nothing_and_runs_nothing_twice(
    cluster: Cluster,
) -> None:
    first = cluster.launch(cluster.web(), cluster.worker("w1"), cluster.worker("w2"))["w1"]
    text = (FIXTURES / "durable.yaml").read_text()
    url = cluster.hosts.call(
        "load", deploy_text, cluster.web_url, text, "scale", headers=cluster.headers
    )["count"]
    assert url.startswith(f"{cluster.web_url}/webhooks/")
    if cluster.hosts.isolated:  # bound to its address, the web host's API wants its token
        without = cluster.hosts.call("load", httpx.get, f"{cluster.web_url}/api/executions")
        assert without.status_code == 401, without.text
    assert cluster.hosts.call("load", refused_forgery, url) == 401
    sending = cluster.hosts.submit(
        "load", lambda: asyncio.run(stream_webhooks(url, TOTAL, RATE, request=signed))
    )
    time.sleep(2.5)
    # Killed mid-stream while it holds executions: they must be claimed again after the lease.
    assert cluster.hosts.call("w1", _busy, cluster.health["w1"])
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    cluster.launch(cluster.worker("w3"))
    acked = sending.result()
    assert len(acked) == TOTAL

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cluster.api("/executions", limit=1)["counts"]["succeeded"] >= TOTAL:
            break
        time.sleep(0.5)
    time.sleep(LEASE)  # nothing may run again after the last one finished
    listed = cluster.api("/executions", limit=1)
    counts = {status: n for status, n in listed["counts"].items() if n}
    executions = all_executions(cluster)
    ids = {execution["id"] for execution in executions}
    figures = {
        "acknowledged": len(acked),
        "executions": listed["total"],
        "succeeded": counts.get("succeeded", 0),
        "lost": len(set(acked.values()) - ids),
        "duplicated": listed["total"] - len(set(acked.values())),
        "left running": counts.get("running", 0) + counts.get("queued", 0),
        "recovered": sum(1 for execution in executions if execution["recovered"]),
    }
    print(f"{cluster.hosts.note}\n{json.dumps(figures)}")
    assert counts == {"succeeded": TOTAL}, counts
    assert listed["total"] == TOTAL == len(executions)
    assert ids == set(acked.values())  # one execution per delivery, and only those
    assert figures["recovered"] > 0  # the killed worker's, re-run by the others
    delivery = {execution_id: n for n, execution_id in acked.items()}
    recovered = [execution["id"] for execution in executions if execution["recovered"]]
    for execution_id in [*recovered, acked[0], acked[TOTAL - 1]]:
        steps = cluster.api(f"/executions/{execution_id}")["steps"]
        parity = "even" if delivery[execution_id] % 2 == 0 else "odd"
        done = [step["step_id"] for step in steps if step["status"] == "succeeded"]
        assert done == ["trigger", "pause", "route", parity], steps  # each step once
    logs = [(cluster.tmp / f"{host}.log").read_text() for host in ("w2", "w3")]
    assert not any("Traceback" in log for log in logs), logs
