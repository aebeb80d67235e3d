"""Replay on draft in a real browser: a deployed instance's execution called a loopback app; after
the draft's transform changes, the diff view shows the changed step and path, the app gets no
second call, and Save as test puts the execution into the flow's suite."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import keep, shot
from tests.server.conftest import ServerProcess
from tests.server.fakeapps import FakeApp

NAME = "Replay shop"


def integration(app_url: str, note: str) -> str:
    """An integration whose flow `order` GETs the app's echo endpoint, then shapes a summary."""
    return f"""
name: {NAME}
flows:
  - id: order
    name: Order
    trigger: {{id: trigger, action: webhook.webhook}}
    steps:
      - id: fetch
        action: http.request
        inputs: {{url: "{app_url}/echo?sku={{{{ trigger.body.sku }}}}"}}
      - id: summary
        name: Summary
        action: transform.object
        inputs:
          fields:
            sku: "{{{{ trigger.body.sku }}}}"
            status: "{{{{ steps.fetch.output.status }}}}"
            note: {note}
    edges:
      - {{from: trigger, to: fetch}}
      - {{from: fetch, to: summary}}
"""


@pytest.fixture
def echo_app() -> Iterator[FakeApp]:
    app = FakeApp("shop").start()
    yield app
    app.stop()


def api(server: ServerProcess, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(method, f"{server.url}/api{path}", timeout=30, **kwargs)
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def import_file(server: ServerProcess, text: str) -> None:
    yaml = {"Content-Type": "application/yaml"}
    api(server, "POST", "/integrations", content=text.encode(), headers=yaml)


def finished_execution(server: ServerProcess, instance_id: str) -> str:
    """The id of the instance's one webhook execution, once it has finished."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = api(server, "GET", "/executions", params={"instance": instance_id})["executions"]
        done = [e for e in found if e["source"] == "webhook" and e["status"] == "succeeded"]
        if done:
            return str(done[0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"no finished webhook execution of {instance_id}: {found}")


def suite_tests(server: ServerProcess) -> list[tuple[str, str, Any]]:
    """(flow, name, body) of each test in the draft's suites."""
    found = api(server, "GET", f"/integrations/{NAME}/suites/payloads")
    return [(p["flow_id"], p["name"], p["body"]) for p in found]


def echo_calls(app: FakeApp) -> list[str]:
    return [path for method, path, _ in app.requests if method == "GET" and path == "/echo"]


def test_replay_on_draft_shows_the_diff_and_saves_a_test(
    page: Page, app_server: ServerProcess, echo_app: FakeApp
) -> None:
    import_file(app_server, integration(echo_app.url, "first"))
    api(app_server, "POST", f"/integrations/{NAME}/publish")  # instances run published versions
    instance = api(app_server, "POST", "/instances", json={"name": "shop", "integration": NAME})
    webhook = next(f["webhook_url"] for f in instance["flows"] if f["flow_id"] == "order")
    sent = httpx.post(webhook, json={"sku": "A1"}, timeout=10)
    assert sent.status_code == 202, sent.text
    execution_id = finished_execution(app_server, instance["id"])
    assert echo_calls(echo_app) == ["/echo"]

    import_file(app_server, integration(echo_app.url, "second"))  # the draft's transform changes

    page.goto(f"{app_server.url}/executions/{execution_id}")
    page.get_by_test_id("replay-on-draft-button").click()
    expect(page).to_have_url(re.compile(rf"/executions/{execution_id}/replay-on-draft$"))
    summary = page.locator(".nicegui-card", has_text="→ replay on the draft")
    expect(summary).to_contain_text("1 changed, 0 only in the original, 0 only in the replay")
    steps = page.get_by_test_id("diff-step")
    expect(steps).to_have_count(3)
    expect(steps.filter(has_text="Summary")).to_contain_text("changed")
    expect(steps.filter(has_text="fetch")).to_contain_text("same")
    detail = page.locator(".nicegui-card", has_text="Changed paths")
    expect(detail).to_contain_text("output.note")
    expect(detail).to_contain_text("input.fields.note")
    original = detail.locator("[data-changed='note']").first
    replayed = detail.locator("[data-changed='note']").last
    expect(original).to_contain_text('"note": "first"')
    expect(replayed).to_contain_text('"note": "second"')
    expect(detail.locator("[data-changed='sku']")).to_have_count(0)
    assert echo_calls(echo_app) == ["/echo"]  # answered by the recording, not sent again
    shot(page, "replay-diff")
    keep(page, "replay-diff.png")

    page.get_by_test_id("save-as-test-button").click()
    page.get_by_test_id("save-as-test-name").fill("A1 as shipped")
    page.get_by_test_id("save-as-test-save").click()
    expect(page.get_by_text("Saved test 'A1 as shipped' in flow 'order'")).to_be_visible()
    assert suite_tests(app_server) == [("order", "A1 as shipped", {"sku": "A1"})]
    page.get_by_test_id("save-as-test-save").click()  # the same name again is refused
    expect(page.get_by_test_id("save-as-test-dialog")).to_contain_text(
        "Flow 'Order' already has a test named 'A1 as shipped'."
    )
    assert len(suite_tests(app_server)) == 1
    page.get_by_test_id("save-as-test-name").fill("A1 again")
    page.get_by_test_id("save-as-test-save").click()
    page.get_by_test_id("save-as-test-link").click()
    expect(page).to_have_url(re.compile(r"/integrations/Replay%20shop\?flow=order$"))
    assert [name for _, name, _ in suite_tests(app_server)] == ["A1 as shipped", "A1 again"]
