"""The shipped two-way CRM <-> Acme integration in the designer: each of its five flows opens in
its tab with every step drawn. The screenshots double as the README's walkthrough pictures."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, expect

from runtime.files import parse_integration
from tests.browser.conftest import ROOT, keep, shot
from tests.e2e.conftest import flowyard_child

EXAMPLE = ROOT / "examples" / "crm-acme.yaml"


@pytest.fixture(scope="module")
def flowyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with the example components and the integration imported."""
    server, url = flowyard_child(tmp_path_factory.mktemp("crm-acme-designer"))
    server.launch()
    try:
        server.wait_ready([f"{url}/api/health"])
        answer = httpx.post(
            f"{url}/api/integrations",
            content=EXAMPLE.read_bytes(),
            headers={"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert answer.status_code in (200, 201), answer.text
        yield url
    finally:
        server.stop()


def test_each_of_the_five_flows_opens_with_its_steps(page: Page, flowyard: str) -> None:
    integration = parse_integration(EXAMPLE.read_text())
    assert [f.name for f in integration.flows] == [
        "Deploy",
        "CRM account",
        "CRM opportunity",
        "Acme opportunity update",
        "Tear down",
    ]
    page.goto(f"{flowyard}/integrations/{quote(integration.name, safe='')}")
    for flow in integration.flows:
        page.get_by_test_id(f"tab-{flow.id}").click()
        for step in flow.all_steps():
            expect(page.get_by_test_id(f"node-{step.id}")).to_be_visible()
        expect(page.locator(".vue-flow__node")).to_have_count(len(flow.all_steps()))
        expect(page.locator(".vue-flow__edge")).to_have_count(len(flow.edges))
        shot(page, f"crm-acme-{flow.id}")
        if flow.id == "crm_account":
            page.wait_for_timeout(600)  # the view settles after its fit; then the picture
            keep(page, "designer-canvas.png")
