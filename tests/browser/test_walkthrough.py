"""Issue 23's acceptance walkthrough, as a new user at 1440x900 in a real browser.

From the start page to an upgraded instance, through the UI only (the API is read to wait for
asynchronous saves, and httpx plays the outside world sending webhooks): a new integration's empty
canvas; a webhook trigger, a branch and an HTTP step dragged from the palette and connected by
their handles; the branch tests "labels include bug" with the reference picker's "every item"
choice read from a saved payload; two test payloads take different paths; version 1 is published,
deployed from the deploy page and receives a real webhook that reaches a loopback app; the HTTP
step's body is edited, version 2 published, the instance upgraded from its card on the instances
page; the next webhook to the same URL sends version 2's body.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.browser.test_designer import (
    connect,
    create_payload,
    drop_from_palette,
    fill_input,
    node,
    run_payload,
    saved_revision,
    select,
)
from tests.browser.test_versions import deploy_here, publish_here
from tests.server.conftest import ServerProcess
from tests.server.fakeapps import FakeApp

NAME = "Triage"
BUG: dict[str, Any] = {"title": "Crash on save", "labels": [{"name": "bug"}, {"name": "ui"}]}
# One label, and "bug" only as part of it: `labels.name` would be the text "debugging", which
# contains "bug"; `labels.name[]` is the list ["debugging"], which does not.
QUESTION: dict[str, Any] = {
    "title": "How do I attach a debugger?",
    "labels": [{"name": "debugging"}],
}
V1 = {"url": "v1", "title": "{{ trigger.body.title }}"}  # the HTTP step's body, published as v1
V2 = {"url": "v2", "title": "Bug: {{ trigger.body.title }}"}  # and as v2
LABELS = "groups.0.conditions.0"  # the branch's first condition, as the inspector names it
ROUND_TRIP = 30_000  # ms: server round trips on a loaded machine


@pytest.fixture(scope="module")
def loopback() -> Iterator[FakeApp]:
    """The app the HTTP step calls: it records the body of each `POST /subscriptions`."""
    app = FakeApp("tracker").start()
    yield app
    app.stop()


def received(app: FakeApp, count: int) -> list[dict[str, Any]]:
    """The bodies `app` was sent, once there are `count` of them (webhook runs are async)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bodies = [{k: v for k, v in s.items() if k != "id"} for s in app.subscriptions.values()]
        if len(bodies) >= count:
            return bodies
        time.sleep(0.1)
    raise AssertionError(f"expected {count} bodies, the app received {app.subscriptions}")


def wait_for_payloads(server: ServerProcess, titles: dict[str, str]) -> None:
    """Poll the API until the payloads are stored with these titles (saving is asynchronous)."""
    deadline = time.monotonic() + 30
    stored: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{server.url}/api/integrations/{NAME}/payloads", timeout=10)
        stored = {p["name"]: (p.get("body") or {}).get("title") for p in answer.json()}
        if stored == titles:
            return
        time.sleep(0.2)
    raise AssertionError(f"payloads stored as {stored}, expected {titles}")


def saved_inputs(
    server: ServerProcess, step_id: str, holds: Callable[[dict[str, Any]], bool]
) -> None:
    """Poll the API until the draft's `step_id` has inputs that `holds` accepts: the header's
    "Saved" may still be the previous save's, and publishing freezes what the draft holds."""
    deadline = time.monotonic() + 30
    inputs: dict[str, Any] = {}
    while time.monotonic() < deadline:
        draft = httpx.get(f"{server.url}/api/integrations/{NAME}", timeout=10).json()
        steps = {s["id"]: s for s in draft["integration"]["flows"][0]["steps"]}
        inputs = steps.get(step_id, {}).get("inputs") or {}
        if holds(inputs):
            return
        time.sleep(0.2)
    raise AssertionError(f"the draft's {step_id} holds {inputs}")


def labels_include_bug(inputs: dict[str, Any]) -> bool:
    """The branch's first condition is `trigger.body.labels.name[]` contains "bug"."""
    groups = inputs.get("groups") or [{}]
    condition = (groups[0].get("conditions") or [{}])[0]
    every = r"\{\{\s*trigger\.body\.labels\.name\[\]\s*\}\}"
    return (
        re.fullmatch(every, str(condition.get("left"))) is not None
        and condition.get("operator") == "contains"
        and condition.get("right") == "bug"
    )


def choose(page: Page, field: str, option: str) -> None:
    """Pick `option` in the inspector's select for `field`."""
    page.get_by_test_id(f"inspector-input-{field}").click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_test_id(f"inspector-input-{field}")).to_contain_text(option)


def send(webhook: str, body: dict[str, Any]) -> None:
    answer = httpx.post(webhook, json=body, timeout=30)
    assert answer.status_code == 202, answer.text


@pytest.mark.timeout(180)  # a dozen pages and server round trips on a shared machine
def test_a_new_user_goes_from_an_empty_canvas_to_an_upgraded_instance(
    page: Page, app_server: ServerProcess, loopback: FakeApp
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.set_default_timeout(ROUND_TRIP)
    page.goto(app_server.url + "/")
    page.get_by_test_id("new-integration").click()
    page.get_by_test_id("new-integration-name").fill(NAME)
    page.get_by_test_id("create-integration").click()
    expect(page).to_have_url(re.compile(rf"/integrations/{NAME}$"))
    expect(page.locator(".vue-flow__node")).to_have_count(0)  # an empty canvas

    # Three steps from the palette, connected by their handles.
    drop_from_palette(page, "webhook.webhook", 100, 200)
    expect(node(page, "trigger")).to_be_visible()
    drop_from_palette(page, "branch.expression", 360, 200)
    drop_from_palette(page, "http.request", 640, 120)
    expect(node(page, "expression")).to_be_visible()
    expect(node(page, "request")).to_be_visible()
    connect(page, "trigger", "out", "expression")
    connect(page, "expression", "true", "request")  # `false` stays open: that path does nothing
    saved_revision(page)

    # Two saved payloads; the bug report is the one the reference picker reads.
    create_payload(page, "Bug report", json.dumps(BUG))
    create_payload(page, "Question", json.dumps(QUESTION))
    wait_for_payloads(app_server, {"Bug report": BUG["title"], "Question": QUESTION["title"]})
    page.get_by_test_id("payload-select").click()
    page.get_by_role("option", name="Bug report").click()

    # The branch: "labels include bug", the list picked with "every item".
    select(page, "expression")
    page.get_by_test_id("inspector-add-groups").click()
    page.get_by_test_id(f"ref-button-{LABELS}.left").click()
    every = page.get_by_test_id("ref-item-trigger.body.labels.name[]")
    expect(every).to_contain_text("every item")
    expect(every).to_contain_text('["bug", "ui"]')
    every.click()
    left = page.get_by_test_id(f"inspector-input-{LABELS}.left")
    expect(left).to_have_value(re.compile(r"\{\{\s*trigger\.body\.labels\.name\[\]\s*\}\}"))
    expect(page.get_by_test_id(f"preview-{LABELS}.left")).to_contain_text('"bug"')
    choose(page, f"{LABELS}.operator", "contains")
    fill_input(page, f"{LABELS}.right", "bug")

    # The HTTP step posts the title to the loopback app.
    select(page, "request")
    choose(page, "method", "POST")
    fill_input(page, "url", f"{loopback.url}/subscriptions")
    choose(page, "body_type", "json")
    fill_input(page, "body", json.dumps(V1))
    saved_revision(page)
    saved_inputs(app_server, "expression", labels_include_bug)
    saved_inputs(app_server, "request", lambda inputs: inputs.get("body") == V1)
    expect(page.get_by_test_id("problems")).to_contain_text("No problems.")

    # Test on both payloads: the bug takes the HTTP step, the question does not.
    run_payload(page, "Bug report")
    expect(page.get_by_test_id("badge-expression")).to_have_text("succeeded")
    expect(page.get_by_test_id("badge-request")).to_have_text("succeeded")
    assert received(loopback, 1) == [{"url": "v1", "title": BUG["title"]}]
    run_payload(page, "Question")
    expect(page.get_by_test_id("badge-request")).to_have_text("skipped")  # this run's badges
    expect(page.get_by_test_id("badge-expression")).to_have_text("succeeded")
    assert len(loopback.subscriptions) == 1  # the question's run sent nothing
    shot(page, "walkthrough-test-run")

    # Publish version 1 and deploy it from the deploy page.
    publish_here(page, "posts bugs")
    expect(page.get_by_test_id("version-label")).to_contain_text("version 1 · posts bugs")
    page.goto(f"{app_server.url}/instances/deploy?integration={NAME}")
    expect(page.get_by_test_id("deploy-version")).to_contain_text("version 1 · posts bugs")
    webhook = deploy_here(page, "triage-live", "flow_1")

    # A real webhook reaches the loopback app through version 1.
    send(webhook, {"title": "Login fails", "labels": [{"name": "bug"}]})
    assert received(loopback, 2)[1] == {"url": "v1", "title": "Login fails"}

    # Edit the body in the designer and publish version 2.
    page.goto(f"{app_server.url}/integrations/{NAME}")
    select(page, "request")
    fill_input(page, "body", json.dumps(V2))
    saved_revision(page)
    saved_inputs(app_server, "request", lambda inputs: inputs.get("body") == V2)
    publish_here(page, "prefixes the title")
    expect(page.get_by_test_id("version-label")).to_contain_text("version 2 · prefixes the title")

    # Upgrade the instance from its card: same webhook URL, version 2.
    page.goto(app_server.url + "/instances")
    expect(page.get_by_test_id("instance-version-triage-live")).to_contain_text(
        re.compile(r"version 1\b")
    )
    page.get_by_test_id("upgrade-triage-live").click()
    expect(page.get_by_test_id("upgrade-version")).to_contain_text("version 2")
    page.get_by_test_id("upgrade-confirm").click()
    expect(page.get_by_test_id("instance-version-triage-live")).to_contain_text(
        "version 2 · prefixes the title"
    )
    expect(page.get_by_test_id("webhook-url-flow_1")).to_have_text(webhook)

    # The next webhook to the same URL runs version 2.
    send(webhook, {"title": "Export hangs", "labels": [{"name": "ui"}, {"name": "bug"}]})
    assert received(loopback, 3) == [
        {"url": "v1", "title": BUG["title"]},  # the designer's test run
        {"url": "v1", "title": "Login fails"},  # version 1, deployed
        {"url": "v2", "title": "Bug: Export hangs"},  # version 2, same URL
    ]
    shot(page, "walkthrough-upgraded")
