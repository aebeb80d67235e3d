"""The whole demo on one laptop: `python -m examples.launch --data-dir DIR [--port 8080]`.

Starts the demo CRM and Acme apps (`python -m examples.demoapps`) and `flowyard serve` with the
example components, imports every `examples/*.yaml`, saves the sample payloads of
`examples/payloads/` as test payloads, deploys an instance `demo` of the two-way CRM <-> Acme
integration (unless one is already deployed against these apps; its CRM connection is OAuth
2.0, connected through the CRM's consent page as a browser would: `examples/oauth_connect.py`),
prints the URLs to open, and
on Ctrl-C or SIGTERM stops every process it started. Exit status: 0 after a stop, 1 when
something could not start or a process died.

Flowyard keeps its data in DIR, the demo apps theirs in DIR/demo-apps; both log to files in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from examples.demoapps import DEFAULT_ACME_KEY, DEFAULT_CRM_KEY
from examples.oauth_connect import ConnectError, connect_crm

__all__ = ["DEMO_INSTANCE", "Launcher", "main"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEMO_INSTANCE = "demo"
CRM_CONNECTION = "crm"
"""The stored OAuth connection to the demo CRM that the demo instance uses."""
TWO_WAY = "CRM and Acme"
PAYLOADS = (
    ("Warehouse import", "warehouse_update", "Two updates", "warehouse-update.json"),
    ("Order export", "order_paid", "Paid order", "order-paid.json"),
    (TWO_WAY, "crm_account", "Account updated", "crm-account-updated.json"),
    (TWO_WAY, "crm_opportunity", "Opportunity updated", "crm-opportunity-updated.json"),
    (TWO_WAY, "acme_opportunity_update", "Amount changed", "acme-opportunity-updated.json"),
)
"""(integration, flow id, test payload name, file in examples/payloads)."""
STARTUP_SECONDS = 90.0


class LaunchError(Exception):
    """Something could not start; the message says what and where to look."""


class Launcher:
    """Starts, watches and stops the demo's processes."""

    def __init__(self, data_dir: Path, port: int, crm_port: int, acme_port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.url = f"http://127.0.0.1:{port}"
        self.crm_url = f"http://127.0.0.1:{crm_port}"
        self.acme_url = f"http://127.0.0.1:{acme_port}"
        self.port, self.crm_port, self.acme_port = port, crm_port, acme_port
        self.children: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.stopping = threading.Event()
        self.http = httpx.Client(timeout=30, trust_env=False)

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = self.data_dir / f"{name}.log"
        with log.open("ab") as out:  # the child keeps its own copy of the handle
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.children.append((name, process, log))

    def wait_ready(self, urls: Sequence[str]) -> None:
        """Wait until every URL answers 200, failing early when a child exits."""
        deadline = time.monotonic() + STARTUP_SECONDS
        pending = list(urls)
        while pending:
            self.check_children()
            if self.stopping.is_set():
                raise LaunchError("interrupted while starting")
            if time.monotonic() > deadline:
                raise LaunchError(f"{pending[0]} did not answer within {STARTUP_SECONDS:g} s")
            try:
                if self.http.get(pending[0], timeout=2).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            self.stopping.wait(0.2)

    def check_children(self) -> None:
        for name, process, log in self.children:
            code = process.poll()
            if code is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise LaunchError(f"{name} exited with status {code}; the end of {log}:\n{tail}")

    def stop_all(self) -> None:
        """Stop the children, newest first: SIGTERM, then SIGKILL after 15 s."""
        for _, process, _ in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        for _, process, _ in reversed(self.children):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.http.close()

    # --- the demo ----------------------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        apps = [sys.executable, "-m", "examples.demoapps"]
        apps += ["--data-dir", str(self.data_dir / "demo-apps")]
        apps += ["--crm-port", str(self.crm_port), "--acme-port", str(self.acme_port)]
        self.spawn("demo-apps", apps, env)
        serve = [sys.executable, "-m", "app", "serve", "--port", str(self.port)]
        serve += ["--data-dir", str(self.data_dir)]
        self.spawn(
            "flowyard", serve, {**env, "FLOWYARD_COMPONENTS_DIR": str(EXAMPLES / "components")}
        )
        self.wait_ready([f"{self.crm_url}/health", f"{self.acme_url}/health"])
        self.wait_ready([f"{self.url}/api/health"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/api{path}", **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text}
            details = json.dumps(body.get("details"), indent=2) if body.get("details") else ""
            raise LaunchError(f"{method} /api{path}: {body.get('error')}\n{details}".rstrip())
        return response.json() if response.content else None

    def import_examples(self) -> list[str]:
        names = []
        for path in sorted(EXAMPLES.glob("*.yaml")):
            summary = self.api(
                "POST",
                "/integrations",
                params={"source": path.name},
                content=path.read_bytes(),
                headers={"Content-Type": "application/yaml"},
            )
            names.append(str(summary["name"]))
        return names

    def save_payloads(self) -> None:
        """Each sample payload becomes a test payload of its flow, unless one has its name."""
        for integration, flow_id, name, file in PAYLOADS:
            saved = self.api("GET", f"/integrations/{integration}/payloads")
            if any(p["flow_id"] == flow_id and p["name"] == name for p in saved):
                continue
            data = json.loads((EXAMPLES / "payloads" / file).read_text())
            request = data if isinstance(data, dict) and "body" in data else {"body": data}
            self.api(
                "POST",
                f"/integrations/{integration}/payloads",
                json={
                    "flow_id": flow_id,
                    "name": name,
                    "body": request.get("body"),
                    "headers": request.get("headers", {}),
                    "query": request.get("query", {}),
                },
            )

    def deployed(self) -> dict[str, Any] | None:
        """The demo instance, when it is active against these apps with its webhooks in place."""
        found = self.api("GET", "/instances", params={"integration": TWO_WAY})
        view = next((i for i in found if i["name"] == DEMO_INSTANCE), None)
        if view is None:
            return None
        hooks = {f["flow_id"]: f["webhook_url"] for f in view["flows"]}
        crm = self.http.get(
            f"{self.crm_url}/api/outbound-messages",
            headers={"Authorization": f"Bearer {DEFAULT_CRM_KEY}"},
        )
        registered = {s["url"] for s in crm.json().get("items", [])} if crm.is_success else set()
        current = (
            view["status"] == "active"
            and view["config"].get("crm_url") == self.crm_url
            and view["config"].get("acme_url") == self.acme_url
            and hooks.get("crm_account") in registered
        )
        if current:
            return dict(view)
        print(f"Instance '{DEMO_INSTANCE}' is out of date ({view['status']}): deploying it again.")
        self.api("DELETE", f"/instances/{view['id']}")
        return None

    def deploy(self) -> dict[str, Any]:
        try:  # the CRM connection is OAuth 2.0: stored once, connected through its consent
            connect_crm(self.http, self.url, self.crm_url, CRM_CONNECTION)
        except ConnectError as exc:
            raise LaunchError(f"The CRM connection could not be connected: {exc}") from None
        view = self.deployed()
        if view is not None:
            return view
        view = self.api(
            "POST",
            "/instances",
            json={
                "name": DEMO_INSTANCE,
                "integration": TWO_WAY,
                "config": {
                    "crm_url": self.crm_url,
                    "acme_url": self.acme_url,
                    "webhook_secret": secrets.token_urlsafe(24),
                },
                "connections": {
                    "crm": {"credential": CRM_CONNECTION},
                    "acme": {"api_key": DEFAULT_ACME_KEY},
                },
            },
        )
        if view["status"] != "active":
            error = (view.get("error") or {}).get("message", view["status"])
            raise LaunchError(f"The demo instance did not deploy: {error}")
        return dict(view)

    def banner(self, names: list[str]) -> str:
        curl = (
            f"curl -X POST {self.crm_url}/api/accounts -H 'Authorization: Bearer "
            f"{DEFAULT_CRM_KEY}' -H 'Content-Type: application/json' -d '{{\"name\": \"Globex\"}}'"
        )
        return "\n".join(
            [
                "",
                "Flowyard is ready.",
                f"  Flowyard:   {self.url}/",
                f"  API docs:   {self.url}/api/docs",
                f"  Demo CRM:   {self.crm_url}/   (API key {DEFAULT_CRM_KEY})",
                f"  Acme:       {self.acme_url}/   (API key {DEFAULT_ACME_KEY})",
                f"Integrations: {', '.join(names)}.",
                f"Instance '{DEMO_INSTANCE}' of '{TWO_WAY}' is deployed: create an account or "
                "change an opportunity in the CRM and watch it arrive in Acme, e.g.",
                f"  {curl}",
                f"Logs: {self.data_dir / 'flowyard.log'}, {self.data_dir / 'demo-apps.log'}",
                "Stop with Ctrl-C.",
            ]
        )

    def run(self) -> int:
        try:
            self.start()
            names = self.import_examples()
            self.save_payloads()
            self.deploy()
            print(self.banner(names), flush=True)
            while not self.stopping.wait(0.5):
                self.check_children()
        except LaunchError as exc:
            if self.stopping.is_set():
                print("Stopped.")
                return 0
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"error: talking to a started process failed: {exc}", file=sys.stderr)
            return 1
        finally:
            self.stop_all()
        print("Stopped.")
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the demo until a signal, return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.launch",
        description="Start Flowyard with the examples, the demo apps and a deployed instance.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="Where the data lives.")
    parser.add_argument("--port", type=int, default=8080, help="Flowyard's port (8080).")
    parser.add_argument("--crm-port", type=int, default=8091, help="The demo CRM's port (8091).")
    parser.add_argument("--acme-port", type=int, default=8092, help="Acme's port (8092).")
    args = parser.parse_args(argv)
    ports = [args.port, args.crm_port, args.acme_port]
    if len(set(ports)) != 3 or not all(0 < p < 65536 for p in ports):
        parser.error("--port, --crm-port and --acme-port must be three different ports (1-65535)")
    launcher = Launcher(args.data_dir, args.port, args.crm_port, args.acme_port)

    def stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        launcher.stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
