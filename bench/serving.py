"""A real `flowyard serve` child process on 127.0.0.1, for tests, soaks and benchmarks.

`ServerProcess(data_dir, port, log_path).start()` runs `python -m app serve` from the repository
root and returns once `/api/health` answers; `kill()` is a SIGKILL (a crash, for durability runs),
`stop()` a SIGTERM with a SIGKILL after 15 s. `WorkerProcess` does the same for `flowyard worker`
(ready once its `--health-port` answers). `deploy_text(url, text, name)` imports an integration
file through the REST API and deploys it as an active instance, returning each flow's webhook URL.

The child's environment drops `PYTEST_CURRENT_TEST`: NiceGUI inside a server started from pytest
otherwise fails with `KeyError: 'NICEGUI_SCREEN_TEST_PORT'`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "ROOT",
    "ServerProcess",
    "WorkerProcess",
    "deploy_text",
    "free_port",
    "standard_signature",
    "stop_process",
]

ROOT = Path(__file__).parent.parent
"""The repository root: the server's working directory."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running server; `restart()` and `kill()` let durability tests crash it for real."""

    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    """Extra `flowyard serve` options, e.g. `["--workers", "32"]`."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        command = [sys.executable, "-m", "app", "serve", "--port", str(self.port)]
        command += ["--host", self.host]
        command += ["--data-dir", str(self.data_dir), *self.args]
        self.process = _launch(command, self.env, self.log_path)
        _wait_healthy(self.process, f"{self.url}/api/health", timeout, "server", self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class WorkerProcess:
    """A running `flowyard worker`; `launch()` then `wait_ready()` (or `start()`) starts it.

    It needs the database (`FLOWYARD_DATABASE_URL` in `env` or this environment) and the web
    server's secret key (`FLOWYARD_SECRET_KEY`) that its executions decrypt connections with.
    """

    data_dir: Path
    log_path: Path
    health_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    """Extra `flowyard worker` options, e.g. `["--workers", "32"]`."""
    process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process without waiting: several workers then come up side by side."""
        command = [sys.executable, "-m", "app", "worker", "--data-dir", str(self.data_dir)]
        command += ["--health-port", str(self.health_port), *self.args]
        self.process = _launch(command, self.env, self.log_path)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once `GET /health` answers; raises with the log when the worker exited."""
        assert self.process is not None, "launch() the worker first"
        url = f"http://127.0.0.1:{self.health_port}/health"
        _wait_healthy(self.process, url, timeout, "worker", self.log)

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _launch(command: list[str], extra: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["FLOWYARD_HTTP_BLOCK_PRIVATE"] = "0"
    env.update(extra)
    with log_path.open("ab") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_healthy(
    process: subprocess.Popen[bytes], url: str, timeout: float, what: str, log: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {timeout} s:\n{log()}")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 15 s, for a child process still running."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def deploy_text(
    base_url: str, text: str, name: str, *, headers: dict[str, str] | None = None, **request: Any
) -> dict[str, str]:
    """Import the integration file `text`, deploy it as instance `name`; {flow id: webhook URL}.

    `headers` go with both requests (the API token of a server bound beyond loopback);
    `request` adds deploy fields (`config`, `connections`). Raises `AssertionError` with the
    server's answer when the import or deploy is refused or the instance is not active.
    """
    headers = headers or {}
    imported = httpx.post(
        f"{base_url}/api/integrations",
        content=text,
        headers={**headers, "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert imported.status_code == 201, imported.text
    body = {"name": name, "integration": imported.json()["name"], **request}
    deployed = httpx.post(f"{base_url}/api/instances", json=body, headers=headers, timeout=30)
    assert deployed.status_code == 201, deployed.text
    view = deployed.json()
    assert view["status"] == "active", view
    return {flow["flow_id"]: flow["webhook_url"] for flow in view["flows"]}


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The `webhook-signature` value a Standard Webhooks sender computes: `v1,<base64>` of the
    HMAC-SHA256 of `{msg_id}.{timestamp}.{body}` under the base64 key after `whsec_` (missing
    base64 padding is tolerated, as senders' own libraries do)."""
    encoded = secret.removeprefix("whsec_")
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
