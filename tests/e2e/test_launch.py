"""Smoke test of `make run` itself: on 127.0.0.1:8080 (and the demo apps' 8091/8092) when those
ports are free, as a user runs it; on free ports otherwise (`make run PORT=...`), so a busy CI
machine still runs the same entry point. Stopped with SIGINT to its process group, as Ctrl-C
in a terminal does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import child_env, wait_until
from tests.server.conftest import ROOT, free_port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found |= {child} | descendants(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from /proc")
def test_launch_serves_the_examples_with_a_deployed_demo_and_stops_everything(
    tmp_path: Path,
) -> None:
    defaults = (8080, 8091, 8092)
    port, crm_port, acme_port = (
        defaults if all(map(port_free, defaults)) else (free_port(), free_port(), free_port())
    )
    output = tmp_path / "launch.out"
    command = ["make", "--no-print-directory", "run", f"DATA_DIR={tmp_path / 'data'}"]
    command += [f"PORT={port}", f"CRM_PORT={crm_port}", f"ACME_PORT={acme_port}"]
    with output.open("wb") as out:
        launcher = subprocess.Popen(
            command,
            cwd=ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children: set[int] = set()
    try:

        def ready() -> bool:
            assert launcher.poll() is None, output.read_text()
            return "Stop with Ctrl-C." in output.read_text()

        wait_until(ready, "the launcher to report it is ready", timeout=150)
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        health = httpx.get(f"{base}/api/health").json()
        assert {"crm", "acme"} <= set(health["components"])
        assert health["component_problems"] == []
        names = {i["name"] for i in httpx.get(f"{base}/api/integrations").json()}
        assert names == {"CRM and Acme", "Order export", "Warehouse import"}
        (demo,) = httpx.get(f"{base}/api/instances").json()
        assert (demo["name"], demo["status"], demo["integration"]) == (
            "demo",
            "active",
            "CRM and Acme",
        )
        crm = httpx.get(
            f"http://127.0.0.1:{crm_port}/api/outbound-messages",
            headers={"Authorization": "Bearer crm-demo-key"},
        ).json()
        assert crm["count"] == 2
        assert httpx.get(f"http://127.0.0.1:{acme_port}/").status_code == 200
        assert f"http://127.0.0.1:{crm_port}/" in output.read_text()
        children = descendants(launcher.pid)
        assert len(children) >= 2  # the demo apps and the server
    finally:
        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        try:
            launcher.wait(60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            raise
    # make itself ends as interrupted, as after Ctrl-C in a terminal; the launcher stops cleanly.
    assert launcher.returncode in (0, 2, -signal.SIGINT), output.read_text()
    assert "Stopped." in output.read_text()
    wait_until(
        lambda: not [pid for pid in children if alive(pid)], "every child process to end", 10
    )
