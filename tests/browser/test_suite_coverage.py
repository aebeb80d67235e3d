"""Run all in the designer, in a real browser: per-payload results, and the coverage overlay on
the canvas (covered and uncovered steps, branch ports and edges; the covering payloads on hover),
which Clear removes."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import keep, shot
from tests.server.conftest import ServerProcess

YAML = """
name: Coverage tour
flows:
  - id: orders
    name: Orders
    trigger: {id: receive, action: webhook.webhook}
    steps:
      - id: route
        name: Route by kind
        action: branch.value
        inputs:
          value: '{{ trigger.body.kind }}'
          cases: [{port: order, equals: order}]
      - id: shape
        name: Shape the order
        action: transform.object
        inputs: {fields: {id: '{{ trigger.body.id }}'}}
      - id: other
        name: Log anything else
        action: log.message
        inputs: {message: 'Not an order'}
    edges:
      - {from: receive, to: route}
      - {from: route, to: shape, port: order}
      - {from: route, to: other, port: else}
    tests:
      - name: order seven
        request: {body: {kind: order, id: 7}}
        expect: {steps: {shape: {output: {id: 7}}}}
      - name: order eight
        request: {body: {kind: order, id: 8}}
        expect: {steps: {shape: {output: {id: 9}}}}
"""

COVERED_EDGE = re.compile(r"\bfy-edge-covered\b")
UNCOVERED_EDGE = re.compile(r"\bfy-edge-uncovered\b")


def test_run_all_overlays_coverage_on_the_canvas(page: Page, app_server: ServerProcess) -> None:
    imported = httpx.post(
        f"{app_server.url}/api/integrations",
        content=YAML.encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert imported.status_code == 201, imported.text
    page.goto(f"{app_server.url}/integrations/Coverage%20tour")
    shape = page.get_by_test_id("node-shape")
    expect(shape).to_be_visible()
    expect(shape).not_to_have_attribute("data-coverage", "covered")

    page.get_by_test_id("run-all").click()
    expect(page.get_by_test_id("suite-summary")).to_have_text("Run all: 1 passed, 1 failed")
    expect(page.get_by_test_id("suite-failure")).to_contain_text(
        "step shape, output.id: expected 9, got 8"
    )
    expect(page.get_by_test_id("suite-coverage")).to_have_text("Path coverage 4/6 (66.7%)")

    # Steps, branch ports and edges: taken ones covered, the `else` path not.
    for step in ("receive", "route", "shape"):
        expect(page.get_by_test_id(f"node-{step}")).to_have_attribute("data-coverage", "covered")
    expect(page.get_by_test_id("node-other")).to_have_attribute("data-coverage", "uncovered")
    expect(page.get_by_test_id("handle-route-order")).to_have_attribute("data-coverage", "covered")
    expect(page.get_by_test_id("handle-route-else")).to_have_attribute("data-coverage", "uncovered")
    taken = page.locator('[data-id="route:order->shape"]')
    expect(taken).to_have_class(COVERED_EDGE)
    expect(page.locator('[data-id="route:else->other"]')).to_have_class(UNCOVERED_EDGE)

    # Hovering lists the payloads that cover a step, an edge; an uncovered step says so.
    tip = page.get_by_test_id("coverage-tip")
    shape.hover()
    expect(tip).to_contain_text("Covered by")
    expect(tip).to_contain_text("order seven")
    expect(tip).to_contain_text("order eight")
    expect(page.locator(".q-tooltip")).to_have_count(0)  # Run all's own tooltip has faded
    keep(page, "coverage-overlay.png")
    page.get_by_test_id("node-other").hover()
    expect(tip).to_have_text("Not covered by any test")
    page.mouse.move(5, 5)
    expect(tip).to_have_count(0)
    taken.locator(".vue-flow__edge-interaction").hover(force=True)
    expect(tip).to_contain_text("order seven")

    # Clear removes the results and the overlay.
    page.get_by_test_id("suite-clear").click()
    expect(page.get_by_test_id("suite-summary")).to_have_count(0)
    expect(shape).not_to_have_attribute("data-coverage", "covered")
    expect(taken).not_to_have_class(COVERED_EDGE)
    shot(page, "coverage-cleared")
