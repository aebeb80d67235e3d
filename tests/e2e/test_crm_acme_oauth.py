"""The CRM <-> Acme example over OAuth 2.0 with real processes: the demo CRM issues 2-second access
tokens, so writing an amount back to the CRM after a pause needs a refresh; after the user removes
the app's grants at the CRM, the next write-back fails saying "reconnect" and the instance shows
the connection as needing reconnection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from examples.oauth_connect import connect_crm
from tests.e2e.conftest import DemoApps, deploy_example, import_file, running_stack, wait_until
from tests.server.conftest import ROOT

TOKEN_TTL = 2.0
INTEGRATION_FILE = ROOT / "examples" / "crm-acme.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoApps, str]]:
    tmp = tmp_path_factory.mktemp("oauth-stack")
    with running_stack(tmp, "--crm-token-ttl", str(TOKEN_TTL)) as (apps, url):
        import_file(url, INTEGRATION_FILE)
        yield apps, url


def grants(apps: DemoApps) -> list[str]:
    """The grants the CRM's token endpoint answered, successful or not, in order."""
    with apps.crm() as crm:
        items = crm.get("/api/oauth/grants").json()["items"]
    return [f"{g['grant_type']}{'' if g['ok'] else ' refused'}" for g in items]


def write_back(apps: DemoApps, acme_id: str, cents: int) -> None:
    with apps.acme() as acme:
        changed = acme.patch(f"/api/opportunities/{acme_id}", json={"amount_cents": cents})
        assert changed.is_success, changed.text


def latest_write_back(server: str, instance_id: str) -> dict[str, Any] | None:
    runs = httpx.get(
        f"{server}/api/executions", params={"instance": instance_id, "limit": 500}
    ).json()["executions"]
    done = [
        e
        for e in runs
        if e["flow_id"] == "acme_opportunity_update" and e["status"] in ("succeeded", "failed")
    ]
    return max(done, key=lambda e: e["started_at"]) if done else None


def test_expired_tokens_are_refreshed_and_a_revoked_grant_asks_for_reconnect(
    stack: tuple[DemoApps, str],
) -> None:
    apps, server = stack
    with httpx.Client(timeout=10) as browser:
        connect_crm(browser, server, apps.crm_url, "crm")
    deployed = deploy_example(server, apps, "oauth-e2e", "e2e-oauth-secret")
    assert grants(apps) == ["authorization_code"]  # the deploy's calls used the first token
    with apps.crm() as crm, apps.acme() as acme:
        crm_id = crm.post("/api/opportunities", json={"name": "Initech", "amount": 10}).json()["id"]
        (opportunity,) = wait_until(
            lambda: acme.get("/api/opportunities", params={"external_id": crm_id}).json()["items"],
            "the opportunity to appear in Acme",
        )
        time.sleep(TOKEN_TTL + 0.5)  # the access token the deploy got has expired
        write_back(apps, opportunity["id"], 123456)
        wait_until(
            lambda: crm.get(f"/api/opportunities/{crm_id}").json()["amount"] == 1234.56,
            "the amount written back to the CRM with a refreshed token",
        )
    assert grants(apps) == ["authorization_code", "refresh_token"]

    with apps.crm() as crm:  # the user removes Flowyard's access at the CRM
        assert crm.delete("/api/oauth/grants").status_code == 204
    before = latest_write_back(server, deployed["id"])
    write_back(apps, opportunity["id"], 99900)

    def failed() -> dict[str, Any] | None:
        run = latest_write_back(server, deployed["id"])
        return run if run and run != before and run["status"] == "failed" else None

    run = wait_until(failed, "the write-back to fail")
    assert "Connection 'crm' needs to be reconnected" in run["error"]["message"]
    assert "Reconnect connection crm on the instance page" in run["error"]["hint"]
    shown = httpx.get(f"{server}/api/instances/{deployed['id']}").json()
    crm_slot = next(c for c in shown["connections"] if c["slot"] == "crm")
    assert crm_slot["status"] == "needs_reconnect"
    assert crm_slot["connect_url"].startswith("/oauth/connect/")
