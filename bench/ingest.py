"""Webhook ack rate of `/webhooks/{token}` beside a bare starlette + sqlite3 app, in the same run.

    .venv/bin/python -m bench.ingest [--requests 3000] [--concurrency 64]

Each server runs in its own process under uvicorn on 127.0.0.1 with a fresh data directory; an
aiohttp client in this process posts small JSON bodies at a fixed concurrency and counts acks/s:

- baseline: starlette, one `INSERT` + `COMMIT` per request on one sqlite3 connection (WAL,
  synchronous=NORMAL, like ours), straight on the event loop;
- ours, group commit: the real webhook route (token lookup, checks, parse, core-SQL insert
  committed by `InboxWriter` before the 202), with a no-op dispatcher;
- ours, `asyncio.to_thread` per request: the same with one transaction per request.

Target (issue 3): ours ≥ 40% of the baseline. The end-to-end rate (below) is taken against the
mean of the baseline measured before and after it. It runs `flowyard serve` as a user would;
each round prints the CPU the server process used per execution. Ratios, not verdicts: timings
never gate a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

BODY = b'{"event": "account.updated", "id": "evt_01", "data": {"plan": "pro", "seats": 25}}'
TOKEN = "bench-token"


UVICORN: dict[str, Any] = {
    "host": "127.0.0.1",
    "log_level": "warning",
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
}
"""uvicorn's options for both apps, as `flowyard serve` runs it."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- servers (run in child processes) ------------------------------------------------------------


def _serve_baseline(port: int, data_dir: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    conn = sqlite3.connect(Path(data_dir) / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, token TEXT, body BLOB, received_at REAL)"
    )
    counter = 0

    async def receive(request: Request) -> JSONResponse:
        nonlocal counter
        body = await request.body()
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO inbox (token, body, received_at) VALUES (?, ?, ?)",
            (request.path_params["token"], body, time.time()),
        )
        conn.execute("COMMIT")
        counter += 1
        return JSONResponse({"execution_id": str(counter)}, status_code=202)

    app = Starlette(routes=[Route("/webhooks/{token}", receive, methods=["POST"])])
    uvicorn.run(app, port=port, **UVICORN)


class _NoopDispatcher:
    def notify(self) -> None:
        pass

    def start_now(self, row: Any) -> None:
        raise RuntimeError("the benchmark sends no synchronous webhooks")

    def try_reserve(self, instance_id: str, flow_id: str) -> None:
        return None  # no workers: every row is stored queued

    async def wait_for_reply(self, execution_id: str, seconds: float) -> Any:
        return None

    async def run_lifecycle(self, instance_id: str, flow_id: str, event: Any) -> Any:
        raise RuntimeError("not used by the benchmark")

    def invalidate(self, instance_id: str | None) -> None:
        pass


def _serve_ours(port: int, data_dir: str, group_commit: bool) -> None:
    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy import insert, update

    from app.persistence import SecretBox, load_secret_key, open_database, session_scope
    from app.persistence.models import InstanceRow, WebhookTokenRow
    from app.persistence.repositories import create_instance, save_integration, table_of
    from app.routes import webhooks
    from app.server import NO_TELEMETRY
    from app.services.hub import Hub
    from app.services.ingest import Ingest
    from app.settings import Settings
    from components.registry import default_registry
    from runtime.http import make_http_client
    from runtime.model import Integration

    directory = Path(data_dir)
    db = open_database(directory)
    integration = Integration.model_validate(
        {
            "name": "bench",
            "flows": [{"id": "hook", "trigger": {"id": "t", "action": "webhook.webhook"}}],
        }
    )
    with session_scope(db) as session:
        version = save_integration(session, integration)
        instance_id = create_instance(session, "bench", "bench", version)
    with db.begin() as conn:
        instances = table_of(InstanceRow)
        conn.execute(update(instances).where(instances.c.id == instance_id).values(status="active"))
        conn.execute(
            insert(table_of(WebhookTokenRow)).values(
                token=TOKEN, instance_id=instance_id, flow_id="hook", created_at=time.time()
            )
        )
    app = FastAPI(telemetry=NO_TELEMETRY)
    webhooks.install(app)
    hub = Hub(
        settings=Settings(data_dir=directory, port=port),
        db=db,
        registry=default_registry(),
        http=make_http_client(),
        box=SecretBox(load_secret_key(directory)),
        dispatcher=_NoopDispatcher(),
    )
    app.state.hub = hub
    app.state.ingest = Ingest(hub, group_commit=group_commit)
    uvicorn.run(app, port=port, **UVICORN)


# --- load ----------------------------------------------------------------------------------------


async def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(url, data=BODY) as response:
                    if response.status in (200, 202):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def _load(url: str, requests: int, concurrency: int) -> tuple[float, int]:
    """Acks per second and the number of non-202 answers."""
    headers = {"Content-Type": "application/json"}
    remaining = requests
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, failures


def _measure(target: Any, args: tuple[Any, ...], requests: int, concurrency: int) -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        process = multiprocessing.get_context("spawn").Process(
            target=target, args=(port, data_dir, *args), daemon=True
        )
        process.start()
        try:
            url = f"http://127.0.0.1:{port}/webhooks/{TOKEN}"
            asyncio.run(_wait_ready(url))
            asyncio.run(_load(url, min(500, requests), concurrency))  # warm-up
            best = 0.0
            for _ in range(3):
                rate, failures = asyncio.run(_load(url, requests, concurrency))
                if failures:
                    raise RuntimeError(f"{failures} requests were not acknowledged with 202")
                best = max(best, rate)
            return best
        finally:
            process.terminate()
            process.join(10)


# --- end to end ----------------------------------------------------------------------------------

FIXTURE = Path(__file__).parent / "fixtures" / "e2e.yaml"
E2E_STEPS = {
    "trigger": "succeeded",
    "is_big": "succeeded",
    "shape": "succeeded",
    "small": "skipped",  # the branch's `false` side
    "notify": "succeeded",
    "reply": "succeeded",
}
"""Every step record of one execution, in order, with its status."""
PROFILE_ENV = "FLOWYARD_BENCH_PROFILE"
"""Set by `--profile FILE` on the `flowyard serve` child: run it under cProfile (every thread)."""
FINISHED_BAD = ("failed", "cancelled", "crashed")


def _serve_echo(port: int) -> None:
    """The third-party API the flow calls: answers every JSON POST with a small JSON object."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        data = await request.json()
        return web.json_response({"id": data.get("id"), "ok": True})

    app = web.Application()
    app.router.add_post("/echo", echo)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _profiled_serve(out: Path, argv: list[str]) -> None:
    """`flowyard serve` under cProfile, one profiler per thread (the `to_thread` database work
    runs off the event loop), merged into `out` when the server stops."""
    import cProfile
    import pstats
    import threading

    from app.cli import main as cli_main

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def profile_thread(*_: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread's life

    def exit_on_term(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    # uvicorn shuts down on SIGTERM, then raises the signal again under the handler it found
    signal.signal(signal.SIGTERM, exit_on_term)
    main_profile = cProfile.Profile()
    threading.setprofile(profile_thread)
    sys.argv = ["flowyard", *argv]
    main_profile.enable()
    try:
        cli_main()
    except SystemExit:
        pass
    finally:
        main_profile.disable()
        threading.setprofile(None)
        stats = pstats.Stats(main_profile)
        with lock:
            for profile in profiles:
                stats.add(profile)
        stats.dump_stats(out)


def _start_flowyard(
    data_dir: Path, workers: int, profile: Path | None
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A `flowyard serve` process on a free port; its process, URL and log file."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != PROFILE_ENV}
    env["FLOWYARD_HTTP_BLOCK_PRIVATE"] = "0"  # the echo server is on loopback
    serve = ["serve", "--port", str(port), "--data-dir", str(data_dir / "data")]
    serve += ["--workers", str(workers)]
    module = "app"
    if profile is not None:
        env[PROFILE_ENV] = str(profile)
        module = "bench.ingest"
    log_path = data_dir / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *serve],
            cwd=Path(__file__).parent.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"flowyard serve exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return process, url, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"flowyard serve did not answer:\n{log_path.read_text()}")


def _deploy(url: str, echo_url: str) -> str:
    """Import the bench integration and deploy it over the REST API; the flow's webhook URL."""
    imported = httpx.post(
        f"{url}/api/integrations",
        content=FIXTURE.read_bytes(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    if imported.status_code != 201:
        raise RuntimeError(f"import failed: {imported.status_code} {imported.text}")
    body = {
        "name": "bench",
        "integration": imported.json()["name"],
        "config": {"echo_url": echo_url},
    }
    deployed = httpx.post(f"{url}/api/instances", json=body, timeout=30)
    view = deployed.json()
    if deployed.status_code != 201 or view.get("status") != "active":
        raise RuntimeError(f"deploy failed: {deployed.status_code} {deployed.text}")
    webhook_url: str = next(f["webhook_url"] for f in view["flows"] if f["flow_id"] == "order")
    return webhook_url


def _event(i: int) -> bytes:
    return json.dumps(
        {"event": "account.updated", "id": f"evt_{i}", "data": {"plan": "pro", "seats": 25}}
    ).encode()


async def _counts(session: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with session.get(f"{url}/api/executions", params={"limit": "1"}) as response:
        counts: dict[str, int] = (await response.json())["counts"]
        return counts


async def _send(
    session: aiohttp.ClientSession, url: str, first: int, requests: int, concurrency: int
) -> dict[str, int]:
    """POST `requests` events; {execution id: event number}."""
    headers = {"Content-Type": "application/json"}
    numbers = iter(range(first, first + requests))
    ids: dict[str, int] = {}

    async def worker() -> None:
        for i in numbers:
            async with session.post(url, data=_event(i), headers=headers) as response:
                answer = await response.json()
                if response.status != 202:
                    raise RuntimeError(f"webhook answered {response.status}: {answer}")
                ids[answer["execution_id"]] = i

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def _until_finished(
    session: aiohttp.ClientSession, url: str, succeeded: int
) -> dict[str, int]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        counts = await _counts(session, url)
        if bad := {k: counts[k] for k in FINISHED_BAD if counts.get(k)}:
            raise RuntimeError(f"executions did not succeed: {bad}")
        if counts["succeeded"] >= succeeded:
            return counts
        # Each poll costs the server ~4 ms (its counts scan every execution), ~4% of its CPU
        # during a round; polling less often would blur the finish time by more than that.
        await asyncio.sleep(0.1)
    raise RuntimeError(f"executions still unfinished after 600 s: {counts}")


async def _e2e_round(
    url: str, webhook: str, first: int, requests: int, concurrency: int
) -> tuple[float, float, dict[str, int]]:
    """Seconds until every webhook was acked, until every execution succeeded; the ids sent."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        before = (await _counts(session, url))["succeeded"]
        started = time.perf_counter()
        ids = await _send(session, webhook, first, requests, concurrency)
        acked = time.perf_counter() - started
        await _until_finished(session, url, before + requests)
        finished = time.perf_counter() - started
    return acked, finished, ids


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system, every thread) a process and its children have used so far;
    Linux's /proc.

    The server runs on one event loop whose database work holds the GIL in worker threads, so
    its CPU per execution is the figure the end-to-end rate follows."""

    def used(process: int) -> float:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return used(pid), sum(used(child) for child in children)


def _spot_check(url: str, ids: dict[str, int], sample: int) -> None:
    """A few executions read back through the API: succeeded, every step recorded, right data."""
    for execution_id in random.sample(sorted(ids), min(sample, len(ids))):
        detail = httpx.get(f"{url}/api/executions/{execution_id}", timeout=30).json()
        steps = {s["step_id"]: s for s in detail["steps"]}
        problems = []
        if detail["status"] != "succeeded":
            problems.append(f"status {detail['status']}")
        recorded = {s["step_id"]: s["status"] for s in detail["steps"]}
        if list(recorded.items()) != list(E2E_STEPS.items()):
            problems.append(f"step records {recorded}")
        notify = steps.get("notify", {}).get("output") or {}
        if (notify.get("body") or {}).get("id") != f"evt_{ids[execution_id]}":
            problems.append(f"notify output {notify}")
        if problems:
            raise RuntimeError(f"execution {execution_id}: {'; '.join(problems)}")


def _end_to_end(options: argparse.Namespace, before: float) -> None:
    n, c, workers = options.e2e_requests, options.concurrency, options.workers
    print(
        f"end-to-end: {n} webhooks x{options.e2e_rounds} (best), concurrency {c}, "
        f"`flowyard serve --workers {workers}`; webhook -> branch -> transform -> HTTP "
        "call to a "
        "local aiohttp server -> respond"
    )
    echo_port = _free_port()
    echo = multiprocessing.get_context("spawn").Process(
        target=_serve_echo, args=(echo_port,), daemon=True
    )
    echo.start()
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(options.profile).resolve() if options.profile else None
        process, url, log_path = _start_flowyard(Path(tmp), workers, profile)
        try:
            webhook = _deploy(url, f"http://127.0.0.1:{echo_port}")
            warmup = min(200, n)
            asyncio.run(_e2e_round(url, webhook, 0, warmup, c))
            sent, best = warmup, 0.0
            for _ in range(options.e2e_rounds):
                server = sum(_cpu_seconds(process.pid))
                acked, finished, ids = asyncio.run(_e2e_round(url, webhook, sent, n, c))
                cpu = sum(_cpu_seconds(process.pid)) - server
                sent += n
                _spot_check(url, ids, options.spot_check)
                rate = n / finished
                best = max(best, rate)
                print(
                    f"  round: acked in {acked:.2f} s ({n / acked:,.0f}/s), all succeeded and "
                    f"persisted in {finished:.2f} s ({rate:,.0f}/s); server CPU "
                    f"{cpu / n * 1000:.2f} ms per execution, {cpu / finished:.0%} of a core"
                )
            counts = httpx.get(f"{url}/api/executions", params={"limit": 1}).json()["counts"]
            if counts["succeeded"] != sent or any(counts[k] for k in FINISHED_BAD):
                raise RuntimeError(f"expected {sent} succeeded executions, found {counts}")
            print(
                f"  all {sent} executions succeeded ({options.spot_check} per round read back "
                "with every step record)"
            )
        finally:
            process.terminate()
            try:
                process.wait(60 if profile else 15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            echo.terminate()
            echo.join(10)
        if "Traceback" in log_path.read_text(errors="replace"):
            print(f"  server log:\n{log_path.read_text(errors='replace')}")
    # This machine's baseline moves by up to 2x between minutes (it is partly bound by the
    # client), so it is measured again now and the ratio taken against the mean of both.
    after = _measure(_serve_baseline, (), options.requests, options.concurrency)
    baseline = (before + after) / 2
    print(
        f"  end-to-end: {best:,.0f} executions/s (baseline {before:,.0f} inserts/s before and "
        f"{after:,.0f} after, mean {baseline:,.0f}; ratio {best / baseline:.2f}; target 0.12)"
    )
    if profile is not None:
        print(f"  server profile written to {profile} (python -m pstats {profile})")


def main() -> None:
    from app.settings import Settings

    if out := os.environ.get(PROFILE_ENV):  # the `flowyard serve` child of `--profile`
        _profiled_serve(Path(out), sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--e2e-requests", type=int, default=2000)
    parser.add_argument("--e2e-rounds", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=Settings.workers, help="`flowyard serve --workers`"
    )
    parser.add_argument("--spot-check", type=int, default=10, help="executions read back a round")
    parser.add_argument("--skip-ack", action="store_true", help="baseline and end-to-end only")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the end-to-end server")
    options = parser.parse_args()
    n, c = options.requests, options.concurrency
    print(f"webhook ack rate: {n} POSTs x3 (best), concurrency {c}, uvicorn on 127.0.0.1")
    baseline = _measure(_serve_baseline, (), n, c)
    print(f"  baseline starlette+sqlite3, commit per request : {baseline:8.0f} acks/s  (1.00)")
    if not options.skip_ack:
        for label, group in (("group commit", True), ("to_thread per request", False)):
            rate = _measure(_serve_ours, (group,), n, c)
            print(f"  flowyard /webhooks, {label:<27}: {rate:8.0f} acks/s  ({rate / baseline:.2f})")
        print("  target: flowyard ack rate >= 0.40 of the baseline")
    _end_to_end(options, baseline)


if __name__ == "__main__":
    main()
