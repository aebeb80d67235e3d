"""The demo apps on their own: CRUD, auth, validation errors, signed deliveries with retries.

The apps run in the test's event loop on 127.0.0.1, each over a SQLite file in a temp folder;
webhook receivers are small aiohttp servers on 127.0.0.1 that fail on demand.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from examples.demoapps import ACME, CRM, DemoApp, RetryPolicy
from examples.demoapps.__main__ import main as demoapps_main
from tests.e2e.conftest import child_env, wait_until
from tests.server.conftest import ROOT, free_port

FAST = RetryPolicy(delay=0.05, max_delay=1.0, max_attempts=4)
SECRET = "receiver-secret-123"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers each request with the next status of `statuses` (then 200) and records it."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read(), time.time()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield found
    await runner.cleanup()


AppFactory = Callable[..., Awaitable[tuple[DemoApp, httpx.AsyncClient]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start a demo app (CRM by default) and a client carrying its API key."""
    started: list[tuple[DemoApp, httpx.AsyncClient]] = []

    async def make(
        spec: Any = CRM, policy: RetryPolicy = FAST, data_dir: Path = tmp_path
    ) -> tuple[DemoApp, httpx.AsyncClient]:
        app = DemoApp(spec, data_dir, "key-123", policy)
        url = await app.start()
        auth = {"Authorization": "Bearer key-123"} if spec is CRM else {"X-API-Key": "key-123"}
        client = httpx.AsyncClient(base_url=url, headers=auth, timeout=10)
        started.append((app, client))
        return app, client

    yield make
    for app, client in started:
        await client.aclose()
        await app.stop()


async def poll(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Await `check` until it returns something truthy; fail naming `what` after 10 s."""
    last = None
    try:
        async with asyncio.timeout(10):
            while True:
                last = await check()
                if last:
                    return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}") from None


# --- CRUD, auth, validation -----------------------------------------------------------------------


async def test_crud_of_accounts_and_opportunities(start: AppFactory) -> None:
    _, crm = await start()
    created = await crm.post("/api/accounts", json={"name": "Globex", "external_id": "acct_1"})
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["id"].startswith("001")
    assert (await crm.get(f"/api/accounts/{account['id']}")).json() == account
    found = (await crm.get("/api/accounts", params={"external_id": "acct_1"})).json()
    assert found["items"] == [account]
    assert (await crm.get("/api/accounts", params={"external_id": "other"})).json()["count"] == 0

    changed = await crm.patch(f"/api/accounts/{account['id']}", json={"industry": "Energy"})
    assert changed.json()["industry"] == "Energy"
    assert changed.json()["name"] == "Globex"

    opportunity = await crm.post(
        "/api/opportunities", json={"name": "Deal", "amount": 12.5, "account_id": account["id"]}
    )
    assert opportunity.status_code == 201, opportunity.text
    assert opportunity.json()["stage"] == "Prospecting"
    used = await crm.delete(f"/api/accounts/{account['id']}")
    assert used.status_code == 409
    assert "used by 1 opportunities" in used.json()["error"]

    opp_id = opportunity.json()["id"]
    assert (await crm.delete(f"/api/opportunities/{opp_id}")).status_code == 204
    assert (await crm.delete(f"/api/accounts/{account['id']}")).status_code == 204
    missing = await crm.get(f"/api/accounts/{account['id']}")
    assert missing.status_code == 404
    assert missing.json() == {"error": f"There is no account with id '{account['id']}'."}


async def test_api_key_is_required_and_checked(start: AppFactory) -> None:
    crm_app, _ = await start()
    acme_app, _ = await start(ACME)
    async with httpx.AsyncClient() as plain:
        missing = await plain.get(f"{crm_app.url}/api/me")
        assert missing.status_code == 401
        assert missing.json()["hint"] == "Send the API key as 'Authorization: Bearer <api key>'."
        wrong = await plain.get(f"{crm_app.url}/api/me", headers={"Authorization": "Bearer nope"})
        assert wrong.json()["error"] == "The API key is not valid."
        # Acme takes the key in X-API-Key only.
        bearer = await plain.get(
            f"{acme_app.url}/api/me", headers={"Authorization": "Bearer key-123"}
        )
        assert bearer.status_code == 401
        assert "X-API-Key" in bearer.json()["hint"]
        me = await plain.get(f"{acme_app.url}/api/me", headers={"X-API-Key": "key-123"})
        assert me.json()["email"] == "grace@acme.example"
        assert (await plain.get(f"{crm_app.url}/health")).status_code == 200
        page = await plain.get(f"{crm_app.url}/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/api/accounts", b'{"name": ', 400, "The body is not valid JSON (line 1"),
        ("POST", "/api/accounts", b"[1, 2]", 400, "The body must be a JSON object."),
        ("POST", "/api/accounts", b"", 400, "The request has no body."),
        ("POST", "/api/accounts", b"{}", 422, "Invalid account: name: Field required."),
        (
            "POST",
            "/api/accounts",
            b'{"name": "A", "colour": "red"}',
            422,
            "Invalid account: colour: Extra inputs are not permitted.",
        ),
        (
            "POST",
            "/api/opportunities",
            b'{"name": "A", "amount": 1.005}',
            422,
            "Invalid opportunity: amount: must have at most 2 decimals, e.g. 1250.5.",
        ),
        (
            "POST",
            "/api/opportunities",
            b'{"name": "A", "amount": 1, "account_id": "001nope"}',
            422,
            "Invalid opportunity: account_id: there is no account with id '001nope'.",
        ),
        (
            "POST",
            "/api/outbound-messages",
            b'{"object": "contact", "url": "http://127.0.0.1:1/"}',
            422,
            "Invalid outbound message: object must be one of account, opportunity.",
        ),
        (
            "POST",
            "/api/outbound-messages",
            b'{"object": "account", "url": "ftp://x"}',
            422,
            "Invalid outbound message: url: String should match pattern",
        ),
        (
            "POST",
            "/api/outbound-messages",
            b'{"object": "account", "url": "http://x/", "secret": "short"}',
            422,
            "Invalid outbound message: secret: String should have at least 8 characters.",
        ),
        ("GET", "/api/contacts", b"", 404, "There is nothing at this path."),
        ("PUT", "/api/accounts", b"{}", 405, "Method not allowed here."),
        ("DELETE", "/api/outbound-messages/04knope", b"", 404, "There is no outbound message"),
    ],
)
async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    start: AppFactory, method: str, path: str, body: bytes, status: int, error: str
) -> None:
    app, crm = await start()
    response = await crm.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error), response.json()
    assert app.store.records("account") == []
    assert app.store.records("opportunity") == []
    assert app.store.subscriptions() == []


async def test_external_ids_are_unique_and_meta_fields_read_only(start: AppFactory) -> None:
    _, acme = await start(ACME)
    first = (await acme.post("/api/accounts", json={"name": "A", "external_id": "001x"})).json()
    taken = await acme.post("/api/accounts", json={"name": "B", "external_id": "001x"})
    assert taken.status_code == 409
    assert (
        taken.json()["error"] == f"External id '001x' is already linked to account '{first['id']}'."
    )
    read_only = await acme.patch(f"/api/accounts/{first['id']}", json={"id": "acct_other"})
    assert read_only.status_code == 422
    assert (await acme.get("/api/accounts")).json()["count"] == 1


# --- subscriptions and deliveries -----------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_delivery_is_signed_and_retried_with_backoff_while_the_receiver_fails(
    start: AppFactory, receiver: Receiver
) -> None:
    app, crm = await start()
    receiver.statuses = [500, 503]
    sub = await crm.post(
        "/api/outbound-messages",
        json={"object": "opportunity", "url": receiver.url, "secret": SECRET},
    )
    assert sub.status_code == 201, sub.text
    assert "secret" not in sub.json()  # only a generated secret is shown, once
    created = (await crm.post("/api/opportunities", json={"name": "Deal", "amount": 99})).json()

    await poll(lambda: _done(crm), "the delivery to succeed")
    assert len(receiver.received) == 3
    ids = {r.headers["X-CRM-Delivery"] for r in receiver.received}
    assert len(ids) == 1  # the same delivery id on every retry
    for request in receiver.received:
        assert request.headers["X-CRM-Signature"] == signature(SECRET, request.body)
        assert request.headers["X-CRM-Event"] == "opportunity.created"
    first = receiver.received[0]
    assert first.body == receiver.received[2].body

    (delivery,) = (await crm.get("/api/deliveries")).json()["items"]
    assert delivery["id"] in ids
    assert delivery["body"]["record"] == created
    assert delivery["body"]["object"] == "opportunity"
    attempts = delivery["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert [a["retry_in"] for a in attempts] == [0.05, 0.1, None]  # doubling from the delay
    # Never sent before its retry was due.
    for failed, retried in zip(attempts, receiver.received[1:], strict=False):
        assert retried.at >= failed["at"] + failed["retry_in"] * 0.99
    assert app.store.next_due() is None


async def _done(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/api/deliveries")).json()["items"]
    return [d for d in items if d["status"] != "pending"]


async def test_delivery_gives_up_after_max_attempts(start: AppFactory, receiver: Receiver) -> None:
    _, crm = await start(policy=RetryPolicy(delay=0.02, max_delay=0.05, max_attempts=3))
    receiver.statuses = [500] * 10
    await crm.post("/api/outbound-messages", json={"object": "account", "url": receiver.url})
    await crm.post("/api/accounts", json={"name": "Globex"})
    (delivery,) = await poll(lambda: _done(crm), "the delivery to give up")
    assert delivery["status"] == "failed"
    assert [a["retry_in"] for a in delivery["attempts"]] == [0.02, 0.04, None]
    assert len(receiver.received) == 3


async def test_an_update_that_changes_nothing_sends_nothing(
    start: AppFactory, receiver: Receiver
) -> None:
    _, acme = await start(ACME)
    hook = await acme.post(
        "/api/webhooks", json={"event": "opportunity.updated", "url": receiver.url}
    )
    secret = hook.json()["secret"]  # generated and shown once
    opp = (await acme.post("/api/opportunities", json={"name": "Deal", "amount_cents": 5})).json()
    same = await acme.patch(f"/api/opportunities/{opp['id']}", json={"amount_cents": 5})
    assert same.json()["updated_at"] == opp["updated_at"]
    await acme.patch(f"/api/opportunities/{opp['id']}", json={"amount_cents": 7})
    await poll(lambda: _done(acme), "the update's delivery")
    (request,) = receiver.received  # the creation and the no-op sent nothing
    assert request.headers["X-Acme-Event"] == "opportunity.updated"
    assert request.headers["X-Acme-Signature"] == signature(secret, request.body)
    body = httpx.Response(200, content=request.body).json()
    assert body["changed"] == ["amount_cents"]
    assert body["data"]["amount_cents"] == 7
    listed = (await acme.get("/api/webhooks")).json()["items"]
    assert "secret" not in listed[0]


async def test_deleting_a_subscription_drops_its_undelivered_events(start: AppFactory) -> None:
    app, crm = await start(policy=RetryPolicy(delay=30, max_delay=30, max_attempts=5))
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    sub = (await crm.post("/api/outbound-messages", json={"object": "account", "url": dead})).json()
    await crm.post("/api/accounts", json={"name": "Globex"})
    await poll(
        lambda: _first_attempt(crm), "the first (failed) attempt"
    )  # then it waits 30 s to retry
    assert (await crm.delete(f"/api/outbound-messages/{sub['id']}")).status_code == 204
    (delivery,) = (await crm.get("/api/deliveries")).json()["items"]
    assert delivery["status"] == "cancelled"
    assert app.store.next_due() is None
    assert (await crm.delete(f"/api/outbound-messages/{sub['id']}")).status_code == 404


async def _first_attempt(client: httpx.AsyncClient) -> bool:
    items = (await client.get("/api/deliveries")).json()["items"]
    return bool(items and items[0]["attempts"])


async def test_records_and_pending_deliveries_survive_a_restart(
    start: AppFactory, receiver: Receiver, tmp_path: Path
) -> None:
    app, crm = await start(policy=RetryPolicy(delay=0.3, max_delay=0.3, max_attempts=5))
    receiver.statuses = [500]
    await crm.post("/api/outbound-messages", json={"object": "account", "url": receiver.url})
    account = (await crm.post("/api/accounts", json={"name": "Globex"})).json()
    await poll(lambda: _first_attempt(crm), "the first (failed) attempt")
    await app.stop()  # the retry is still pending

    _, again = await start(data_dir=tmp_path)
    assert (await again.get(f"/api/accounts/{account['id']}")).json() == account
    (delivery,) = await poll(lambda: _done(again), "the delivery after the restart")
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]


async def test_page_forms_create_and_change_records(start: AppFactory) -> None:
    app, _ = await start(ACME)
    async with httpx.AsyncClient(base_url=app.url) as browser:
        refused = await browser.post(
            "/ui/opportunities", data={"name": "Deal", "amount_cents": "5", "api_key": "wrong"}
        )
        assert refused.status_code == 400
        assert "The API key is not valid." in refused.text
        made = await browser.post(
            "/ui/opportunities", data={"name": "Deal", "amount_cents": "500", "api_key": "key-123"}
        )
        assert made.status_code == 303
        (opp,) = app.store.records("opportunity")
        assert opp["amount_cents"] == 500
        changed = await browser.post(
            "/ui/opportunities/update",
            data={"id": opp["id"], "name": "", "amount_cents": "750", "api_key": "key-123"},
        )
        assert changed.status_code == 303
        (opp,) = app.store.records("opportunity")
        assert (opp["name"], opp["amount_cents"]) == ("Deal", 750)
        page = (await browser.get("/")).text
        assert "Deal" in page
        assert "750" in page


# --- command lines --------------------------------------------------------------------------------


def test_demo_apps_command_starts_both_apps_and_stops_on_sigterm(tmp_path: Path) -> None:
    crm_port, acme_port = free_port(), free_port()
    command = [sys.executable, "-m", "app", "demo-apps", "--data-dir", str(tmp_path)]
    command += ["--crm-port", str(crm_port), "--acme-port", str(acme_port)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        for port in (crm_port, acme_port):
            wait_until(
                lambda p=port: httpx.get(f"http://127.0.0.1:{p}/health").status_code == 200,  # type: ignore[misc]
                f"the demo app on port {port}",
                timeout=60,
            )
        me = httpx.get(
            f"http://127.0.0.1:{crm_port}/api/me",
            headers={"Authorization": "Bearer crm-demo-key"},
        )
        assert me.json()["name"] == "Ada Admin"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{crm_port}" in output.decode()
    assert (tmp_path / "crm.sqlite3").exists()
    assert (tmp_path / "acme.sqlite3").exists()


def test_demo_apps_module_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        demoapps_main(["--retry-delay", "0"])
    assert exited.value.code == 2
    assert "--retry-delay and --max-retry-delay must be > 0" in capsys.readouterr().err
