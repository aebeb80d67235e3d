"""Versions in a real browser: what an instance runs is a published version, never the draft.

Bug 1 of issue 23: an instance deployed from the only version offered ("version 1 (draft)") ran a
cached copy of the draft; an edit in the designer was not sent, until a disable/enable reloaded the
draft, half-finished edits included. Here the integration is published from the designer, the
deploy form offers published versions only, and an edit in the designer never reaches the
instance, not even after a disable/enable, until it is published and the instance is upgraded.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import keep
from tests.browser.test_designer import (
    connect,
    drop_from_palette,
    fill_input,
    node,
    saved_revision,
    select,
)
from tests.server.conftest import ServerProcess
from tests.server.fakeapps import FakeApp

INTEGRATION = """
name: Hooks
flows:
  - id: orders
    name: Orders
    trigger: {{id: trigger, action: webhook.webhook}}
    steps:
      - id: send
        action: http.request
        inputs:
          method: POST
          url: {url}/subscriptions
          body_type: json
          body: {{url: first}}
    edges:
      - {{from: trigger, to: send}}
"""


@pytest.fixture(scope="module")
def destination() -> Iterator[FakeApp]:
    app = FakeApp("dest").start()
    yield app
    app.stop()


def sent_bodies(destination: FakeApp, count: int) -> list[str]:
    """The `url` field of every body the destination received, once it received `count`."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        urls = [s["url"] for s in destination.subscriptions.values()]
        if len(urls) >= count:
            return urls
        time.sleep(0.1)
    raise AssertionError(f"the destination received {destination.subscriptions}")


def send(webhook: str) -> None:
    answer = httpx.post(webhook, json={"n": 1}, timeout=10)
    assert answer.status_code == 202, answer.text


def edit_body(page: Page, server: ServerProcess, body: str) -> None:
    """Edit the HTTP step's body in the designer and wait until the draft holds it."""
    page.goto(server.url + "/integrations/Hooks")
    page.get_by_test_id("node-send").click()
    box = page.get_by_test_id("inspector-input-body")
    box.fill(body)
    box.blur()
    expect(page.get_by_test_id("save-status")).to_contain_text("Saved")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        draft = httpx.get(f"{server.url}/api/integrations/Hooks", timeout=5).json()
        step = draft["integration"]["flows"][0]["steps"][0]
        if step["inputs"]["body"] == json.loads(body):
            return
        time.sleep(0.1)
    raise AssertionError(f"the draft holds {draft}")


def publish(page: Page, server: ServerProcess, note: str) -> None:
    page.goto(server.url + "/integrations/Hooks")
    publish_here(page, note)


def publish_here(page: Page, note: str) -> None:
    """Publish from the designer that is open, with `note`."""
    page.get_by_test_id("publish").click()
    page.get_by_test_id("publish-note").fill(note)
    page.get_by_test_id("publish-confirm").click()


def deploy_here(page: Page, name: str, flow: str) -> str:
    """Deploy from the deploy form that is open; the webhook URL of `flow`."""
    page.get_by_test_id("deploy-name").fill(name)
    page.get_by_test_id("deploy-button").click()
    url = page.get_by_test_id(f"webhook-url-{flow}")
    expect(url).to_contain_text("/webhooks/")
    return url.inner_text().strip()


def test_an_instance_runs_its_published_version_not_the_draft(
    page: Page, app_server: ServerProcess, destination: FakeApp
) -> None:
    imported = httpx.post(
        f"{app_server.url}/api/integrations",
        content=INTEGRATION.format(url=destination.url),
        headers={"Content-Type": "application/yaml"},
        timeout=10,
    )
    assert imported.status_code in (200, 201), imported.text

    # Nothing is published yet: the deploy form offers no draft and sends the user to publish.
    page.goto(app_server.url + "/instances/deploy?integration=Hooks")
    expect(page.get_by_test_id("deploy-unpublished")).to_contain_text("Publish")
    expect(page.get_by_test_id("deploy-button")).to_have_count(0)

    # Publish from the designer, with a note.
    publish(page, app_server, "first body")
    expect(page.get_by_test_id("version-label")).to_contain_text("version 1 · first body")

    # Deploy: the versions offered are published ones.
    page.goto(app_server.url + "/instances/deploy?integration=Hooks")
    page.get_by_test_id("deploy-version").click()
    options = page.get_by_role("option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_text("version 1 · first body")
    page.keyboard.press("Escape")
    webhook = deploy_here(page, "hooks-live", "orders")
    send(webhook)
    assert sent_bodies(destination, 1) == ["first"]

    # Edit the body in the designer: the draft changes, the instance does not.
    edit_body(page, app_server, '{"url": "second"}')
    send(webhook)
    assert sent_bodies(destination, 2) == ["first", "first"]

    # Disable and enable the instance: still the published body, no draft leaks in.
    page.goto(app_server.url + "/instances")
    switch = page.get_by_test_id("enabled-hooks-live")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    send(webhook)
    assert sent_bodies(destination, 3) == ["first", "first", "first"]
    expect(page.get_by_test_id("instance-version-hooks-live")).to_contain_text(
        re.compile(r"version 1\b")
    )

    # Publish the edit as version 2 and upgrade the instance in place: same URL, new body.
    publish(page, app_server, "second body")
    expect(page.get_by_test_id("version-label")).to_contain_text("version 2 · second body")
    page.goto(app_server.url + "/instances")
    page.get_by_test_id("upgrade-hooks-live").click()
    page.get_by_test_id("upgrade-confirm").click()
    expect(page.get_by_test_id("instance-version-hooks-live")).to_contain_text("version 2")
    expect(page.get_by_test_id("webhook-url-orders")).to_have_text(webhook)
    send(webhook)
    assert sent_bodies(destination, 4)[3] == "second"

    # The history shows both notes and what changed, before and after.
    page.goto(app_server.url + "/integrations/Hooks")
    page.get_by_test_id("versions").click()
    expect(page.get_by_test_id("version-row-2")).to_contain_text("second body")
    expect(page.get_by_test_id("diff-before-send-inputs.body")).to_contain_text('"first"')
    expect(page.get_by_test_id("diff-after-send-inputs.body")).to_contain_text('"second"')
    keep(page, "version-diff.png")


def test_a_test_instance_runs_each_saved_edit_at_once(
    page: Page, app_server: ServerProcess, destination: FakeApp
) -> None:
    """Trying the draft against real traffic is explicit: a test instance, labelled so."""
    page.goto(app_server.url + "/instances/deploy?integration=Hooks&test=1")
    expect(page.get_by_test_id("deploy-test-note")).to_contain_text("Test instance")
    webhook = deploy_here(page, "hooks-test", "orders")
    expect(page.get_by_test_id("test-badge-hooks-test")).to_be_visible()
    seen = len(destination.subscriptions)
    edit_body(page, app_server, '{"url": "third"}')
    send(webhook)  # no disable/enable, no publish: the saved edit is live
    assert sent_bodies(destination, seen + 1)[seen] == "third"
    edit_body(page, app_server, '{"url": "fourth"}')
    send(webhook)
    assert sent_bodies(destination, seen + 2)[seen + 1] == "fourth"
    page.goto(app_server.url + "/instances")
    expect(page.get_by_test_id("test-badge-hooks-test")).to_be_visible()
    expect(page.get_by_test_id("instance-version-hooks-test")).to_contain_text(
        "test instance: follows the draft"
    )
    expect(page.get_by_test_id("upgrade-hooks-test")).to_have_count(0)


def requests_to(destination: FakeApp, path: str, count: int) -> None:
    """Wait until the destination received `count` GETs of `path`."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if [p for m, p, _ in destination.requests if m == "GET"].count(path) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the destination received {destination.requests}")


def test_walkthrough_from_an_empty_canvas_to_an_upgraded_instance(
    page: Page, app_server: ServerProcess, destination: FakeApp
) -> None:
    """The issue's acceptance walk, without the branch and test-payload parts the designer test
    covers: build, publish v1, deploy, webhook, edit, publish v2, upgrade, webhook on v2."""
    created = httpx.post(
        f"{app_server.url}/api/integrations",
        content="name: Walk\n",  # an empty canvas (the designer test creates one in the UI)
        headers={"Content-Type": "application/yaml"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    page.goto(app_server.url + "/integrations/Walk")
    drop_from_palette(page, "webhook.webhook", 120, 220)
    expect(node(page, "trigger")).to_be_visible()
    drop_from_palette(page, "http.request", 420, 220)
    expect(node(page, "request")).to_be_visible()
    connect(page, "trigger", "out", "request")
    select(page, "request")
    fill_input(page, "url", f"{destination.url}/echo")
    saved_revision(page)
    publish_here(page, "calls echo")
    expect(page.get_by_test_id("version-label")).to_contain_text("version 1 · calls echo")

    page.get_by_test_id("open-deploy").click()
    webhook = deploy_here(page, "walk-live", "flow_1")
    send(webhook)
    requests_to(destination, "/echo", 1)

    page.goto(app_server.url + "/integrations/Walk")
    select(page, "request")
    fill_input(page, "url", f"{destination.url}/subscriptions")
    saved_revision(page)
    send(webhook)  # still version 1
    requests_to(destination, "/echo", 2)
    publish_here(page, "lists subscriptions")
    expect(page.get_by_test_id("version-label")).to_contain_text("version 2")

    page.goto(app_server.url + "/instances")
    page.get_by_test_id("upgrade-walk-live").click()
    page.get_by_test_id("upgrade-confirm").click()
    expect(page.get_by_test_id("instance-version-walk-live")).to_contain_text(
        "version 2 · lists subscriptions"
    )
    expect(page.get_by_test_id("webhook-url-flow_1")).to_have_text(webhook)
    send(webhook)
    requests_to(destination, "/subscriptions", 1)
    assert [p for m, p, _ in destination.requests if m == "GET"].count("/echo") == 2
