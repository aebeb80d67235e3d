"""Webhook ingest through the real routes (in-process ASGI) with a fake dispatcher.

Every refusal is checked for its status and for an empty inbox: bad input stores nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select, update

from app.persistence import SecretBox, load_secret_key, open_database, session_scope
from app.persistence.db import dispose_when_idle
from app.persistence.inbox import Claimed
from app.persistence.models import InboxRow, InstanceRow, WebhookTokenRow
from app.persistence.repositories import create_instance, save_integration, table_of
from app.routes import webhooks
from app.services import executions, instances
from app.services.errors import NotFound
from app.services.hub import Hub, Reservation, SyncOutcome
from app.settings import Settings
from components.api import Response, TriggerEvent
from components.registry import default_registry
from runtime.http import make_http_client
from runtime.model import Integration
from runtime.observer import ErrorInfo, ExecutionResult, Status

GH_SECRET = "gh-secret-1"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
STRIPE_SECRET = "whsec_stripe-endpoint-secret"


def flow(flow_id: str, inputs: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    return {
        "id": flow_id,
        "trigger": {"id": "trigger", "action": "webhook.webhook", "inputs": inputs or {}},
        "steps": [{"id": "reply", "action": "respond.respond", "inputs": {"body": "ok"}}],
        "edges": [{"from": "trigger", "to": "reply"}],
        "settings": settings,
    }


INTEGRATION = {
    "name": "hooks",
    "endpoint": {"preprocess_flow": "router", "route_header": "X-Tenant"},
    "flows": [
        flow("echo", {"methods": ["POST", "PUT"]}),
        flow("small", {"max_body_bytes": 100}),
        flow("github", {"signature": {"scheme": "hmac_sha256", "secret": GH_SECRET}}),
        flow("standard", {"signature": {"scheme": "standard_webhooks", "secret": SW_SECRET}}),
        flow("custom_id", {"delivery_id_header": "X-Event-Id"}),
        flow("github_named", {"signature": {"scheme": "github", "secret": GH_SECRET}}),
        flow("stripe", {"signature": {"scheme": "stripe", "secret": STRIPE_SECRET}}),
        flow("shopify", {"signature": {"scheme": "shopify", "secret": GH_SECRET}}),
        flow(
            "slack",
            {
                "signature": {"scheme": "slack", "secret": SLACK_SECRET},
                "handshake": "slack_url_verification",
            },
        ),
        flow("dedup", dedup_key="{{ trigger.body.id }}"),
        flow("sync", {"methods": ["GET", "POST"], "sync": True, "sync_timeout": 0.2}),
        flow("optin", {"allow_sync_header": True, "sync_timeout": 0.2}),
        flow("router", {"methods": ["POST"]}),
        flow("form", {"form_json_fields": ["payload"]}, dedup_key="{{ trigger.body.payload.id }}"),
        {
            "id": "timer",
            "trigger": {"id": "t", "action": "schedule.cron", "inputs": {"cron": "* * * * *"}},
        },
    ],
}


@dataclass
class FakeDispatcher:
    """The `Dispatcher` protocol, scripted by the test."""

    notified: int = 0
    started: list[Claimed] = field(default_factory=list)
    reply: SyncOutcome | None = None
    waited: list[tuple[str, float]] = field(default_factory=list)
    lifecycle: list[tuple[str, str, TriggerEvent]] = field(default_factory=list)
    route_to: Any = "echo"

    def notify(self) -> None:
        self.notified += 1

    def start_now(self, row: Claimed) -> None:
        self.started.append(row)

    def try_reserve(self, instance_id: str, flow_id: str) -> Reservation | None:
        return None  # async rows are stored queued; the pool's handover is tested with a pool

    async def wait_for_reply(self, execution_id: str, seconds: float) -> SyncOutcome | None:
        self.waited.append((execution_id, seconds))
        return self.reply

    async def run_lifecycle(
        self, instance_id: str, flow_id: str, event: TriggerEvent
    ) -> ExecutionResult:
        self.lifecycle.append((instance_id, flow_id, event))
        return ExecutionResult("pre1", flow_id, Status.SUCCEEDED, 0.0, 1.0, output=self.route_to)

    def invalidate(self, instance_id: str | None) -> None:
        pass


@dataclass
class Env:
    hub: Hub
    client: httpx.AsyncClient
    dispatcher: FakeDispatcher
    instance_id: str
    tokens: dict[str, str]
    app: FastAPI

    def url(self, flow_id: str) -> str:
        return f"/webhooks/{self.tokens[flow_id]}"

    def rows(self) -> list[dict[str, Any]]:
        with self.hub.db.connect() as conn:
            result = conn.execute(select(table_of(InboxRow)).order_by(table_of(InboxRow).c.id))
            return [dict(r._mapping) for r in result]

    def set_instance(self, **values: Any) -> None:
        with self.hub.db.begin() as conn:
            conn.execute(
                update(table_of(InstanceRow))
                .where(table_of(InstanceRow).c.id == self.instance_id)
                .values(**values)
            )
        ingest = getattr(self.app.state, "ingest", None)
        if ingest is not None:
            ingest.invalidate()


def deploy(hub: Hub, name: str) -> tuple[str, dict[str, str]]:
    with session_scope(hub.db) as session:
        version = save_integration(session, Integration.model_validate(INTEGRATION))
        instance_id = create_instance(session, name, "hooks", version)
    tokens = {f["id"]: f"tok-{name}-{f['id']}" for f in INTEGRATION["flows"]}  # type: ignore[index]
    tokens[""] = f"tok-{name}-wide"
    with hub.db.begin() as conn:
        conn.execute(
            update(table_of(InstanceRow))
            .where(table_of(InstanceRow).c.id == instance_id)
            .values(status="active")
        )
        conn.execute(
            insert(table_of(WebhookTokenRow)),
            [
                {"token": t, "instance_id": instance_id, "flow_id": f, "created_at": time.time()}
                for f, t in tokens.items()
            ],
        )
    return instance_id, tokens


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    data_dir = tmp_path / "data"
    db = open_database(data_dir)
    settings = Settings(data_dir=data_dir)
    async with make_http_client() as http:
        dispatcher = FakeDispatcher()
        hub = Hub(
            settings=settings,
            db=db,
            registry=default_registry(),
            http=http,
            box=SecretBox(load_secret_key(data_dir)),
            dispatcher=dispatcher,
        )
        app = FastAPI()
        webhooks.install(app)
        app.state.hub = hub
        instance_id, tokens = deploy(hub, "acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield Env(hub, client, dispatcher, instance_id, tokens, app)
    dispose_when_idle(db)  # an ingest thread may still be committing


def gh_sign(body: bytes, secret: str = GH_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sw_headers(body: bytes, msg_id: str = "msg_1", ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    sig = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(sig).decode(),
        "content-type": "application/json",
    }


# --- good paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/json", b'{"a": 1}'),
        ("application/x-www-form-urlencoded", b"a=1&a=2"),
        ("application/xml", b"<a>1</a>"),
        ("text/plain", b"hello"),
    ],
)
async def test_accepts_and_stores_raw_bytes(env: Env, content_type: str, raw: bytes) -> None:
    r = await env.client.post(
        env.url("echo") + "?x=1&x=2&y=z", content=raw, headers={"Content-Type": content_type}
    )
    assert r.status_code == 202, r.text
    execution_id = r.json()["execution_id"]
    [row] = env.rows()
    assert row["execution_id"] == execution_id
    assert (row["body"], row["flow_id"], row["instance_id"]) == (raw, "echo", env.instance_id)
    assert row["headers"]["content-type"] == content_type
    assert row["query"] == {"x": ["1", "2"], "y": "z"}
    assert (row["method"], row["status"], row["source"]) == ("POST", "queued", "webhook")
    assert env.dispatcher.notified == 1


async def test_github_signature_accepted(env: Env) -> None:
    body = b'{"ref": "refs/heads/main"}'
    r = await env.client.post(
        env.url("github"),
        content=body,
        headers={"X-Hub-Signature-256": gh_sign(body), "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text
    assert len(env.rows()) == 1


async def test_standard_webhooks_signature_accepted(env: Env) -> None:
    body = b'{"type": "user.created"}'
    r = await env.client.post(env.url("standard"), content=body, headers=sw_headers(body))
    assert r.status_code == 202, r.text
    [row] = env.rows()
    assert row["delivery_id"] == "msg_1"


# --- refusals store nothing ---------------------------------------------------------------------


async def refused(env: Env, response: httpx.Response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert text in response.json()["error"]
    assert env.rows() == []
    assert env.dispatcher.notified == 0


async def test_unknown_token_404(env: Env) -> None:
    await refused(env, await env.client.post("/webhooks/nope", json={}), 404, "no webhook")


async def test_non_webhook_flow_404(env: Env) -> None:
    r = await env.client.post(env.url("timer"), json={})
    await refused(env, r, 404, "not started by a webhook")


async def test_wrong_method_405(env: Env) -> None:
    r = await env.client.get(env.url("echo"))
    await refused(env, r, 405, "GET")
    assert r.headers["allow"] == "POST, PUT"
    await refused(env, await env.client.request("OPTIONS", env.url("echo")), 405)


async def test_too_large_by_content_length_413(env: Env) -> None:
    r = await env.client.post(env.url("small"), content=b"x" * 101)
    await refused(env, r, 413, "100 bytes")


async def test_too_large_chunked_413(env: Env) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b"y" * 64

    r = await env.client.post(env.url("small"), content=chunks())
    await refused(env, r, 413)
    assert "content-length" not in r.request.headers
    assert sent < 10  # stopped reading at the cap


async def test_default_cap_from_settings_413(env: Env) -> None:
    r = await env.client.post(env.url("echo"), content=b"z" * (1_048_576 + 1))
    await refused(env, r, 413)


@pytest.mark.parametrize(
    ("content_type", "raw", "text"),
    [
        ("application/json", b'{"a": 1,,}', "line 1, column 9 (position 8)"),
        ("application/json", b'{"a": NaN}', "NaN"),
        ("application/json", b"[" * 50_000, "nested"),
        ("application/xml", b"<a><b></a>", "mismatched tag"),
        (
            "application/xml",
            b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>',
            "DOCTYPE",
        ),
        ("text/plain", b"\xff\xfe\xfa", "not valid utf-8"),
    ],
)
async def test_bad_body_400(env: Env, content_type: str, raw: bytes, text: str) -> None:
    r = await env.client.post(env.url("echo"), content=raw, headers={"content-type": content_type})
    await refused(env, r, 400, text)


async def test_lone_surrogate_escape_is_stored_as_replacement_character(env: Env) -> None:
    r = await env.client.post(
        env.url("dedup") + "?q=%ED%A0%80",
        content=rb'{"id": "\ud800"}',
        headers={b"content-type": b"application/json", b"x-odd": b"\xed\xa0\x80"},
    )
    assert r.status_code == 202, r.text
    [row] = env.rows()
    assert row["dedup_key"] == "\ufffd"  # computed from the parsed body, then stored
    assert row["query"] == {"q": "\ufffd\ufffd\ufffd"}  # percent-decoded with replacement
    assert row["headers"]["x-odd"] == "\xed\xa0\x80"  # header bytes read as Latin-1


async def test_form_json_field_option_applies_at_ingest(env: Env) -> None:
    raw = b"payload=%7B%22id%22%3A+%22gh-1%22%7D"
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = await env.client.post(env.url("form"), content=raw, headers=form)
    assert r.status_code == 202, r.text
    assert [row["dedup_key"] for row in env.rows()] == ["gh-1"]
    bad = await env.client.post(env.url("form"), content=b"payload=%7B", headers=form)
    assert bad.status_code == 400
    assert "Malformed JSON in form field 'payload'" in bad.json()["error"]
    assert len(env.rows()) == 1


async def test_instance_wide_request_is_parsed_as_its_target_flow_says(env: Env) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    env.dispatcher.route_to = "form"
    r = await env.client.post(env.url(""), content=b"payload=%7B%22id%22%3A7%7D", headers=form)
    assert r.status_code == 202, r.text
    [(_, _, event)] = env.dispatcher.lifecycle
    assert event.body == {"payload": '{"id":7}'}  # the pre-process flow's own options
    [row] = env.rows()
    assert (row["flow_id"], row["dedup_key"]) == ("form", "7")
    bad = await env.client.post(env.url(""), content=b"payload=nope", headers=form)
    assert bad.status_code == 400 and "form field 'payload'" in bad.json()["error"]
    assert len(env.rows()) == 1


async def test_bad_content_length_400(env: Env) -> None:
    r = await env.client.post(env.url("echo"), content=b"{}", headers={"content-length": "2x"})
    assert r.status_code == 400
    assert env.rows() == []


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({}, "missing"),
        ({"X-Hub-Signature-256": "sha1=abc"}, "malformed"),
        ({"X-Hub-Signature-256": "sha256=zz"}, "malformed"),
        ({"X-Hub-Signature-256": gh_sign(b"other")}, "does not match"),
        ({"X-Hub-Signature-256": gh_sign(b'{"ref": 1}', "wrong")}, "does not match"),
        ({"X-Hub-Signature-256": "sha256=é".encode()}, "malformed"),
    ],
)
async def test_github_signature_refused_401(env: Env, headers: dict[str, Any], text: str) -> None:
    r = await env.client.post(env.url("github"), content=b'{"ref": 1}', headers=headers)
    await refused(env, r, 401, text)


async def test_standard_webhooks_refused_401(env: Env) -> None:
    body = b'{"type": "x"}'
    cases: list[tuple[dict[str, str], str]] = [
        ({"content-type": "application/json"}, "missing"),
        (sw_headers(body, ts=int(time.time()) - 3600), "too old"),
        ({**sw_headers(body), "webhook-timestamp": "yesterday"}, "malformed"),
        ({**sw_headers(body), "webhook-signature": "v2,abc"}, "malformed"),
        ({**sw_headers(body), "webhook-signature": "v1,!!!notbase64"}, "does not match"),
        (sw_headers(b"tampered"), "does not match"),
    ]
    for headers, text in cases:
        r = await env.client.post(env.url("standard"), content=body, headers=headers)
        await refused(env, r, 401, text)


def slack_headers(body: bytes, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    signed = f"v0:{stamp}:".encode() + body
    digest = hmac.new(SLACK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


async def test_slack_signature_refusals_name_the_header_and_store_nothing(env: Env) -> None:
    body = b'{"type": "event_callback"}'
    cases: list[tuple[dict[str, str], str]] = [
        ({"content-type": "application/json"}, "'X-Slack-Signature' is missing"),
        (slack_headers(body, ts=int(time.time()) - 3600), "'X-Slack-Request-Timestamp' is too old"),
        (slack_headers(b"tampered"), "'X-Slack-Signature' does not match"),
    ]
    for headers, text in cases:
        r = await env.client.post(env.url("slack"), content=body, headers=headers)
        await refused(env, r, 401, text)


def named_scheme_headers(flow_id: str, body: bytes) -> dict[str, str]:
    """The signature header each named sender puts on `body`, as its documentation says."""
    if flow_id == "stripe":
        t = str(int(time.time()))
        mac = hmac.new(STRIPE_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256)
        return {"Stripe-Signature": f"t={t},v1={mac.hexdigest()}"}
    mac = hmac.new(GH_SECRET.encode(), body, hashlib.sha256)
    if flow_id == "shopify":
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(mac.digest()).decode()}
    return {"X-Hub-Signature-256": "sha256=" + mac.hexdigest()}


@pytest.mark.parametrize(
    ("flow_id", "header"),
    [
        ("github_named", "X-Hub-Signature-256"),
        ("stripe", "Stripe-Signature"),
        ("shopify", "X-Shopify-Hmac-Sha256"),
    ],
)
async def test_named_sender_schemes_at_ingest(env: Env, flow_id: str, header: str) -> None:
    body = b'{"id": "evt_1"}'
    json_type = {"Content-Type": "application/json"}
    tampered = {**json_type, **named_scheme_headers(flow_id, b'{"id": "evt_2"}')}
    r = await env.client.post(env.url(flow_id), content=body, headers=tampered)
    await refused(env, r, 401, f"Webhook signature in header '{header}' does not match the body.")
    r = await env.client.post(env.url(flow_id), content=body, headers=json_type)
    await refused(env, r, 401, f"Webhook signature header '{header}' is missing.")
    signed = {**json_type, **named_scheme_headers(flow_id, body)}
    r = await env.client.post(env.url(flow_id), content=body, headers=signed)
    assert r.status_code == 202, r.text
    assert len(env.rows()) == 1


async def test_slack_url_verification_is_answered_and_not_stored(env: Env) -> None:
    body = b'{"token": "t", "challenge": "ch4llenge", "type": "url_verification"}'
    r = await env.client.post(env.url("slack"), content=body, headers=slack_headers(body))
    assert (r.status_code, r.json()) == (200, {"challenge": "ch4llenge"})
    assert env.rows() == []
    assert env.dispatcher.notified == 0
    forged = await env.client.post(
        env.url("slack"), content=body, headers=slack_headers(b"other body")
    )
    await refused(env, forged, 401, "does not match")
    event = b'{"type": "event_callback", "event": {"type": "app_mention"}}'
    r = await env.client.post(env.url("slack"), content=event, headers=slack_headers(event))
    assert r.status_code == 202, r.text
    assert len(env.rows()) == 1


@pytest.mark.parametrize(
    "values", [{"enabled": False}, {"status": "deploying"}, {"status": "deleting"}]
)
async def test_inactive_instance_503_retry_after(env: Env, values: dict[str, Any]) -> None:
    env.set_instance(**values)
    r = await env.client.post(env.url("echo"), json={"a": 1})
    await refused(env, r, 503, "not accepting")
    assert r.headers["retry-after"] == "30"


# --- redelivery and dedup -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow_id", "header"),
    [
        ("echo", "webhook-id"),
        ("echo", "X-GitHub-Delivery"),
        ("echo", "Idempotency-Key"),
        ("custom_id", "X-Event-Id"),
    ],
)
async def test_redelivery_answers_first_id(env: Env, flow_id: str, header: str) -> None:
    first = await env.client.post(env.url(flow_id), json={"n": 1}, headers={header: "d-1"})
    assert first.status_code == 202
    again = await env.client.post(env.url(flow_id), json={"n": 2}, headers={header: "d-1"})
    assert again.status_code == 200
    assert again.json() == {"execution_id": first.json()["execution_id"], "duplicate": True}
    other = await env.client.post(env.url(flow_id), json={"n": 3}, headers={header: "d-2"})
    assert other.status_code == 202
    assert len(env.rows()) == 2
    assert env.dispatcher.notified == 2


async def test_concurrent_redeliveries_store_one(env: Env) -> None:
    import asyncio

    answers = await asyncio.gather(
        *(
            env.client.post(env.url("echo"), json={}, headers={"webhook-id": "same"})
            for _ in range(20)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert len({a.json()["execution_id"] for a in answers}) == 1
    assert len(env.rows()) == 1


async def test_dedup_key_duplicate(env: Env) -> None:
    first = await env.client.post(env.url("dedup"), json={"id": "evt-1", "v": 1})
    assert first.status_code == 202
    again = await env.client.post(env.url("dedup"), json={"id": "evt-1", "v": 2})
    assert again.json() == {"execution_id": first.json()["execution_id"], "duplicate": True}
    assert (await env.client.post(env.url("dedup"), json={"id": "evt-2"})).status_code == 202
    assert (await env.client.post(env.url("dedup"), json={"no_id": 1})).status_code == 202
    assert [r["dedup_key"] for r in env.rows()] == ["evt-1", "evt-2", None]


# --- synchronous mode ---------------------------------------------------------------------------


async def test_sync_reply_with_status_headers_body(env: Env) -> None:
    env.dispatcher.reply = SyncOutcome(
        Response(201, {"X-Challenge": "answered", "Content-Type": "text/plain"}, "abc123"), None
    )
    r = await env.client.get(env.url("sync") + "?challenge=abc123")
    assert (r.status_code, r.text, r.headers["x-challenge"]) == (201, "abc123", "answered")
    [row] = env.rows()
    assert env.dispatcher.waited == [(row["execution_id"], 0.2)]
    assert row["query"] == {"challenge": "abc123"}


async def test_sync_json_body_and_bad_headers_dropped(env: Env) -> None:
    env.dispatcher.reply = SyncOutcome(
        Response(200, {"X-Bad": "a\r\nb", "X-Ok": "1"}, {"ok": [1, 2]}), None
    )
    r = await env.client.post(env.url("sync"), json={})
    assert r.json() == {"ok": [1, 2]}
    assert r.headers["content-type"] == "application/json"
    assert "x-bad" not in r.headers and r.headers["x-ok"] == "1"


async def test_sync_without_respond_step_returns_last_output(env: Env) -> None:
    result = ExecutionResult("e", "sync", Status.SUCCEEDED, 0, 1, output={"done": True})
    env.dispatcher.reply = SyncOutcome(None, result)
    r = await env.client.post(env.url("sync"), json={})
    assert (r.status_code, r.json()) == (200, {"done": True})


async def test_sync_failed_execution_502(env: Env) -> None:
    error = ErrorInfo("step_failed", "Step 'Call API' failed: 500 from upstream.")
    env.dispatcher.reply = SyncOutcome(
        None, ExecutionResult("e", "sync", Status.FAILED, 0, 1, error=error)
    )
    r = await env.client.post(env.url("sync"), json={})
    assert r.status_code == 502
    assert r.json()["error"] == error.message
    assert r.json()["execution_id"] == env.rows()[0]["execution_id"]


async def test_sync_timeout_202(env: Env) -> None:
    r = await env.client.post(env.url("sync"), json={})
    assert r.status_code == 202
    assert r.json() == {"execution_id": env.rows()[0]["execution_id"]}


async def test_sync_header_only_when_allowed(env: Env) -> None:
    env.dispatcher.reply = SyncOutcome(Response(200, {}, "sync!"), None)
    headers = {"X-Flowyard-Sync": "true"}
    r = await env.client.post(env.url("echo"), json={}, headers=headers)
    assert r.status_code == 202 and env.dispatcher.waited == []
    r = await env.client.post(env.url("optin"), json={}, headers=headers)
    assert (r.status_code, r.text) == (200, "sync!")
    r = await env.client.post(env.url("optin"), json={})
    assert r.status_code == 202
    assert len(env.dispatcher.waited) == 1


# --- shared and instance-wide endpoints ---------------------------------------------------------


async def test_instance_wide_routes_through_preprocess(env: Env) -> None:
    env.dispatcher.route_to = {"flow": "dedup"}
    r = await env.client.post(env.url(""), json={"id": "e-9"}, headers={"webhook-id": "w-1"})
    assert r.status_code == 202, r.text
    [row] = env.rows()
    assert (row["flow_id"], row["token"], row["dedup_key"]) == ("dedup", env.tokens[""], "e-9")
    [(instance_id, flow_id, event)] = env.dispatcher.lifecycle
    assert (instance_id, flow_id, event.body) == (env.instance_id, "router", {"id": "e-9"})
    again = await env.client.post(env.url(""), json={"id": "e-9"}, headers={"webhook-id": "w-1"})
    assert again.json()["duplicate"] is True
    assert len(env.dispatcher.lifecycle) == 1  # a redelivery does not run the pre-process again


async def test_instance_wide_unknown_flow_422(env: Env) -> None:
    env.dispatcher.route_to = "nowhere"
    await refused(env, await env.client.post(env.url(""), json={}), 422, '"nowhere"')
    env.dispatcher.route_to = {"flow": "timer"}
    await refused(env, await env.client.post(env.url(""), json={}), 422, '"timer"')


async def test_shared_endpoint_by_header(env: Env) -> None:
    other_id, _ = deploy(env.hub, "globex")
    env.dispatcher.route_to = "echo"
    r = await env.client.post("/webhooks/shared/hooks", json={}, headers={"X-Tenant": "globex"})
    assert r.status_code == 202, r.text
    r = await env.client.post(
        "/webhooks/shared/hooks/custom_id", json={}, headers={"X-Tenant": "acme"}
    )
    assert r.status_code == 202, r.text
    rows = env.rows()
    assert [(x["instance_id"], x["flow_id"]) for x in rows] == [
        (other_id, "echo"),
        (env.instance_id, "custom_id"),
    ]
    r = await env.client.post("/webhooks/shared/hooks", json={}, headers={"X-Tenant": "nobody"})
    assert r.status_code == 404
    r = await env.client.post("/webhooks/shared/hooks", json={})
    assert r.status_code == 400
    assert (await env.client.post("/webhooks/shared/nothing", json={})).status_code == 404
    assert len(env.rows()) == 2


async def test_shared_endpoint_by_body_field(env: Env) -> None:
    doc = dict(INTEGRATION, endpoint={"route_field": "account.name"})
    with session_scope(env.hub.db) as session:
        save_integration(session, Integration.model_validate(doc))
    r = await env.client.post(
        "/webhooks/shared/hooks/echo", json={"account": {"name": "acme"}, "n": 1}
    )
    assert r.status_code == 202, r.text
    assert env.rows()[0]["instance_id"] == env.instance_id
    r = await env.client.post("/webhooks/shared/hooks/echo", json={"account": {}})
    assert r.status_code == 400 and "account.name" in r.json()["error"]


async def test_dispatcher_absent_still_acknowledges(env: Env) -> None:
    env.hub.dispatcher = None
    r = await env.client.post(env.url("sync"), json={})
    assert r.status_code == 202
    assert len(env.rows()) == 1


async def test_disabling_through_the_service_takes_effect_at_once(env: Env) -> None:
    """Pages call the service, not the route: the routing cache must hear of it all the same."""
    first = await env.client.post(env.url("echo"), json={"a": 1})
    assert first.status_code == 202  # the instance is now in the routing cache
    await instances.set_enabled(env.hub, env.instance_id, False)
    r = await env.client.post(env.url("echo"), json={"a": 2})
    assert r.status_code == 503 and "not accepting" in r.text
    await instances.set_enabled(env.hub, env.instance_id, True)
    again = await env.client.post(env.url("echo"), json={"a": 3})
    assert again.status_code == 202


async def test_an_acknowledged_request_reads_as_queued_until_a_worker_runs_it(env: Env) -> None:
    r = await env.client.post(env.url("echo"), json={"a": 1})
    assert r.status_code == 202
    execution_id = r.json()["execution_id"]
    detail = await executions.get_execution(env.hub, execution_id)  # no worker runs here
    assert (detail["status"], detail["steps"], detail["flow_id"]) == ("queued", [], "echo")
    with pytest.raises(NotFound):
        await executions.get_execution(env.hub, "no-such-execution")


async def test_concurrent_misses_share_one_routing_load(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When an entry expires under load, the requests that miss it wait for one load together."""
    from app.services import routing

    loads: list[str] = []
    real = routing.load_instance

    async def counted(hub: Hub, instance_id: str) -> routing.InstanceInfo | None:
        loads.append(instance_id)
        await asyncio.sleep(0.05)  # long enough for every request below to miss the cache
        return await real(hub, instance_id)

    monkeypatch.setattr(routing, "load_instance", counted)
    answers = await asyncio.gather(
        *(env.client.post(env.url("echo"), json={"n": n}) for n in range(20))
    )
    assert [r.status_code for r in answers] == [202] * 20
    assert loads == [env.instance_id]
    assert len(env.rows()) == 20


async def test_a_load_overtaken_by_invalidate_is_not_kept(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import routing

    cache = routing.RoutingCache(env.hub)
    started, release = asyncio.Event(), asyncio.Event()
    real = routing.load_instance

    async def slow(hub: Hub, instance_id: str) -> routing.InstanceInfo | None:
        started.set()
        await release.wait()
        return await real(hub, instance_id)

    monkeypatch.setattr(routing, "load_instance", slow)
    first = asyncio.create_task(cache.instance(env.instance_id))
    await started.wait()
    cache.invalidate(env.instance_id)  # e.g. disabled while the old state was being read
    release.set()
    assert (await first) is not None  # its caller still gets an answer
    started.clear()
    release.clear()
    second = asyncio.create_task(cache.instance(env.instance_id))
    await started.wait()  # not served from the cache: the overtaken load was not kept
    release.set()
    assert (await second) is not None


async def test_acks_never_wait_for_threads_the_workers_hold(env: Env) -> None:
    # Every thread of the default pool busy with execution work (state reads, recorder commits,
    # claims) used to queue the inbox commit behind them, and with it the 202.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
    release = threading.Event()
    held = [asyncio.ensure_future(asyncio.to_thread(release.wait)) for _ in range(4)]
    try:
        answer = await asyncio.wait_for(env.client.post(env.url("echo"), json={"a": 1}), 20)
        assert answer.status_code == 202, answer.text
        assert len(env.rows()) == 1
        assert not any(task.done() for task in held)  # the pool really was busy throughout
    finally:
        release.set()
        await asyncio.gather(*held)


async def test_invalid_stored_trigger_settings_are_named_without_pydantic_or_secrets(
    env: Env,
) -> None:
    # A version stored before its trigger settings were checked (deploy now refuses these).
    stale = {
        "name": "stale",
        "flows": [
            flow(
                "hook",
                {
                    "signature": {"scheme": "standard_webhooks", "secret": "whsec_%%top-secret%%"},
                    "max_body_bytes": "lots",
                },
            )
        ],
    }
    with session_scope(env.hub.db) as session:
        version = save_integration(session, Integration.model_validate(stale))
        instance_id = create_instance(session, "stale-one", "stale", version)
    with env.hub.db.begin() as conn:
        conn.execute(
            update(table_of(InstanceRow))
            .where(table_of(InstanceRow).c.id == instance_id)
            .values(status="active")
        )
        conn.execute(
            insert(table_of(WebhookTokenRow)),
            [
                {
                    "token": "tok-stale",
                    "instance_id": instance_id,
                    "flow_id": "hook",
                    "created_at": 0,
                }
            ],
        )
    r = await env.client.post("/webhooks/tok-stale", json={})
    await refused(env, r, 503, "its webhook trigger settings are invalid")
    error = r.json()["error"]
    assert "input 'max_body_bytes': should be a whole number, not 'lots'" in error
    assert "input 'signature.secret': The Standard Webhooks secret is not valid base64" in error
    assert "top-secret" not in r.text
    assert "pydantic" not in r.text and "input_value" not in r.text
