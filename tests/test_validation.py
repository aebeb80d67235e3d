"""Validation names the step and the fix for every kind of problem, and blocks the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.api import TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.errors import FlowValidationError, Issue
from runtime.http import make_http_client
from runtime.model import Flow, Integration
from runtime.validation import validate_flow, validate_integration

GOLDEN_COMPONENTS = Path(__file__).parent / "golden" / "components"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry(GOLDEN_COMPONENTS)


def flow(steps: list[dict[str, Any]], edges: list[tuple[str, str] | tuple[str, str, str]]) -> Flow:
    return Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": steps,
            "edges": [
                {"from": e[0], "to": e[1], "port": e[2] if len(e) > 2 else "out"} for e in edges
            ],
        }
    )


def echo(step_id: str, name: str = "", **inputs: Any) -> dict[str, Any]:
    return {"id": step_id, "name": name, "action": "testkit.echo", "inputs": inputs}


def errors(issues: list[Issue], code: str) -> list[Issue]:
    found = [i for i in issues if i.code == code and i.severity == "error"]
    assert found, f"no {code} in {issues}"
    return found


def test_valid_flow_has_no_issues(registry: Registry) -> None:
    f = flow([echo("a"), echo("b", value="{{ steps.a.output }}")], [("trigger", "a"), ("a", "b")])
    assert validate_flow(f, registry) == []


def test_cycle_names_the_steps(registry: Registry) -> None:
    f = flow(
        [echo("a", "Fetch"), echo("b", "Store")],
        [("trigger", "a"), ("a", "b"), ("b", "a")],
    )
    (issue,) = errors(validate_flow(f, registry), "cycle")
    assert "'Fetch'" in issue.message and "'Store'" in issue.message
    assert issue.step in ("a", "b")
    assert "loop step" in issue.hint


def test_dangling_edge(registry: Registry) -> None:
    f = flow([echo("a", "Fetch")], [("trigger", "a"), ("a", "ghost")])
    (issue,) = errors(validate_flow(f, registry), "dangling_edge")
    assert issue.step == "a"
    assert "'ghost'" in issue.message and "not a step" in issue.message


def test_unknown_component(registry: Registry) -> None:
    f = flow([{"id": "a", "name": "Notify", "action": "slack.post"}], [("trigger", "a")])
    (issue,) = errors(validate_flow(f, registry), "unknown_component")
    assert issue.step == "a"
    assert "Step 'Notify' uses 'slack.post'" in issue.message
    assert "component 'slack' is not installed" in issue.message


def test_unknown_action_lists_the_component_actions(registry: Registry) -> None:
    f = flow([{"id": "a", "action": "testkit.nope"}], [("trigger", "a")])
    (issue,) = errors(validate_flow(f, registry), "unknown_component")
    assert "testkit.echo" in issue.message


def test_missing_required_input(registry: Registry) -> None:
    f = flow([{"id": "a", "name": "Boom", "action": "testkit.fail"}], [("trigger", "a")])
    (issue,) = errors(validate_flow(f, registry), "missing_input")
    assert issue.step == "a"
    assert "Step 'Boom' is missing required input 'message' (Message)" in issue.message


def test_unknown_input(registry: Registry) -> None:
    f = flow([echo("a", "Say", valu=1)], [("trigger", "a")])
    (issue,) = errors(validate_flow(f, registry), "unknown_input")
    assert "Step 'Say' has no input 'valu'" in issue.message and "value" in issue.message


def test_reference_to_a_step_that_cannot_have_run(registry: Registry) -> None:
    f = flow(
        [echo("a", "First", value="{{ steps.b.output }}"), echo("b", "Second")],
        [("trigger", "a"), ("a", "b")],
    )
    (issue,) = errors(validate_flow(f, registry), "reference_not_run")
    assert issue.step == "a"
    assert "Step 'First' reads steps.b, but 'Second' cannot have run before it" in issue.message


def test_reference_to_a_parallel_branch_is_refused(registry: Registry) -> None:
    f = flow(
        [echo("a"), echo("b", "Left"), echo("c", "Right", value="{{ steps.b.output }}")],
        [("trigger", "a"), ("a", "b"), ("a", "c")],
    )
    (issue,) = errors(validate_flow(f, registry), "reference_not_run")
    assert issue.step == "c"


def test_reference_to_unknown_step(registry: Registry) -> None:
    f = flow([echo("a", "First", value="{{ steps.nope.output }}")], [("trigger", "a")])
    (issue,) = errors(validate_flow(f, registry), "unknown_reference")
    assert "no step 'nope'" in issue.message


def test_unknown_port(registry: Registry) -> None:
    f = flow([echo("a", "Fetch"), echo("b")], [("trigger", "a"), ("a", "b", "maybe")])
    (issue,) = errors(validate_flow(f, registry), "unknown_port")
    assert issue.step == "a"
    assert "Step 'Fetch' has no port 'maybe' (its ports: out)" in issue.message


def test_edge_into_trigger(registry: Registry) -> None:
    f = flow([echo("a")], [("trigger", "a"), ("a", "trigger")])
    issues = validate_flow(f, registry)
    assert errors(issues, "edge_into_trigger")[0].step == "trigger"


def test_bad_expression(registry: Registry) -> None:
    f = flow([echo("a", "Calc", value="{{ trigger.body. }}")], [("trigger", "a")])
    (issue,) = errors(validate_flow(f, registry), "bad_expression")
    assert issue.message.startswith("Step 'Calc':")


def test_unconnected_branch_port_is_a_warning(registry: Registry) -> None:
    f = flow(
        [
            {
                "id": "route",
                "name": "Route",
                "action": "branch.value",
                "inputs": {"value": 1, "cases": [{"port": "one", "equals": 1}]},
            },
            echo("x"),
        ],
        [("trigger", "route"), ("route", "x", "one")],
    )
    issues = validate_flow(f, registry)
    assert [i.severity for i in issues] == ["warning"]
    assert issues[0].message == "Step 'Route' has no edge on port 'else'."
    assert issues[0].hint == "Connect it or remove the port."


def test_loop_body_must_not_be_entered_from_outside(registry: Registry) -> None:
    f = flow(
        [
            {"id": "each", "name": "Each", "action": "loop.items", "inputs": {"items": [1]}},
            echo("inner", "Inner"),
            echo("other"),
        ],
        [("trigger", "each"), ("each", "inner", "body"), ("trigger", "other"), ("other", "inner")],
    )
    (issue,) = errors(validate_flow(f, registry), "loop_body_entry")
    assert "Step 'Inner' is inside loop 'Each'" in issue.message


def test_config_reference_checked_against_integration(registry: Registry) -> None:
    integration = Integration.model_validate(
        {
            "name": "I",
            "config": [{"key": "base_url"}],
            "flows": [
                {
                    "id": "main",
                    "trigger": {"id": "trigger", "action": "manual.manual"},
                    "steps": [echo("a", "Call", value="{{ config.base_ur }}/x")],
                    "edges": [{"from": "trigger", "to": "a"}],
                }
            ],
        }
    )
    (issue,) = errors(validate_integration(integration, registry), "unknown_config")
    assert issue.message.startswith("Flow 'main': Step 'Call' reads config.base_ur")


async def test_invalid_flow_refuses_to_run_and_missing_component_explains_why(
    registry: Registry,
) -> None:
    f = flow([{"id": "a", "name": "Notify", "action": "slack.post"}], [("trigger", "a")])
    async with make_http_client() as http:
        with pytest.raises(FlowValidationError) as info:
            await run_flow(f, TriggerEvent(), RunContext(registry=registry, http=http))
    assert "component 'slack' is not installed" in str(info.value)
    assert info.value.issues[0].step == "a"
