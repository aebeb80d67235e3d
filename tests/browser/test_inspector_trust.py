"""Issue 23 in a real browser, at 1440x900: what the inspector shows is what runs, and the test
view has room. Each test imports its own small integration through the API and opens it."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import keep, shot
from tests.server.conftest import ServerProcess

YAML = """
name: {name}
flows:
  - id: issues
    name: Issue opened
    trigger:
      id: trigger
      action: webhook.webhook
    steps:
      - id: announce
        name: Announce
        action: log.message
        inputs: {{message: "New issue: {{{{ trigger.body.issue.title }}}}"}}
    edges:
      - {{from: trigger, to: announce}}
"""

PAYLOAD = {"issue": {"title": "Crash on save", "labels": [{"name": "bug"}, {"name": "ui"}]}}


def open_integration(page: Page, server: ServerProcess, name: str) -> None:
    """Import the small integration as `name`, give it a test payload, open its editor."""
    answer = httpx.post(
        f"{server.url}/api/integrations",
        content=YAML.format(name=name).encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    answer = httpx.post(
        f"{server.url}/api/integrations/{quote(name)}/payloads",
        json={"flow_id": "issues", "name": "Bug report", "body": PAYLOAD},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{server.url}/integrations/{quote(name)}")
    expect(page.get_by_test_id("node-announce")).to_be_visible()


def select(page: Page, step_id: str) -> None:
    page.get_by_test_id(f"node-{step_id}").click()
    expect(page.get_by_test_id("step-id")).to_have_value(step_id)


def test_bug3_a_field_error_is_a_problem_and_run_refuses(
    page: Page, app_server: ServerProcess
) -> None:
    open_integration(page, app_server, "Bug three")
    select(page, "announce")
    field = page.get_by_test_id("inspector-input-message")
    field.fill("New issue: {{ trigger.body.issue..title }}")
    field.press("Tab")
    expect(page.get_by_test_id("error-message")).to_contain_text("does not compile")
    expect(page.get_by_test_id("save-status")).to_have_text("Not saved · 1 field error")
    problems = page.get_by_test_id("problems")
    expect(problems).to_contain_text("Step 'Announce', input 'message'")
    page.get_by_test_id("run-test").click()
    refusal = page.get_by_test_id("test-error")
    expect(refusal).to_contain_text("The flow was not run")
    expect(refusal).to_contain_text("Step 'Announce', input 'message'")
    expect(page.get_by_test_id("run-summary")).not_to_contain_text("succeeded")
    shot(page, "bug3-refused")

    field.fill("New issue: {{ trigger.body.issue.title }}!")
    field.press("Tab")
    expect(page.get_by_test_id("save-status")).to_contain_text(re.compile(r"^Saved"))
    expect(problems).not_to_contain_text("Step 'Announce', input 'message'")
    page.get_by_test_id("run-test").click()
    expect(page.get_by_test_id("run-summary")).to_contain_text("succeeded")


def test_bug5_a_list_offers_every_item_and_first_item_with_a_live_preview(
    page: Page, app_server: ServerProcess
) -> None:
    open_integration(page, app_server, "Bug five")
    select(page, "announce")
    field = page.get_by_test_id("inspector-input-message")
    field.fill("Labels: ")
    field.press("End")
    page.get_by_test_id("ref-button-message").click()
    every = page.get_by_test_id("ref-item-trigger.body.issue.labels.name[]")
    expect(every).to_contain_text("name (every item)")
    expect(every).to_contain_text('["bug", "ui"]')
    expect(page.get_by_test_id("ref-item-trigger.body.issue.labels[0].name")).to_be_visible()
    shot(page, "bug5-reference-menu")
    every.click()
    expect(field).to_have_value("Labels: {{ trigger.body.issue.labels.name[] }}")
    expect(page.get_by_test_id("preview-message")).to_contain_text('Labels: [\\"bug\\",\\"ui\\"]')

    field.fill('{{ "bug" in trigger.body.issue.labels.name[] }}')
    field.press("Tab")
    expect(page.get_by_test_id("preview-message")).to_have_text("= true")


def test_a_reference_that_reads_nothing_is_warned_under_the_field(
    page: Page, app_server: ServerProcess
) -> None:
    open_integration(page, app_server, "Typo")
    select(page, "announce")
    field = page.get_by_test_id("inspector-input-message")
    field.fill("New issue: {{ trigger.body.issue.tittle }}")
    field.press("Tab")
    preview = page.get_by_test_id("preview-message")
    expect(preview).to_contain_text("Nothing at trigger.body.issue.tittle in the")
    expect(preview).to_have_class(re.compile(r"text-negative"))


def test_bug6_the_test_view_shows_input_and_output_side_by_side_with_a_remembered_split(
    page: Page, app_server: ServerProcess
) -> None:
    open_integration(page, app_server, "Bug six")
    page.get_by_test_id("run-test").click()
    expect(page.get_by_test_id("run-summary")).to_contain_text("succeeded")
    select(page, "announce")
    given, made = page.get_by_test_id("step-input"), page.get_by_test_id("step-output")
    expect(given.get_by_test_id("step-input-tree")).to_be_visible()  # a collapsible tree
    expect(made.get_by_test_id("step-output-tree")).to_contain_text("Crash on save")
    left, right = given.bounding_box(), made.bounding_box()
    assert left is not None and right is not None
    assert right["x"] >= left["x"] + left["width"] - 1  # side by side, not stacked
    assert left["width"] > 200 and right["width"] > 200
    keep(page, "designer-test-view.png")
    made.get_by_test_id("step-output-mode").get_by_text("Raw").click()
    expect(made.get_by_test_id("step-output-raw")).to_contain_text('"message": "New issue:')
    expect(made.get_by_test_id("step-output-tree")).to_be_hidden()
    expect(made.get_by_test_id("step-output-copy")).to_be_visible()
    page.get_by_test_id("step-full").click()  # the whole window for one step's data
    expect(page.get_by_test_id("step-full-output")).to_contain_text("Crash on save")
    page.get_by_test_id("step-full-close").click()
    expect(page.locator(".q-dialog")).to_have_count(0)  # gone, backdrop and all

    # The divider between canvas and test view has a visible grip and stays where it was left.
    stack = page.get_by_test_id("splitter-editor-test-view")
    grip = stack.locator(":scope > .q-splitter__separator")
    box = grip.bounding_box()
    assert box is not None and box["height"] >= 6  # a grip one can see and hit
    canvas = page.locator(".flowyard-canvas")
    before = canvas.bounding_box()
    assert before is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 120, steps=8)
    page.mouse.up()
    moved = canvas.bounding_box()
    assert moved is not None and moved["height"] < before["height"] - 40
    page.wait_for_timeout(300)  # the new position reaches the server
    page.reload()
    expect(page.get_by_test_id("node-announce")).to_be_visible()
    again = canvas.bounding_box()
    assert again is not None and abs(again["height"] - moved["height"]) < 4
    # ... and the raw view chosen above is the one shown
    select(page, "announce")
    expect(page.get_by_test_id("step-output-raw")).to_be_visible()


WIDE_YAML = """
name: Wide
flows:
  - id: wide
    name: Wide inspector
    trigger: {id: trigger, action: webhook.webhook}
    steps:
      - id: check
        name: Is it a bug?
        action: branch.expression
        inputs:
          groups:
            - conditions:
                - {left: "{{ trigger.body.issue.title }}", operator: "==", right: "x"}
      - id: call
        name: Call the tracker
        action: http.request
        inputs:
          method: POST
          url: https://tracker.example.com/api/issues
          headers: {Accept: application/json, X-Request-Source: flowyard}
          body: {title: "{{ trigger.body.issue.title }}"}
    edges:
      - {from: trigger, to: check}
      - {from: check, port: "true", to: call}
"""

OVERFLOW = """(root) => {
  const cut = [];
  for (const el of root.querySelectorAll('.q-field__label, .q-item__label, label')) {
    if (el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1) cut.push(el.textContent);
  }
  const area = root.closest('.q-scrollarea');
  const container = area ? area.querySelector('.q-scrollarea__container') : root;
  return {cut, wide: container.scrollWidth > container.clientWidth + 1};
}"""


def test_the_inspector_fits_its_labels_at_1440x900(page: Page, app_server: ServerProcess) -> None:
    answer = httpx.post(
        f"{app_server.url}/api/integrations",
        content=WIDE_YAML.encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{app_server.url}/integrations/Wide")
    for step_id in ("call", "check"):
        select(page, step_id)
        inspector = page.get_by_test_id("inspector")
        expect(inspector).to_be_visible()
        found = inspector.evaluate(OVERFLOW)
        assert found == {"cut": [], "wide": False}, step_id
        shot(page, f"inspector-1440-{step_id}")


def test_flow_names_are_not_cut_in_the_executions_list(
    page: Page, app_server: ServerProcess
) -> None:
    long_name = "Issue opened on the public tracker"
    answer = httpx.post(
        f"{app_server.url}/api/integrations",
        content=YAML.format(name="Long names")
        .replace("Issue opened", long_name)
        .replace("id: issues", "id: long_issues")
        .encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{app_server.url}/integrations/Long%20names")
    page.get_by_test_id("run-test").click()
    expect(page.get_by_test_id("run-summary")).to_contain_text("succeeded")
    page.goto(f"{app_server.url}/executions")
    row = page.get_by_test_id("execution-row").filter(has_text="Issue opened on").first
    name = row.get_by_text(f"{long_name} (Long names)", exact=True)
    expect(name).to_be_visible()
    assert name.evaluate("(e) => e.scrollWidth <= e.clientWidth"), "the flow name is cut"
    assert name.get_attribute("title") == f"{long_name} (Long names)"
