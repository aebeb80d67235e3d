"""A new user's first integration, end to end in a real browser against a real server.

Create an integration; drag a webhook trigger, a branch and two HTTP actions from the palette;
connect them (both branch ports); fill inputs in the inspector, one with a reference picked from
the sample payload; reload and find the same graph; run two saved test payloads that take
different branches; find both runs on the executions page; deploy an instance and read its
webhook URL. Every page must log no console errors (the `page` fixture checks).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import keep, shot
from tests.server.conftest import ServerProcess
from tests.server.fakeapps import FakeApp


@pytest.fixture(scope="module")
def destination() -> Iterator[FakeApp]:
    app = FakeApp("dest").start()
    yield app
    app.stop()


def drop_from_palette(page: Page, key: str, x: float, y: float) -> None:
    """Drag a palette item onto the canvas at (x, y) relative to the canvas.

    HTML5 drag and drop is dispatched as the browser would (dragstart on the item, dragover and
    drop on the canvas sharing one DataTransfer): Playwright's own mouse-driven drag leaves a
    drag session open that swallows the next mouse gesture (connecting handles).
    """
    box = page.locator(".flowyard-canvas").bounding_box()
    assert box is not None
    point = {"clientX": box["x"] + x, "clientY": box["y"] + y}
    transfer = page.evaluate_handle("() => new DataTransfer()")
    page.get_by_test_id(f"palette-{key}").dispatch_event("dragstart", {"dataTransfer": transfer})
    canvas = page.locator(".flowyard-canvas")
    canvas.dispatch_event("dragover", {"dataTransfer": transfer, **point})
    canvas.dispatch_event("drop", {"dataTransfer": transfer, **point})


def node(page: Page, step_id: str) -> Locator:
    return page.get_by_test_id(f"node-{step_id}")


def connect(page: Page, source: str, port: str, target: str) -> None:
    """Connect a node's output handle to another node's input handle (click one, then the other,
    as Vue Flow allows; a mouse drag works the same way for a person)."""
    page.get_by_test_id(f"handle-{source}-{port}").click()
    node(page, target).locator(".vue-flow__handle.target").click()
    edge = page.locator(f'[data-id="{source}:{port}->{target}"]')
    expect(edge).to_have_count(1)


def select(page: Page, step_id: str) -> None:
    node(page, step_id).click()
    expect(page.get_by_test_id("step-id")).to_have_value(step_id)


def fill_input(page: Page, field: str, text: str) -> None:
    box = page.get_by_test_id(f"inspector-input-{field}")
    box.fill(text)
    box.blur()


def saved_revision(page: Page) -> None:
    expect(page.get_by_test_id("save-status")).to_contain_text("Saved")


def test_new_user_builds_tests_and_deploys_an_integration(
    page: Page, app_server: ServerProcess, destination: FakeApp
) -> None:
    page.goto(app_server.url + "/")
    page.get_by_test_id("new-integration").click()
    page.get_by_test_id("new-integration-name").fill("Orders")
    page.get_by_test_id("create-integration").click()
    expect(page).to_have_url(re.compile(r"/integrations/Orders$"))

    # Build the graph from the palette.
    drop_from_palette(page, "webhook.webhook", 120, 220)
    expect(node(page, "trigger")).to_be_visible()
    drop_from_palette(page, "branch.expression", 380, 220)
    drop_from_palette(page, "http.request", 660, 120)
    drop_from_palette(page, "http.request", 660, 340)
    for step_id in ("expression", "request", "request_2"):
        expect(node(page, step_id)).to_be_visible()
    connect(page, "trigger", "out", "expression")
    connect(page, "expression", "true", "request")
    connect(page, "expression", "false", "request_2")
    saved_revision(page)

    # Two test payloads; the first one is what the reference picker reads.
    create_payload(page, "Gold customer", '{"tier": "gold", "order": 17}')
    create_payload(page, "Basic customer", '{"tier": "basic", "order": 18}')
    wait_for_payloads(app_server, {"Gold customer": "gold", "Basic customer": "basic"})
    page.get_by_test_id("payload-select").click()
    page.get_by_role("option", name="Gold customer").click()

    # Inspector: the condition's value is a reference picked from the sample payload.
    select(page, "expression")
    page.get_by_test_id("inspector-add-groups").click()  # a new group has one condition
    ref_button = page.get_by_test_id("ref-button-groups.0.conditions.0.left")
    expect(ref_button).to_be_visible()
    ref_button.click()
    page.get_by_test_id("ref-item-trigger.body.tier").click()
    left = page.get_by_test_id("inspector-input-groups.0.conditions.0.left")
    expect(left).to_have_value(re.compile(r"\{\{\s*trigger\.body\.tier\s*\}\}"))
    expect(page.get_by_test_id("preview-groups.0.conditions.0.left")).to_contain_text("gold")
    fill_input(page, "groups.0.conditions.0.right", "gold")
    select(page, "request")
    fill_input(page, "url", f"{destination.url}/echo?tier=gold")
    select(page, "request_2")
    fill_input(page, "url", f"{destination.url}/echo?tier=basic")
    expect(page.get_by_test_id("problem-request_2")).to_have_count(0)
    saved_revision(page)
    shot(page, "designer-canvas")

    # Reload: the same graph comes back from the database.
    page.reload()
    for step_id in ("trigger", "expression", "request", "request_2"):
        expect(node(page, step_id)).to_be_visible()
    expect(page.locator(".vue-flow__edge")).to_have_count(3)
    select(page, "request")
    expect(page.get_by_test_id("inspector-input-url")).to_have_value(
        f"{destination.url}/echo?tier=gold"
    )

    # Run both payloads: each takes its own branch.
    run_payload(page, "Gold customer")
    expect(page.get_by_test_id("badge-request")).to_have_text("succeeded")
    expect(page.get_by_test_id("badge-request_2")).to_have_text("skipped")
    select(page, "request")
    expect(page.get_by_test_id("step-output")).to_contain_text("200")
    shot(page, "designer-test-run")
    keep(page, "designer-test-run.png")
    run_payload(page, "Basic customer")
    expect(page.get_by_test_id("badge-request")).to_have_text("skipped")
    expect(page.get_by_test_id("badge-request_2")).to_have_text("succeeded")
    gets = [path for method, path, _ in destination.requests if method == "GET"]
    assert gets.count("/echo") == 2

    # The executions page lists both runs, with their step records.
    page.goto(app_server.url + "/executions")
    rows = page.get_by_test_id("execution-row")
    expect(rows).to_have_count(2)
    shot(page, "executions-list")
    keep(page, "executions.png")
    rows.first.click()
    expect(page).to_have_url(re.compile(r"/executions/"))
    records = page.get_by_test_id("step-row")
    expect(records).to_have_count(4)
    for label in ("Webhook", "expression", "request", "request_2"):
        expect(records.filter(has_text=label).first).to_be_visible()
    expect(records.filter(has_text="skipped")).to_have_count(1)
    shot(page, "execution-detail")
    keep(page, "execution-detail.png")

    # Deploy an instance and read its webhook URL.
    page.goto(app_server.url + "/instances/deploy?integration=Orders")
    page.get_by_test_id("deploy-publish").click()  # instances run published versions
    page.get_by_test_id("deploy-name").fill("orders-live")
    page.get_by_test_id("deploy-button").click()
    url = page.get_by_test_id("webhook-url-flow_1")
    expect(url).to_contain_text("/webhooks/")
    webhook = url.inner_text().strip()
    answer = httpx.post(webhook, json={"tier": "gold", "order": 19}, timeout=10)
    assert answer.status_code == 202, answer.text
    shot(page, "instance-deployed")


def create_payload(page: Page, name: str, body: str) -> None:
    page.get_by_test_id("payload-new").click()
    page.get_by_test_id("payload-name-input").fill(name)
    page.get_by_test_id("payload-name-ok").click()
    editor = page.get_by_test_id("payload-body").locator(".cm-content")
    editor.fill(body)
    page.get_by_test_id("payload-save").click()
    expect(page.get_by_test_id("body-error")).to_have_text("")


def wait_for_payloads(server: ServerProcess, tiers: dict[str, str]) -> None:
    """Poll the API until the payloads are stored with these bodies (saving is asynchronous)."""
    deadline = time.monotonic() + 15
    stored: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{server.url}/api/integrations/Orders/payloads", timeout=5)
        stored = {p["name"]: (p.get("body") or {}).get("tier") for p in answer.json()}
        if stored == tiers:
            return
        time.sleep(0.2)
    raise AssertionError(f"payloads stored as {stored}, expected {tiers}")


def run_payload(page: Page, name: str) -> None:
    page.get_by_test_id("payload-select").click()
    page.get_by_role("option", name=name).click()
    page.get_by_test_id("run-test").click()
    expect(page.get_by_test_id("run-summary")).to_contain_text("succeeded")
