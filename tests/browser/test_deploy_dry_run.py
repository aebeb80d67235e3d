"""The deploy form's Dry run button in a real browser: the report lists the call a deploy would
make with the secret masked, and no instance is created."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, shot
from tests.server.conftest import ServerProcess

SUBSCRIBER = ROOT / "tests" / "server" / "fixtures" / "subscriber.yaml"


def test_dry_run_on_the_deploy_form(page: Page, app_server: ServerProcess) -> None:
    imported = httpx.post(
        f"{app_server.url}/api/integrations",
        content=SUBSCRIBER.read_bytes(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert imported.status_code == 201, imported.text
    published = httpx.post(f"{app_server.url}/api/integrations/Subscriber/publish", timeout=30)
    assert published.status_code == 200, published.text  # the form offers published versions
    page.goto(f"{app_server.url}/instances/deploy?integration=Subscriber")
    page.get_by_test_id("deploy-name").fill("acme")
    page.get_by_test_id("config-base_url").fill("http://127.0.0.1:9/api")
    page.get_by_test_id("config-signing_secret").fill("sign-0f9e8d7c")
    page.get_by_test_id("connection-api-token").fill("tok-1a2b3c4d")
    page.get_by_test_id("dry-run-button").click()
    report = page.locator(".nicegui-card", has_text="Dry run of the deploy")
    expect(report).to_contain_text("nothing was sent or stored")
    expect(report).to_contain_text("POST http://127.0.0.1:9/api/subscriptions → 200 (echo)")
    expect(report).to_contain_text('"secret": "***"')
    expect(report).not_to_contain_text("sign-0f9e8d7c")
    shot(page, "deploy-dry-run")
    assert httpx.get(f"{app_server.url}/api/instances", timeout=30).json() == []
