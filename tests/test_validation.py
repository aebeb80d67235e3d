"""Validation names the step and the fix for every kind of problem, and blocks the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from components.api import Inputs, TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.errors import FlowValidationError, Issue
from runtime.http import make_http_client
from runtime.input_problems import input_problems
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


def test_an_unconnected_branch_port_is_no_problem(registry: Registry) -> None:
    """A branch port without an edge means "do nothing on that path": nothing to warn about."""
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
    assert validate_flow(f, registry) == []


def test_a_loop_without_a_body_is_a_warning_but_its_done_port_may_stay_open(
    registry: Registry,
) -> None:
    each = {"id": "each", "name": "Each", "action": "loop.items", "inputs": {"items": [1]}}
    with_body = flow([each, echo("inner")], [("trigger", "each"), ("each", "inner", "body")])
    assert validate_flow(with_body, registry) == []
    without = flow([each, echo("after")], [("trigger", "each"), ("each", "after", "done")])
    issues = validate_flow(without, registry)
    assert [(i.severity, i.code, i.step) for i in issues] == [
        ("warning", "unconnected_port", "each")
    ]
    assert issues[0].message == (
        "Step 'Each' has no edge on port 'body': the loop repeats nothing."
    )


def test_other_warnings_stay(registry: Registry) -> None:
    f = flow([echo("lonely", "Lonely")], [])
    issues = validate_flow(f, registry)
    assert [(i.severity, i.code) for i in issues] == [("warning", "unreachable")]


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


# --- literal inputs against the action's inputs model --------------------------------------------


def webhook_flow(inputs: dict[str, Any], name: str = "Receive") -> Flow:
    return Flow.model_validate(
        {
            "id": "main",
            "trigger": {
                "id": "trigger",
                "name": name,
                "action": "webhook.webhook",
                "inputs": inputs,
            },
        }
    )


def invalid_inputs(issues: list[Issue]) -> dict[str, Issue]:
    """The `invalid_input` issues by the quoted input they name."""
    found: dict[str, Issue] = {}
    for issue in errors(issues, "invalid_input"):
        field = issue.message.split(" input '", 1)[1].split("'", 1)[0]
        assert field not in found, issues
        found[field] = issue
    return found


def test_literal_inputs_are_checked_and_named_in_words(registry: Registry) -> None:
    fetch = {
        "id": "fetch",
        "name": "Fetch order",
        "action": "http.request",
        "inputs": {"method": "FETCH", "url": 42, "timeout": "soon", "follow_redirects": "maybe"},
    }
    found = invalid_inputs(validate_flow(flow([fetch], [("trigger", "fetch")]), registry))
    assert set(found) == {"method", "url", "timeout", "follow_redirects"}
    assert all(i.step == "fetch" for i in found.values())
    assert found["method"].message == (
        "Step 'Fetch order' input 'method': 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE, "
        "HEAD, OPTIONS."
    )
    assert found["url"].message == "Step 'Fetch order' input 'url': should be text, not 42."
    assert found["timeout"].message == (
        "Step 'Fetch order' input 'timeout': should be a number, not 'soon'."
    )
    assert found["follow_redirects"].message == (
        "Step 'Fetch order' input 'follow_redirects': should be true or false, not 'maybe'."
    )
    for issue in found.values():
        assert "Input should" not in issue.message and "type=" not in issue.message
        assert issue.hint


def test_validators_and_bounds_speak_for_themselves(registry: Registry) -> None:
    fetch = {
        "id": "fetch",
        "name": "Fetch",
        "action": "http.request",
        "inputs": {"url": "ftp://files.example.com/x", "timeout": 0},
    }
    found = invalid_inputs(validate_flow(flow([fetch], [("trigger", "fetch")]), registry))
    assert found["url"].message == (
        "Step 'Fetch' input 'url': 'ftp://files.example.com/x' is not an absolute http(s) URL; "
        "write it like 'https://api.example.com/path'."
    )
    assert found["timeout"].message == "Step 'Fetch' input 'timeout': must be greater than 0."


def test_templates_are_checked_when_they_run_not_before(registry: Registry) -> None:
    fetch = {
        "id": "fetch",
        "action": "http.request",
        "inputs": {
            "method": "{{ trigger.body.method }}",
            "url": "https://shop.example.com/orders/{{ trigger.body.id }}",
            "timeout": "{{ trigger.body.seconds }}",
            "headers": {"X-Order": "{{ trigger.body.id }}"},
        },
    }
    assert validate_flow(flow([fetch], [("trigger", "fetch")]), registry) == []


def test_a_template_does_not_hide_the_literal_fields_beside_it(registry: Registry) -> None:
    f = webhook_flow(
        {
            "signature": {"scheme": "hmac_sha512", "secret": "{{ config.secret }}"},
            "methods": ["POST", "{{ config.method }}", "FETCH"],
        }
    )
    found = invalid_inputs(validate_flow(f, registry))
    assert set(found) == {"signature.scheme", "methods[2]"}
    assert found["signature.scheme"].message == (
        "Trigger 'Receive' input 'signature.scheme': 'hmac_sha512' is not one of none, "
        "github, stripe, slack, shopify, standard_webhooks, hmac, hmac_sha256."
    )
    assert found["methods[2]"].step == "trigger"


def test_trigger_settings_are_checked_like_step_inputs(registry: Registry) -> None:
    f = webhook_flow(
        {
            "signature": {"scheme": "standard_webhooks", "secret": "whsec_not base64!", "schem": 1},
            "max_body_bytes": "1 MB",
        }
    )
    found = invalid_inputs(validate_flow(f, registry))
    assert set(found) == {"signature.secret", "signature.schem", "max_body_bytes"}
    assert found["signature.secret"].message.startswith(
        "Trigger 'Receive' input 'signature.secret': The Standard Webhooks secret is not valid "
        "base64."
    )
    assert "whsec_not" not in found["signature.secret"].message  # a secret is never echoed
    assert found["signature.schem"].message == (
        "Trigger 'Receive' input 'signature.schem': there is no such setting; did you mean "
        "'scheme'? Allowed: scheme, header, prefix, algorithm, encoding, signed_content, "
        "timestamp_header, secret, tolerance_seconds."
    )
    assert found["max_body_bytes"].message == (
        "Trigger 'Receive' input 'max_body_bytes': should be a whole number, not '1 MB'."
    )


def test_a_bad_cron_expression_is_a_validation_error(registry: Registry) -> None:
    f = Flow.model_validate(
        {
            "id": "main",
            "trigger": {
                "id": "tick",
                "name": "Every day",
                "action": "schedule.cron",
                "inputs": {"cron": "daily at 9", "timezone": "Mars/Olympus"},
            },
        }
    )
    found = invalid_inputs(validate_flow(f, registry))
    assert found["cron"].message.startswith(
        "Trigger 'Every day' input 'cron': 'daily at 9' has 3 fields, not 5."
    )
    assert found["timezone"].message.startswith(
        "Trigger 'Every day' input 'timezone': Unknown time zone 'Mars/Olympus'."
    )


def test_unknown_and_missing_inputs_are_reported_once(registry: Registry) -> None:
    f = flow(
        [{"id": "a", "name": "Boom", "action": "testkit.fail", "inputs": {"mesage": "x"}}],
        [("trigger", "a")],
    )
    issues = validate_flow(f, registry)
    assert sorted(i.code for i in issues) == ["missing_input", "unknown_input"]


async def test_an_invalid_literal_input_refuses_the_run(registry: Registry) -> None:
    fetch = {"id": "fetch", "name": "Fetch", "action": "http.request", "inputs": {"url": 42}}
    async with make_http_client() as http:
        with pytest.raises(FlowValidationError) as info:
            await run_flow(
                flow([fetch], [("trigger", "fetch")]),
                TriggerEvent(),
                RunContext(registry=registry, http=http),
            )
    assert "Step 'Fetch' input 'url': should be text, not 42." in str(info.value)


def test_input_problems_name_nested_fields_merge_unions_and_hide_secrets() -> None:
    class Case(Inputs):
        port: str
        equals: int | str | None = None

    class Settings(Inputs):
        cases: list[Case] = []
        size: int | list[int] = 1
        token: SecretStr | None = None

    inputs = {
        "cases": [{"port": 1}, {"port": "{{ x }}", "equals": [1]}, {"equals": 2}],
        "size": "big",
        "token": 12345,
    }
    found = {p.field: p.message for p in input_problems(Settings, inputs)}
    assert found == {
        "cases[0].port": "should be text, not 1.",
        "cases[1].equals": "should be a whole number or text, not a list.",
        "cases[2].port": "is required; give it a value.",
        "size": "should be a whole number or a list, not 'big'.",
        "token": "should be text, not a number.",
    }
