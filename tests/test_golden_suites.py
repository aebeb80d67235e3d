"""Golden suites: each `golden/suites/*.yaml` holds an integration with `tests:` and what running
its suite must report.

    integration: {...}            # an integration file's content, flows carrying `tests:`
    expect:
      tests:                      # one entry per test, in file order
        - test: name
          passed: true            # or `failure: "step s, output.x: expected 1, got 2"`
          steps: [...]            # step ids the run covered (optional)
          paths: ["step:port"]    # paths the run covered (optional)
          pinned: [step, ...]     # records marked pinned, in order (optional)
          exchanges: {step: [...]}   # the step's recorded exchanges, partially (optional)
      coverage:                   # per flow (optional)
        flow_id: {covered: 8, total: 11, uncovered: [...], steps: {...}, paths: {...}}

New files are collected automatically. Nothing here touches the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.registry import Registry, default_registry
from runtime.files import (
    dump_integration,
    load_integration,
    parse_integration,
)
from runtime.graph import flow_from_node_link, flow_to_node_link
from runtime.matching import first_mismatch
from runtime.model import Integration
from runtime.suites import TestOutcome, run_suite
from runtime.validation import validate_flow

SUITES = Path(__file__).parent / "golden" / "suites"
CASES = sorted(SUITES.glob("*.yaml"))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


def check_outcome(outcome: TestOutcome, want: dict[str, Any]) -> None:
    where = f"{outcome.flow_id} > {outcome.test}"
    assert outcome.test == want["test"], where
    if "failure" in want:
        assert not outcome.passed, f"{where} passed"
        assert str(outcome.failure) == want["failure"], where
    else:
        assert outcome.passed is want.get("passed", True), f"{where}: {outcome.failure}"
    if "steps" in want:
        assert outcome.covered_steps == sorted(want["steps"]), where
    if "paths" in want:
        assert outcome.covered_paths == sorted(want["paths"]), where
    if "pinned" in want:
        assert [r.step_id for r in outcome.records if r.pinned] == want["pinned"], where
    for step_id, exchanges in want.get("exchanges", {}).items():
        got = [e for r in outcome.records if r.step_id == step_id for e in r.exchanges]
        assert first_mismatch(exchanges, got) is None, (where, got)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
async def test_golden_suite(path: Path, registry: Registry) -> None:
    case = yaml.safe_load(path.read_text())
    integration = Integration.model_validate(case["integration"])
    report = await run_suite(integration, registry)
    expect = case["expect"]
    assert [o.test for o in report.outcomes] == [t["test"] for t in expect["tests"]]
    for outcome, want in zip(report.outcomes, expect["tests"], strict=True):
        check_outcome(outcome, want)
    assert report.passed is all(t.get("passed", "failure" not in t) for t in expect["tests"])
    coverage = {c.flow_id: c for c in report.coverage}
    for flow_id, want in expect.get("coverage", {}).items():
        got = coverage[flow_id]
        assert (got.covered, got.total) == (want["covered"], want["total"]), flow_id
        assert got.uncovered() == want["uncovered"], flow_id
        data = got.to_json()
        steps = {s["step"]: s["covered_by"] for s in data["steps"]}
        paths = {f"{p['step']}:{p['port']}": p["covered_by"] for p in data["paths"]}
        assert first_mismatch(want.get("steps", {}), steps) is None, steps
        assert first_mismatch(want.get("paths", {}), paths) is None, paths


def test_suites_round_trip_through_export_and_the_stored_graph() -> None:
    path = Path(__file__).parent.parent / "examples" / "crm-acme.yaml"
    integration = load_integration(path)
    assert sum(len(f.tests) for f in integration.flows) == 9
    assert integration.testing.config["crm_url"] == "http://127.0.0.1:8091"
    assert parse_integration(dump_integration(integration), "again.yaml") == integration
    for flow in integration.flows:
        assert flow_from_node_link(flow_to_node_link(flow)) == flow
    # An expectation of null is kept (it is not the absence of one).
    case = yaml.safe_load((SUITES / "pinned.yaml").read_text())["integration"]
    case["flows"][0]["tests"][0]["expect"]["steps"]["price"] = {"output": None}
    again = parse_integration(dump_integration(Integration.model_validate(case)), "p.yaml")
    expectation = again.flows[0].tests[0].expect.steps["price"]
    assert "output" in expectation.model_fields_set


def test_a_test_naming_an_unknown_step_is_a_validation_error_naming_flow_and_test(
    registry: Registry,
) -> None:
    case = yaml.safe_load((SUITES / "pinned.yaml").read_text())["integration"]
    case["flows"][0]["tests"][1]["pinned"]["fetc"] = {"output": 1}
    integration = parse_integration(yaml.safe_dump(case), "pins.yaml")  # still readable
    issues = validate_flow(integration.flows[0], registry, integration)
    assert [(i.code, i.severity, str(i)) for i in issues if i.severity == "error"] == [
        (
            "test_unknown_step",
            "error",
            "tests[1] (a pinned branch port is taken) > pinned: there is no step 'fetc' in flow "
            "'main'. Its steps: trigger, fetch, check, each, price, cheap. Update or remove the "
            "test.",
        )
    ]
