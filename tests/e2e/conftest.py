"""Real processes on 127.0.0.1 for end-to-end tests: the demo apps and a Flowyard server.

Each child gets its own data directory and free ports, and a log file shown when it fails to
start. `wait_until` polls with a deadline; tests never sleep a fixed time as an assertion.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.server.conftest import ROOT, free_port, stop_process

COMPONENTS = ROOT / "examples" / "components"
CRM_KEY, ACME_KEY = "crm-test-key", "acme-test-key"
T = TypeVar("T")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours, without pytest's marker (see design.md)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(extra)
    return env


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if found:
                return found
            last = found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


@dataclass
class Child:
    """A child process started from a command, with its output in `log_path`."""

    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=child_env)
    process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process (see `wait_ready`)."""
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, ready: list[str], timeout: float = 60.0) -> None:
        """Wait until every URL in `ready` answers 200; stop the process and fail if not."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        pending = list(ready)
        while pending and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited early:\n{self.log()}")
            try:
                if httpx.get(pending[0], timeout=1).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        if pending:
            self.stop()
            raise RuntimeError(f"{pending[0]} did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class DemoApps:
    """Both demo apps in one child process, with API clients for each."""

    child: Child
    crm_url: str
    acme_url: str

    def crm(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.crm_url, headers={"Authorization": f"Bearer {CRM_KEY}"}, timeout=10
        )

    def acme(self) -> httpx.Client:
        return httpx.Client(base_url=self.acme_url, headers={"X-API-Key": ACME_KEY}, timeout=10)


def demo_apps_child(tmp: Path) -> DemoApps:
    """Both demo apps on free ports, with quick redeliveries (not started yet)."""
    crm_port, acme_port = free_port(), free_port()
    command = [sys.executable, "-m", "examples.demoapps", "--data-dir", str(tmp / "apps")]
    command += ["--crm-port", str(crm_port), "--acme-port", str(acme_port)]
    command += ["--crm-api-key", CRM_KEY, "--acme-api-key", ACME_KEY]
    command += ["--retry-delay", "0.2", "--max-retry-delay", "1"]
    crm, acme = f"http://127.0.0.1:{crm_port}", f"http://127.0.0.1:{acme_port}"
    return DemoApps(Child(command, tmp / "apps.log"), crm, acme)


def flowyard_child(tmp: Path) -> tuple[Child, str]:
    """`flowyard serve` on a free port with the example components (not started yet)."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp / "flowyard")]
    env = child_env(FLOWYARD_COMPONENTS_DIR=str(COMPONENTS))
    return Child(command, tmp / "flowyard.log", env), f"http://127.0.0.1:{port}"


@contextmanager
def running_stack(tmp: Path, *app_args: str) -> Iterator[tuple[DemoApps, str]]:
    """The demo apps (with `app_args` added to their command) and a Flowyard server, started
    side by side (both import for seconds); stopped when the block ends."""
    apps = demo_apps_child(tmp)
    apps.child.command += list(app_args)
    server, url = flowyard_child(tmp)
    apps.child.launch()
    server.launch()
    try:
        apps.child.wait_ready([f"{apps.crm_url}/health", f"{apps.acme_url}/health"])
        server.wait_ready([f"{url}/api/health"])
        yield apps, url
    finally:
        server.stop()
        apps.child.stop()


def import_file(url: str, path: Path) -> None:
    """Import an integration file into the server at `url` (201 expected)."""
    imported = httpx.post(
        f"{url}/api/integrations",
        content=path.read_bytes(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert imported.status_code == 201, imported.text


def deploy_example(server: str, apps: DemoApps, name: str, secret: str) -> dict[str, Any]:
    """Deploy an instance of the CRM <-> Acme example (examples/crm-acme.yaml) against `apps`,
    its CRM slot on the stored OAuth connection `crm`; it must become active."""
    response = httpx.post(
        f"{server}/api/instances",
        json={
            "name": name,
            "integration": "CRM and Acme",
            "config": {
                "crm_url": apps.crm_url,
                "acme_url": apps.acme_url,
                "webhook_secret": secret,
            },
            "connections": {"crm": {"credential": "crm"}, "acme": {"api_key": ACME_KEY}},
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    assert view["status"] == "active", view
    return view


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoApps, str]]:
    """The demo apps and a Flowyard server, started side by side."""
    with running_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture(scope="module")
def demo_apps(stack: tuple[DemoApps, str]) -> DemoApps:
    return stack[0]


@pytest.fixture(scope="module")
def flowyard(stack: tuple[DemoApps, str]) -> str:
    return stack[1]
