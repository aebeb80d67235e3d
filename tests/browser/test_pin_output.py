"""Pin output in a real browser: after one test run calls a loopback app, pinning the HTTP step's
output makes the next run send nothing, show the step as pinned (canvas badge and step view)
and use the pinned output; Unpin removes the badge."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.server.conftest import ServerProcess
from tests.server.fakeapps import FakeApp

YAML = """
name: Pin tour
flows:
  - id: orders
    name: Orders
    trigger: {id: receive, action: webhook.webhook}
    steps:
      - id: call
        name: Call the shop
        action: http.request
        inputs: {method: GET, url: '{url}/echo'}
      - id: note
        action: log.message
        inputs: {message: 'shop said {{ steps.call.output.status }}'}
    edges:
      - {from: receive, to: call}
      - {from: call, to: note}
"""


@pytest.fixture(scope="module")
def shop() -> Iterator[FakeApp]:
    app = FakeApp("shop").start()
    yield app
    app.stop()


def test_pinned_http_step_sends_nothing(
    page: Page, app_server: ServerProcess, shop: FakeApp
) -> None:
    api = f"{app_server.url}/api/integrations"
    imported = httpx.post(
        api,
        content=YAML.replace("{url}", shop.url).encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert imported.status_code == 201, imported.text
    created = httpx.post(
        f"{api}/Pin%20tour/payloads",
        json={"flow_id": "orders", "name": "Order", "body": {"id": 7}},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    page.goto(f"{app_server.url}/integrations/Pin%20tour")
    link = page.get_by_test_id("run-link")

    page.get_by_test_id("run-test").click()
    expect(link).to_be_visible()
    first = link.get_attribute("href")
    assert [r[:2] for r in shop.requests] == [("GET", "/echo")]

    page.get_by_test_id("node-call").click()
    page.get_by_test_id("step-pin").click()
    expect(page.get_by_test_id("pin-call")).to_be_visible()
    expect(page.get_by_test_id("step-unpin")).to_be_visible()

    page.get_by_test_id("run-test").click()
    expect(link).not_to_have_attribute("href", first or "")
    expect(page.get_by_test_id("run-summary")).to_contain_text("succeeded")
    expect(page.get_by_test_id("step-pinned")).to_be_visible()
    assert len(shop.requests) == 1  # the pinned step sent nothing
    page.get_by_test_id("node-note").click()
    expect(page.get_by_test_id("step-logs")).to_contain_text("shop said 200")
    shot(page, "pinned-http-step")

    page.get_by_test_id("node-call").click()
    page.get_by_test_id("step-unpin").click()
    expect(page.get_by_test_id("pin-call")).to_have_count(0)
    expect(page.get_by_test_id("step-pin")).to_be_visible()
