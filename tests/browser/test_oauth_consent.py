"""The CRM <-> Acme example over OAuth 2.0 in a browser: Connect on Flowyard's connections page
opens the demo CRM's consent page, Allow comes back to `/oauth/callback`, and the instance using
the connection then syncs a CRM account into Acme."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from examples.oauth_connect import crm_oauth_settings
from tests.browser.conftest import ROOT, keep, shot
from tests.e2e.conftest import DemoApps, deploy_example, import_file, running_stack, wait_until

EXAMPLE = ROOT / "examples" / "crm-acme.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoApps, str]]:
    """The demo apps and a Flowyard server with the example imported and an unconnected
    OAuth connection `crm` to the CRM."""
    with running_stack(tmp_path_factory.mktemp("oauth-consent")) as (apps, url):
        import_file(url, EXAMPLE)
        made = httpx.post(
            f"{url}/api/credentials",
            json={"name": "crm", "type": "oauth2", "values": crm_oauth_settings(apps.crm_url)},
        )
        assert made.status_code == 201 and made.json()["status"] == "not_connected", made.text
        yield apps, url


def test_connect_opens_the_crm_consent_page_and_the_example_syncs_with_oauth(
    page: Page, stack: tuple[DemoApps, str]
) -> None:
    apps, flowyard = stack
    page.goto(f"{flowyard}/connections")
    expect(page.get_by_text("not connected")).to_be_visible()
    page.get_by_test_id("connect-crm").click()
    consent = rf"^{re.escape(apps.crm_url)}/oauth/authorize\?.*code_challenge_method=S256"
    expect(page).to_have_url(re.compile(consent))
    expect(page.get_by_role("heading")).to_have_text("Allow access to Demo CRM?")
    expect(page.get_by_text("ada.admin@crm.example")).to_be_visible()
    keep(page, "oauth-consent.png")
    page.get_by_test_id("oauth-allow").click()
    expect(page.get_by_test_id("oauth-result")).to_have_text("Connected")
    assert page.url.startswith(f"{flowyard}/oauth/callback?")
    shot(page, "oauth-connected")
    stored = httpx.get(f"{flowyard}/api/credentials/crm").json()
    assert stored["status"] == "ok"

    deploy_example(flowyard, apps, "oauth-demo", "browser-test-secret")
    with apps.crm() as crm, apps.acme() as acme:
        created = crm.post("/api/accounts", json={"name": "Initech"})
        assert created.status_code == 201

        def in_acme() -> list[dict[str, Any]]:
            found = acme.get("/api/accounts", params={"external_id": created.json()["id"]})
            items: list[dict[str, Any]] = found.json()["items"]
            return items

        assert wait_until(in_acme, "the CRM account in Acme")[0]["name"] == "Initech"
    page.goto(f"{flowyard}/instances")
    expect(page.get_by_text("→ crm")).to_be_visible()
    expect(page.get_by_test_id("connect-crm")).to_have_text("Reconnect")
