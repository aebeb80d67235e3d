"""The article's two-way integration end to end: the real demo apps, a real Flowyard server.

Each test deploys its own instance of examples/crm-acme.yaml (and deletes it afterwards); the
apps and the server live for the module. "Settled" means nothing is in flight: no delivery of
ours pending in either app, every delivered message has its execution, and none is running.
Counting deliveries once settled proves the two-way sync stopped instead of echoing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from examples.oauth_connect import connect_crm
from tests.e2e.conftest import DemoApps, deploy_example, wait_until
from tests.server.conftest import ROOT

pytestmark = pytest.mark.timeout(120)

INTEGRATION_FILE = ROOT / "examples" / "crm-acme.yaml"
INTEGRATION = "CRM and Acme"
SECRET = "e2e-signing-secret-0123456789"
WEBHOOK_FLOWS = ("crm_account", "crm_opportunity", "acme_opportunity_update")


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(flowyard: str, demo_apps: DemoApps) -> str:
    """The server with the integration imported, and someone else's subscriptions in both apps."""
    imported = httpx.post(
        f"{flowyard}/api/integrations",
        content=INTEGRATION_FILE.read_bytes(),
        headers={"Content-Type": "application/yaml"},
    )
    assert imported.status_code == 201, imported.text
    with httpx.Client(timeout=10) as browser:  # the CRM connection is OAuth: consent once
        connect_crm(browser, flowyard, demo_apps.crm_url, "crm")
    with demo_apps.crm() as crm, demo_apps.acme() as acme:
        foreign = {"url": "http://127.0.0.1:9/someone-else", "description": "not Flowyard's"}
        assert crm.post("/api/outbound-messages", json={"object": "account", **foreign}).is_success
        assert acme.post(
            "/api/webhooks", json={"event": "opportunity.updated", **foreign}
        ).is_success
    return flowyard


def deploy(server: str, apps: DemoApps, name: str) -> dict[str, Any]:
    return deploy_example(server, apps, name, SECRET)


def urls(view: dict[str, Any]) -> dict[str, str]:
    return {f["flow_id"]: f["webhook_url"] for f in view["flows"]}


def subscriptions(apps: DemoApps) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(CRM outbound messages, Acme webhooks)."""
    with apps.crm() as crm, apps.acme() as acme:
        return (
            crm.get("/api/outbound-messages").json()["items"],
            acme.get("/api/webhooks").json()["items"],
        )


def flowyard_subscriptions(server: str, apps: DemoApps) -> list[dict[str, Any]]:
    """Every subscription in either app that points at this Flowyard server."""
    crm, acme = subscriptions(apps)
    return [s for s in crm + acme if s["url"].startswith(server)]


def deliveries(client: httpx.Client, sub_ids: set[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/deliveries").json()["items"]
    return [d for d in items if d["subscription_id"] in sub_ids]


def executions(server: str, instance_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server}/api/executions", params={"instance": instance_id, "limit": 500})
    found: list[dict[str, Any]] = answer.json()["executions"]
    return found


def settle(server: str, apps: DemoApps, view: dict[str, Any]) -> list[dict[str, Any]]:
    """Wait until nothing is in flight; return the instance's executions then."""
    ours = set(urls(view).values())

    def quiet() -> list[dict[str, Any]] | None:
        crm_subs, acme_subs = subscriptions(apps)
        ids = {s["id"] for s in crm_subs + acme_subs if s["url"] in ours}
        with apps.crm() as crm, apps.acme() as acme:
            sent = deliveries(crm, ids) + deliveries(acme, ids)
        if any(d["status"] == "pending" for d in sent):
            return None
        runs = executions(server, view["id"])
        if any(e["status"] in ("queued", "running") for e in runs):
            return None
        delivered = sum(d["status"] == "delivered" for d in sent)
        if sum(e["flow_id"] in WEBHOOK_FLOWS for e in runs) != delivered:
            return None
        return runs

    return wait_until(quiet, "the two apps and Flowyard to settle")


def detail(server: str, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{server}/api/executions/{execution_id}").json()
    return found


def record_of(delivery: dict[str, Any]) -> dict[str, Any]:
    body = delivery["body"]
    found: dict[str, Any] = body.get("record") or body["data"]
    return found


@pytest.fixture
def instance(server: str, demo_apps: DemoApps) -> Iterator[dict[str, Any]]:
    view = deploy(server, demo_apps, f"e2e-{uuid.uuid4().hex[:8]}")
    yield view
    if httpx.get(f"{server}/api/instances/{view['id']}").status_code == 200:
        assert httpx.delete(f"{server}/api/instances/{view['id']}", timeout=30).json()["ok"]


def crm_sub_ids(apps: DemoApps, view: dict[str, Any]) -> set[str]:
    crm_subs, _ = subscriptions(apps)
    return {s["id"] for s in crm_subs if s["url"] in urls(view).values()}


def acme_sub_ids(apps: DemoApps, view: dict[str, Any]) -> set[str]:
    _, acme_subs = subscriptions(apps)
    return {s["id"] for s in acme_subs if s["url"] in urls(view).values()}


# --- tests --------------------------------------------------------------------------------------


def test_deploy_registers_exactly_our_subscriptions(
    server: str, demo_apps: DemoApps, instance: dict[str, Any]
) -> None:
    hooks = urls(instance)
    registered = {
        (s.get("object") or s.get("event"), s["url"])
        for s in flowyard_subscriptions(server, demo_apps)
    }
    assert registered == {
        ("account", hooks["crm_account"]),
        ("opportunity", hooks["crm_opportunity"]),
        ("opportunity.updated", hooks["acme_opportunity_update"]),
    }
    crm_subs, acme_subs = subscriptions(demo_apps)
    assert [s["description"] for s in crm_subs if s["url"] in hooks.values()] == [
        f"Flowyard instance {instance['name']} (set up by ada.admin@crm.example)"
    ] * 2
    assert any(s["url"].endswith("/someone-else") for s in crm_subs)
    assert any(s["url"].endswith("/someone-else") for s in acme_subs)
    (run,) = instance["lifecycle"]
    assert run["status"] == "succeeded"
    steps = detail(server, run["execution_id"])["steps"]
    assert [s["step_id"] for s in steps] == [
        "deploy_trigger",
        "get_user",
        "opportunity_message",
        "account_message",
        "acme_webhook",
        "remember",
    ]
    assert SECRET not in json.dumps(steps)


def test_account_created_then_updated_in_crm_reaches_acme(
    server: str, demo_apps: DemoApps, instance: dict[str, Any]
) -> None:
    with demo_apps.crm() as crm, demo_apps.acme() as acme:
        created = crm.post("/api/accounts", json={"name": "Globex", "industry": "Manufacturing"})
        assert created.status_code == 201, created.text
        crm_id = created.json()["id"]

        def in_acme() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = acme.get(
                "/api/accounts", params={"external_id": crm_id}
            ).json()["items"]
            return items

        (account,) = wait_until(in_acme, "the account to appear in Acme")
        assert (account["name"], account["industry"]) == ("Globex", "Manufacturing")

        assert crm.patch(f"/api/accounts/{crm_id}", json={"name": "Globex Corp"}).is_success
        wait_until(
            lambda: [a for a in in_acme() if a["name"] == "Globex Corp"],
            "the new account name in Acme",
        )
        runs = settle(server, demo_apps, instance)
        (updated,) = in_acme()
        assert updated["id"] == account["id"]  # updated, not created again
        flows = sorted(e["flow_id"] for e in runs if e["flow_id"] in WEBHOOK_FLOWS)
        assert flows == ["crm_account", "crm_account"]
        assert all(e["status"] == "succeeded" for e in runs), runs


def test_opportunity_created_then_updated_in_crm_reaches_acme_and_settles(
    server: str, demo_apps: DemoApps, instance: dict[str, Any]
) -> None:
    with demo_apps.crm() as crm, demo_apps.acme() as acme:
        created = crm.post("/api/opportunities", json={"name": "Globex renewal", "amount": 1250.5})
        assert created.status_code == 201, created.text
        crm_id = created.json()["id"]

        def in_acme() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = acme.get(
                "/api/opportunities", params={"external_id": crm_id}
            ).json()["items"]
            return items

        (opportunity,) = wait_until(in_acme, "the opportunity to appear in Acme")
        assert opportunity["amount_cents"] == 125050
        assert opportunity["stage"] == "Prospecting"

        changed = crm.patch(
            f"/api/opportunities/{crm_id}", json={"amount": 2000, "stage": "Proposal"}
        )
        assert changed.is_success, changed.text
        wait_until(
            lambda: [o for o in in_acme() if o["amount_cents"] == 200000],
            "the new amount in Acme",
        )
        settle(server, demo_apps, instance)
        (updated,) = in_acme()
        assert (updated["id"], updated["stage"]) == (opportunity["id"], "Proposal")
        # Acme announced the update and its flow wrote the same amount back: a no-op in the CRM,
        # which therefore sent nothing more. Two CRM messages and one Acme webhook in all.
        crm_sent = [
            d["event"]
            for d in deliveries(crm, crm_sub_ids(demo_apps, instance))
            if record_of(d)["id"] == crm_id
        ]
        acme_sent = [
            d["event"]
            for d in deliveries(acme, acme_sub_ids(demo_apps, instance))
            if record_of(d)["id"] == opportunity["id"]
        ]
        assert sorted(crm_sent) == ["opportunity.created", "opportunity.updated"]
        assert acme_sent == ["opportunity.updated"]
        assert crm.get(f"/api/opportunities/{crm_id}").json()["amount"] == 2000


def test_amount_changed_in_acme_is_written_back_to_the_crm(
    server: str, demo_apps: DemoApps, instance: dict[str, Any]
) -> None:
    with demo_apps.crm() as crm, demo_apps.acme() as acme:
        crm_id = crm.post("/api/opportunities", json={"name": "Initech", "amount": 10}).json()["id"]
        (opportunity,) = wait_until(
            lambda: acme.get("/api/opportunities", params={"external_id": crm_id}).json()["items"],
            "the opportunity to appear in Acme",
        )
        settle(server, demo_apps, instance)

        acme_id = opportunity["id"]
        assert acme.patch(f"/api/opportunities/{acme_id}", json={"amount_cents": 123456}).is_success
        # The flow computes the CRM amount as Acme's amount in cents / 100.
        wait_until(
            lambda: crm.get(f"/api/opportunities/{crm_id}").json()["amount"] == 1234.56,
            "the amount computed from Acme in the CRM",
        )
        runs = settle(server, demo_apps, instance)
        back = [e for e in runs if e["flow_id"] == "acme_opportunity_update"]
        assert len(back) == 1
        steps = {s["step_id"]: s for s in detail(server, back[0]["id"])["steps"]}
        assert steps["new_amount"]["output"] == {"opportunity_id": crm_id, "amount": 1234.56}
        assert steps["update_crm_opportunity"]["output"]["amount"] == 1234.56
        assert steps["nothing_to_do"]["status"] == "skipped"
        # The CRM's update went out to Acme, which already had that amount: nothing more.
        assert acme.get(f"/api/opportunities/{acme_id}").json()["amount_cents"] == 123456
        acme_sent = [
            d
            for d in deliveries(acme, acme_sub_ids(demo_apps, instance))
            if record_of(d)["id"] == acme_id
        ]
        assert len(acme_sent) == 1

        # A change that is not an amount is not written back.
        assert acme.patch(f"/api/opportunities/{acme_id}", json={"stage": "Negotiation"}).is_success
        runs = settle(server, demo_apps, instance)
        latest = max(
            (e for e in runs if e["flow_id"] == "acme_opportunity_update"),
            key=lambda e: e["started_at"],
        )
        steps = {s["step_id"]: s for s in detail(server, latest["id"])["steps"]}
        assert steps["nothing_to_do"]["status"] == "succeeded"
        assert steps["update_crm_opportunity"]["status"] == "skipped"
        assert crm.get(f"/api/opportunities/{crm_id}").json()["amount"] == 1234.56


def test_every_execution_has_its_step_records(
    server: str, demo_apps: DemoApps, instance: dict[str, Any]
) -> None:
    with demo_apps.crm() as crm:
        account = crm.post("/api/accounts", json={"name": "Umbrella"}).json()
        crm.post(
            "/api/opportunities",
            json={"name": "Umbrella", "amount": 5, "account_id": account["id"]},
        )
    with demo_apps.acme() as acme:
        wait_until(
            lambda: acme.get("/api/opportunities").json()["count"] > 0,
            "an opportunity in Acme",
        )
    runs = settle(server, demo_apps, instance)
    spec = yaml.safe_load(INTEGRATION_FILE.read_text())
    flows = {f["id"]: f for f in spec["flows"]}
    assert {e["flow_id"] for e in runs} == {"deploy", "crm_account", "crm_opportunity"}
    for run in runs:
        assert run["status"] == "succeeded", run
        found = detail(server, run["id"])
        flow = flows[run["flow_id"]]
        steps = found["steps"]
        assert steps[0]["step_id"] == flow["trigger"]["id"]
        # Every step of the flow has a record: run, or skipped on the branch not taken.
        assert {s["step_id"] for s in steps} == {flow["trigger"]["id"]} | {
            s["id"] for s in flow["steps"]
        }
        assert all(s["status"] in ("succeeded", "skipped") for s in steps), steps
        if run["flow_id"] != "deploy":
            assert found["request"]["headers"]["x-crm-delivery"]


def test_a_forged_message_is_refused_and_stores_nothing(
    server: str, instance: dict[str, Any]
) -> None:
    body = json.dumps({"event": "account.created", "object": "account", "record": {"id": "x"}})
    wrong = hmac.new(b"not-the-secret", body.encode(), hashlib.sha256).hexdigest()
    for headers in ({}, {"X-CRM-Signature": f"sha256={wrong}"}):
        refused = httpx.post(
            urls(instance)["crm_account"],
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
        assert refused.status_code == 401, refused.text
    assert [e["flow_id"] for e in executions(server, instance["id"])] == ["deploy"]


def test_delete_removes_only_ours_and_deploying_again_works(
    server: str, demo_apps: DemoApps
) -> None:
    name = f"e2e-again-{uuid.uuid4().hex[:8]}"
    first = deploy(server, demo_apps, name)
    assert len(flowyard_subscriptions(server, demo_apps)) == 3
    report = httpx.delete(f"{server}/api/instances/{first['id']}", timeout=30).json()
    assert report["ok"], report
    assert flowyard_subscriptions(server, demo_apps) == []
    crm_subs, acme_subs = subscriptions(demo_apps)
    assert [s["url"] for s in crm_subs] == ["http://127.0.0.1:9/someone-else"]
    assert [s["url"] for s in acme_subs] == ["http://127.0.0.1:9/someone-else"]
    (teardown,) = [r for r in report["runs"] if r["flow_id"] == "teardown"]
    steps = detail(server, teardown["execution_id"])["steps"]
    deleted = [s for s in steps if s["step_id"] == "delete_message"]
    assert sorted(s["status"] for s in deleted) == ["skipped", "succeeded", "succeeded"]
    assert [s["output"]["deleted"] for s in steps if s["step_id"] == "delete_webhook"] == [True]

    again = deploy(server, demo_apps, name)
    assert again["id"] != first["id"]
    hooks = set(urls(again).values())
    assert {s["url"] for s in flowyard_subscriptions(server, demo_apps)} == hooks & {
        urls(again)[f] for f in WEBHOOK_FLOWS
    }
    assert httpx.delete(f"{server}/api/instances/{again['id']}", timeout=30).json()["ok"]
    assert flowyard_subscriptions(server, demo_apps) == []
