"""The test panel's Run all (`app.pages.testpanel_suite`) with NiceGUI's simulated user, and the
canvas marks its coverage becomes (`designer.coverage`).

The flow routes orders to `shape` and anything else to `other`; its suite has one passing test
and one whose expectation is wrong, and no test takes the `else` port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nicegui import ui
from nicegui.testing import User

from app.pages.layout import hub as current_hub
from app.pages.testpanel import TestPanel
from app.services import executions, payloads, testruns
from app.services.hub import Hub
from app.services.payloads import PayloadInput
from designer.coverage import coverage_marks
from runtime.files import parse_integration
from tests.pages.conftest import import_yaml
from tests.pages.test_testpanel import only, text, until

INTEGRATION = "Suite checks"
YAML = """
name: Suite checks
flows:
  - id: orders
    name: Orders
    trigger: {id: receive, action: webhook.webhook}
    steps:
      - id: route
        action: branch.value
        inputs:
          value: '{{ trigger.body.kind }}'
          cases: [{port: order, equals: order}]
      - id: shape
        action: transform.object
        inputs: {fields: {id: '{{ trigger.body.id }}'}}
      - id: other
        action: log.message
        inputs: {message: 'Not an order'}
    edges:
      - {from: receive, to: route}
      - {from: route, to: shape, port: order}
      - {from: route, to: other, port: else}
    tests:
      - name: order seven
        request: {body: {kind: order, id: 7}}
        expect:
          ran: [shape]
          steps: {shape: {output: {id: 7}}}
      - name: order eight expects nine
        request: {body: {kind: order, id: 8}, headers: {X-Attempt: 2, X-Live: true}}
        expect:
          steps: {shape: {output: {id: 9}}}
"""


async def open_panel(user: User, hub: Hub, tmp_path: Path) -> list[dict[str, Any] | None]:
    path = tmp_path / "suite.yaml"
    path.write_text(YAML)
    await import_yaml(hub, path)
    coverage: list[dict[str, Any] | None] = []

    @ui.page("/testpanel-suite")
    def page() -> None:
        panel = TestPanel(
            current_hub(), INTEGRATION, on_statuses=lambda _: None, on_coverage=coverage.append
        )
        panel.set_flow("orders")

    await user.open("/testpanel-suite")
    await user.should_see(marker="run-all", retries=200)
    return coverage


async def test_run_all_shows_each_payload_first_mismatch_and_coverage(
    user: User, hub: Hub, tmp_path: Path
) -> None:
    coverage = await open_panel(user, hub, tmp_path)
    user.find(marker="run-all").click()
    await until(lambda: len(coverage) == 1, what="Run all to report coverage")
    await user.should_see(marker="suite-summary")
    assert text(user, "suite-summary") == "Run all: 1 passed, 1 failed"
    rows = sorted(user.find(marker="suite-test").elements, key=lambda e: e.id)
    assert [e.props["data-passed"] for e in rows] == ["true", "false"]
    failure = text(user, "suite-failure")
    assert "order eight expects nine" in text(user, "suite-results")
    assert failure.startswith("step shape, output.id: expected 9, got 8"), failure
    # 4 steps + route's 2 ports: `other` and `route:else` are not covered.
    assert text(user, "suite-coverage") == "Path coverage 4/6 (66.7%)"
    assert text(user, "suite-uncovered") == "Not covered: other, route:else"
    [report] = coverage
    assert report is not None and report["flow"] == "orders"

    # Clear hides the results and tells the editor to remove the overlay.
    user.find(marker="suite-clear").click()
    await user.should_not_see(marker="suite-summary")
    assert coverage[-1] is None


async def test_suite_payloads_join_the_dropdown_and_run_like_saved_ones(
    user: User, hub: Hub, tmp_path: Path
) -> None:
    await open_panel(user, hub, tmp_path)
    # No saved payload yet, but the suite's are there: the panel points to them.
    await user.should_see("No saved payload: pick one of the flow's suite tests")
    await user.should_not_see("No test payload yet")
    await payloads.create_payload(
        hub, INTEGRATION, PayloadInput(flow_id="orders", name="Saved", body={"kind": "x"})
    )
    await user.open("/testpanel-suite")
    select = only(user, "payload-select")
    await until(lambda: len(select.options) == 3, what="saved and suite payloads listed")
    assert select.options == {
        1: "Saved",
        "suite:0": "order seven · suite",
        "suite:1": "order eight expects nine · suite",
    }
    with user:
        select.value = "suite:1"
    await user.should_see(marker="suite-payload-request")
    assert '"id": 8' in text(user, "suite-payload-request")
    await user.should_not_see(marker="payload-body")
    user.find(marker="run-test").click()
    await user.should_see(marker="run-link", retries=200)
    run = await last_run(hub)
    steps = {r["step_id"]: r for r in run["steps"]}
    assert steps["shape"]["output"] == {"id": 8}
    # Header values a suite may write as numbers or booleans are sent as text, as `flowyard test`
    # sends them.
    headers = steps["receive"]["output"]["headers"]
    assert (headers["x-attempt"], headers["x-live"]) == ("2", "true")
    assert "other" not in steps or steps["other"]["status"] == "skipped"

    # Back to the saved payload: its form comes back.
    with user:
        select.value = 1
    await user.should_see(marker="payload-body")
    await user.should_not_see(marker="suite-payload-request")


async def last_run(hub: Hub) -> dict[str, Any]:
    execution = await testruns.last_test_run(hub, INTEGRATION, "orders")
    assert execution is not None
    return await executions.get_execution(hub, execution)


async def test_run_all_refusal_is_shown_not_raised(user: User, hub: Hub, tmp_path: Path) -> None:
    # A required config key with no value for test runs: the suite is refused before it runs.
    broken = YAML.replace(
        "flows:\n", "config:\n  - {key: shop_url, type: string, required: true}\nflows:\n", 1
    )
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    await import_yaml(hub, path)
    coverage: list[dict[str, Any] | None] = []

    @ui.page("/testpanel-suite-broken")
    def page() -> None:
        TestPanel(
            current_hub(), INTEGRATION, on_statuses=lambda _: None, on_coverage=coverage.append
        ).set_flow("orders")

    await user.open("/testpanel-suite-broken")
    await user.should_see(marker="run-all", retries=200)
    user.find(marker="run-all").click()
    await user.should_see(marker="test-error", retries=200)
    assert "Config shop_url has no value for test runs." in text(user, "test-error")
    await user.should_not_see(marker="suite-summary")
    assert coverage == []


def test_coverage_marks_steps_ports_and_edges_taken() -> None:
    flow = parse_integration(YAML).flows[0]
    coverage = {
        "steps": [
            {"step": "receive", "covered_by": ["a", "b"]},
            {"step": "route", "covered_by": ["a", "b"]},
            {"step": "shape", "covered_by": ["a"]},
            {"step": "other", "covered_by": []},
        ],
        "paths": [
            {"step": "route", "port": "order", "covered_by": ["a"]},
            {"step": "route", "port": "else", "covered_by": []},
        ],
    }
    marks = coverage_marks(flow, coverage)
    assert marks["steps"] == {
        "receive": ["a", "b"],
        "route": ["a", "b"],
        "shape": ["a"],
        "other": [],
    }
    assert marks["ports"] == {"route:order": ["a"], "route:else": []}
    assert marks["edges"] == {
        "receive:out->route": ["a", "b"],
        "route:order->shape": ["a"],
        "route:else->other": [],
    }
