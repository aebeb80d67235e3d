"""The step inspector, driven by NiceGUI's simulated user (no browser, no Hub).

Each test mounts an `Inspector` on a throwaway page and checks what a user sees and what reaches
`on_change`: forms drawn from input schemas, per-field errors that hold invalid values back,
template previews and the reference picker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_simulation import user_simulation

from components.builtin.branch import BranchExpression, BranchValue
from components.builtin.http import HttpRequest
from components.builtin.loop import LoopItems
from components.builtin.webhook import WebhookTrigger
from components.registry import default_registry
from designer.inspector import (
    UNSET,
    ActionClass,
    Inspector,
    ParseError,
    field_specs,
    format_loose,
    parse_loose,
)
from designer.references import ReferenceSource, build_scope
from runtime.model import ConfigVariable, ConnectionSlot, Flow, Integration, Step

PAGE = "/inspector-test"
SCOPE = build_scope(
    {
        "body": {"id": 42, "customer": {"name": "Ada"}, "lines": [{"sku": "A-1", "qty": 2}]},
        "headers": {"content-type": "application/json"},
        "query": {},
    },
    {"fetch": {"status": 200, "body": {"total": 99.5}}, "later": {"x": 1}},
    config={"base_url": "https://api.example.com"},
)
SOURCE = ReferenceSource(scope=SCOPE, upstream=["fetch"], origin="sample payload")
CONNECTIONS = [
    ConnectionSlot(key="crm", type="bearer"),
    ConnectionSlot(key="erp", type="basic"),
]
CONFIG = [
    ConfigVariable(key="base_url"),
    ConfigVariable(key="api_token", type="secret", default="s3cret-value"),
]


@pytest.fixture
async def user(caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """NiceGUI's simulated user on an empty app: the inspector needs no Hub or pages."""
    async with user_simulation() as simulated:
        yield simulated
    errors = [r for r in caplog.get_records("call") if r.levelname == "ERROR"]
    assert not errors, [r.getMessage() for r in errors]


@dataclass
class Mounted:
    """The inspector on the test page and every step it reported."""

    changes: list[Step] = field(default_factory=list)
    inspector: Inspector | None = None

    @property
    def last(self) -> Step:
        assert self.changes, "on_change was never called"
        return self.changes[-1]

    @property
    def panel(self) -> Inspector:
        assert self.inspector is not None
        return self.inspector


async def mount(
    user: User,
    step: Step,
    action: ActionClass | None,
    *,
    references: ReferenceSource = SOURCE,
    connections: Sequence[ConnectionSlot] = CONNECTIONS,
    config: Sequence[ConfigVariable] = CONFIG,
) -> Mounted:
    mounted = Mounted()

    @ui.page(PAGE)
    def page() -> None:
        mounted.inspector = Inspector(
            step,
            action,
            on_change=mounted.changes.append,
            config=config,
            connections=connections,
            references=references,
        )

    await user.open(PAGE)
    return mounted


def element(user: User, marker: str) -> Any:
    """The one element with this marker."""
    found = user.find(marker=marker).elements
    assert len(found) == 1, f"{len(found)} elements marked {marker}"
    return next(iter(found))


def choose(user: User, marker: str, value: Any) -> None:
    """Pick `value` in a select, as the user's choice arrives from the browser."""
    select = element(user, marker)
    assert value in select._values, f"{value!r} not among {select._values}"
    with user:
        select.value = value


def retype(user: User, marker: str, value: str | float) -> None:
    """Replace a field's content in one edit, as selecting all and typing over it does."""
    target = element(user, marker)
    with user:
        target.value = value


def http_step(**inputs: Any) -> Step:
    return Step(id="call", name="Call API", action="http.request", inputs=inputs)


# --- forms from schemas ------------------------------------------------------------------------


async def test_http_request_form_is_drawn_from_its_schema(user: User) -> None:
    await mount(user, http_step(url="https://x.io"), HttpRequest)
    method = element(user, "inspector-input-method")
    assert isinstance(method, ui.select)
    assert method._values == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    assert method.value == "GET"  # the schema default
    assert element(user, "inspector-input-url").value == "https://x.io"
    assert isinstance(element(user, "inspector-input-body"), ui.textarea)  # Any: JSON editor
    assert isinstance(element(user, "inspector-input-timeout"), ui.number)
    assert isinstance(element(user, "inspector-input-follow_redirects"), ui.switch)
    await user.should_see("URL *")  # required marker
    await user.should_see("Absolute http or https URL")  # the description as a hint
    await user.should_see(marker="inspector-add-headers")  # key-value list
    await user.should_see(marker="ref-button-url")
    await user.should_see(marker="inspector-step-name")
    await user.should_see(marker="inspector-step-retry")


async def test_enum_select_and_url_edits_reach_on_change(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    choose(user, "inspector-input-method", "POST")
    assert mounted.last.inputs == {"url": "https://x.io", "method": "POST"}
    retype(user, "inspector-input-url", "https://api.example.com/orders")
    assert mounted.last.inputs["url"] == "https://api.example.com/orders"
    assert mounted.last.id == "call" and mounted.last.name == "Call API"


async def test_headers_key_value_rows(user: User) -> None:
    mounted = await mount(
        user, http_step(url="https://x.io", headers={"Accept": "text/csv"}), HttpRequest
    )
    assert element(user, "inspector-input-headers.0.key").value == "Accept"
    user.find(marker="inspector-add-headers").click()
    user.find(marker="inspector-input-headers.1.key").type("X-Tenant")
    user.find(marker="inspector-input-headers.1.value").type("acme")
    assert mounted.last.inputs["headers"] == {"Accept": "text/csv", "X-Tenant": "acme"}

    user.find(marker="inspector-input-headers.1.key").clear().type("Accept")
    await user.should_see("The name 'Accept' is used twice.")
    assert mounted.last.inputs["headers"] == {"Accept": "text/csv", "X-Tenant": "acme"}

    user.find(marker="inspector-remove-headers.1").click()
    await user.should_not_see("is used twice")
    assert mounted.last.inputs["headers"] == {"Accept": "text/csv"}


async def test_invalid_header_name_shows_the_pydantic_error_and_is_not_propagated(
    user: User,
) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    user.find(marker="inspector-add-headers").click()
    user.find(marker="inspector-input-headers.0.key").type("Bad Header")
    user.find(marker="inspector-input-headers.0.value").type("x")
    await user.should_see("'Bad Header' is not a valid header name")
    assert mounted.changes == []
    assert "headers" in mounted.panel.errors


async def test_body_json_editor_parses_and_reports_errors(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io", body_type="json"), HttpRequest)
    user.find(marker="inspector-input-body").type('{"name": "{{ trigger.body.customer.name }}"}')
    assert mounted.last.inputs["body"] == {"name": "{{ trigger.body.customer.name }}"}
    await user.should_see('= {"name": "Ada"}')  # the preview resolves the template inside

    count = len(mounted.changes)
    retype(user, "inspector-input-body", '{"name": }')
    await user.should_see("Not valid JSON: Expecting value (line 1, column 10)")
    assert len(mounted.changes) == count
    assert not mounted.panel.valid


async def test_number_field_accepts_valid_values_and_shows_range_errors(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    retype(user, "inspector-input-timeout", 12)
    assert mounted.last.inputs["timeout"] == 12
    count = len(mounted.changes)
    retype(user, "inspector-input-timeout", 601)
    await user.should_see("Input should be less than or equal to 600.")
    assert len(mounted.changes) == count  # the invalid value is not propagated
    assert mounted.panel.errors == {"timeout": ["Input should be less than or equal to 600."]}
    retype(user, "inspector-input-timeout", 60)
    await user.should_not_see("less than or equal")
    assert mounted.last.inputs["timeout"] == 60


async def test_number_field_switches_to_an_expression(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    user.find(marker="inspector-mode-timeout").click()
    timeout = element(user, "inspector-input-timeout")
    assert isinstance(timeout, ui.input) and not isinstance(timeout, ui.number)
    timeout.value = "5"  # fixed text in expression mode is refused
    await user.should_see("Write the expression between {{ and }}")
    assert mounted.changes == []
    retype(user, "inspector-input-timeout", "{{ trigger.body.id / 2 }}")
    assert mounted.last.inputs["timeout"] == "{{ trigger.body.id / 2 }}"
    await user.should_see("= 21")
    user.find(marker="inspector-mode-timeout").click()  # back to a fixed number
    assert isinstance(element(user, "inspector-input-timeout"), ui.number)
    assert "timeout" not in mounted.last.inputs


async def test_template_in_a_typed_field_opens_in_expression_mode(user: User) -> None:
    await mount(user, http_step(url="https://x.io", timeout="{{ config.base_url }}"), HttpRequest)
    timeout = element(user, "inspector-input-timeout")
    assert not isinstance(timeout, ui.number)
    assert timeout.value == "{{ config.base_url }}"


async def test_boolean_switch(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    user.find(marker="inspector-input-follow_redirects").click()
    assert mounted.last.inputs["follow_redirects"] is False


async def test_connection_picker_lists_the_integration_slots(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    picker = element(user, "inspector-input-connection")
    assert picker.options == {"crm": "crm (bearer)", "erp": "erp (basic)"}
    choose(user, "inspector-input-connection", "erp")
    assert mounted.last.inputs["connection"] == "erp"
    with user:
        picker.value = None  # cleared: no authentication
    assert "connection" not in mounted.last.inputs


async def test_connection_picker_keeps_a_missing_slot_visible(user: User) -> None:
    await mount(user, http_step(url="https://x.io", connection="gone"), HttpRequest, connections=[])
    picker = element(user, "inspector-input-connection")
    assert picker.value == "gone"
    assert picker.options["gone"] == "gone (not available)"
    await user.should_see("This integration has no connections yet")


async def test_required_input_left_empty_is_marked_but_does_not_block(user: User) -> None:
    mounted = await mount(user, http_step(), HttpRequest)
    await user.should_see("Required.")
    choose(user, "inspector-input-method", "DELETE")
    assert mounted.last.inputs == {"method": "DELETE"}


# --- templates and references ------------------------------------------------------------------


async def test_template_input_shows_a_live_preview(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    retype(user, "inspector-input-url", "https://x.io/orders/{{ trigger.body.id }}")
    assert element(user, "preview-url").text == '= "https://x.io/orders/42"'
    assert mounted.last.inputs["url"] == "https://x.io/orders/{{ trigger.body.id }}"
    retype(user, "inspector-input-url", "{{ steps.fetch.output.body.total * 2 }}")
    assert element(user, "preview-url").text == "= 199"
    retype(user, "inspector-input-url", "{{ trigger.body.nothing }}")
    shown = element(user, "preview-url").text
    assert shown.startswith("= null\n⚠ Nothing at trigger.body.nothing in the sample payload")


async def test_template_that_does_not_compile_is_an_error_and_not_propagated(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    retype(user, "inspector-input-url", "https://x.io/{{ trigger.( }}")
    await user.should_see("does not compile")
    assert mounted.changes == []
    assert mounted.panel.errors["url"][0].startswith('Expression "trigger.(" does not compile')


async def test_preview_warns_about_a_step_that_does_not_run_before(user: User) -> None:
    await mount(user, http_step(url="{{ steps.later.output.x }}"), HttpRequest)
    assert "steps.later, which does not run before this step" in element(user, "preview-url").text


async def test_reference_picker_inserts_into_text(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io/orders/"), HttpRequest)
    user.find(marker="ref-button-url").click()
    await user.should_see(marker="ref-item-trigger.body.customer.name")
    await user.should_see(marker="ref-item-steps.fetch.output.body.total")
    await user.should_see(marker="ref-item-config.base_url")
    await user.should_see(marker="ref-item-trigger.headers.`content-type`")
    await user.should_not_see(marker="ref-item-steps.later.output")  # not upstream
    user.find(marker="ref-item-trigger.body.id").click()
    assert element(user, "inspector-input-url").value == "https://x.io/orders/{{ trigger.body.id }}"
    assert mounted.last.inputs["url"] == "https://x.io/orders/{{ trigger.body.id }}"
    assert element(user, "preview-url").text == '= "https://x.io/orders/42"'
    await user.should_not_see(marker="ref-item-trigger.body.id")  # the menu closed


async def test_reference_picker_inserts_at_the_caret(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io/orders"), HttpRequest)
    url = element(user, "inspector-input-url")
    user.find(marker="inspector-input-url").trigger("blur", 12)  # the caret after ".../"
    user.find(marker="ref-button-url").click()
    user.find(marker="ref-item-trigger.body.id").click()
    assert url.value == "https://x.io{{ trigger.body.id }}/orders"
    assert mounted.last.inputs["url"] == url.value


async def test_reference_picker_filters(user: User) -> None:
    await mount(user, http_step(url="https://x.io"), HttpRequest)
    user.find(marker="ref-button-url").click()
    user.find(marker="ref-filter-url").type("sku")
    await user.should_see(marker="ref-item-trigger.body.lines[0].sku")
    await user.should_not_see(marker="ref-item-trigger.body.id")


async def test_reference_into_a_typed_field_switches_it_to_an_expression(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    user.find(marker="ref-button-follow_redirects").click()
    user.find(marker="ref-item-trigger.body.id").click()
    assert mounted.last.inputs["follow_redirects"] == "{{ trigger.body.id }}"
    assert element(user, "inspector-input-follow_redirects").value == "{{ trigger.body.id }}"
    assert element(user, "preview-follow_redirects").text == "= 42"


async def test_reference_replaces_a_number_in_a_json_field(user: User) -> None:
    step = Step(id="route", action="branch.value", inputs={"value": 5})
    mounted = await mount(user, step, BranchValue)
    user.find(marker="ref-button-value").click()
    user.find(marker="ref-item-trigger.body.customer.name").click()
    assert mounted.last.inputs["value"] == "{{ trigger.body.customer.name }}"
    assert element(user, "preview-value").text == '= "Ada"'


async def test_secret_config_values_are_masked_in_menu_and_preview(user: User) -> None:
    await mount(user, http_step(url="https://x.io/{{ config.api_token }}"), HttpRequest)
    assert element(user, "preview-url").text == '= "https://x.io/***"'
    user.find(marker="ref-button-url").click()
    item = element(user, "ref-item-config.api_token")
    assert "s3cret" not in str(item)
    await user.should_not_see("s3cret-value")


# --- composite inputs --------------------------------------------------------------------------


def branch_step() -> Step:
    condition = {"left": "{{ trigger.body.id }}", "operator": ">", "right": 40}
    return Step(
        id="check", action="branch.expression", inputs={"groups": [{"conditions": [condition]}]}
    )


async def test_branch_condition_builder(user: User) -> None:
    mounted = await mount(user, branch_step(), BranchExpression)
    assert element(user, "inspector-input-groups.0.conditions.0.right").value == "40"
    assert element(user, "preview-groups.0.conditions.0.left").text == "= 42"

    user.find(marker="inspector-add-groups.0.conditions").click()
    user.find(marker="inspector-input-groups.0.conditions.1.left").type(
        "{{ trigger.body.customer.name }}"
    )
    choose(user, "inspector-input-groups.0.conditions.1.operator", "starts with")
    user.find(marker="inspector-input-groups.0.conditions.1.right").type("A")
    choose(user, "inspector-input-groups.0.match", "any")
    assert mounted.last.inputs == {
        "groups": [
            {
                "match": "any",
                "conditions": [
                    {"left": "{{ trigger.body.id }}", "operator": ">", "right": 40},
                    {
                        "left": "{{ trigger.body.customer.name }}",
                        "operator": "starts with",
                        "right": "A",
                    },
                ],
            }
        ]
    }
    await user.should_see("or")  # the conditions of an `any` group are joined by "or"

    choose(user, "inspector-input-groups.0.conditions.1.operator", "exists")
    await user.should_not_see(marker="inspector-input-groups.0.conditions.1.right")

    user.find(marker="inspector-add-groups").click()
    await user.should_see(marker="inspector-input-groups.1.conditions.0.left")
    user.find(marker="inspector-remove-groups.1").click()
    await user.should_not_see(marker="inspector-input-groups.1.conditions.0.left")
    assert len(mounted.last.inputs["groups"]) == 1


async def test_branch_without_groups_is_an_error(user: User) -> None:
    mounted = await mount(user, branch_step(), BranchExpression)
    user.find(marker="inspector-remove-groups.0").click()
    await user.should_see("List should have at least 1 item")
    assert mounted.changes == []


async def test_value_branch_cases_are_repeated_sub_forms(user: User) -> None:
    step = Step(id="route", action="branch.value", inputs={"value": "{{ trigger.body.id }}"})
    mounted = await mount(user, step, BranchValue)
    user.find(marker="inspector-add-cases").click()
    await user.should_see("Required.")  # the new case's port
    assert mounted.changes == []
    user.find(marker="inspector-input-cases.0.port").type("big")
    user.find(marker="inspector-input-cases.0.equals").type("42")
    assert mounted.last.inputs["cases"] == [{"port": "big", "equals": 42}]
    user.find(marker="inspector-add-cases").click()
    user.find(marker="inspector-input-cases.1.port").type("else")
    await user.should_see("A case cannot use the port name 'else'; it is built in.")
    assert mounted.last.inputs["cases"] == [{"port": "big", "equals": 42}]


async def test_webhook_secret_is_masked_and_the_model_check_holds_back(user: User) -> None:
    step = Step(id="hook", action="webhook.webhook", inputs={})
    mounted = await mount(user, step, WebhookTrigger)
    await user.should_see(marker="inspector-input-signature.scheme")
    await user.should_not_see(marker="inspector-step-retry")  # triggers have no error handling
    # Unsigned: no secret to ask for, none of the HMAC settings.
    for hidden in ("secret", "header", "algorithm", "tolerance_seconds"):
        await user.should_not_see(marker=f"inspector-input-signature.{hidden}")
    choose(user, "inspector-input-signature.scheme", "hmac_sha256")
    await user.should_see(
        "Signature scheme 'hmac_sha256' needs a secret; set one or choose 'none'."
    )
    secret = element(user, "inspector-input-signature.secret")
    assert secret.props["type"] == "password"
    await user.should_see(marker="inspector-input-signature.header")
    await user.should_not_see(marker="inspector-input-signature.algorithm")  # SHA-256 and hex
    assert mounted.changes == []
    user.find(marker="inspector-input-signature.secret").type("topsecret")
    assert mounted.last.inputs["signature"] == {"scheme": "hmac_sha256", "secret": "topsecret"}
    choose(user, "inspector-input-signature.scheme", "slack")  # the schemes come from the schema
    assert mounted.last.inputs["signature"] == {"scheme": "slack", "secret": "topsecret"}
    await user.should_not_see(marker="inspector-input-signature.header")  # Slack's own header
    await user.should_see(marker="inspector-input-signature.tolerance_seconds")
    await user.should_see(marker="inspector-input-signature.secret")
    methods = element(user, "inspector-input-methods")
    assert methods.value == ["POST"]  # a list of enum values: a multi-select
    with user:
        methods.value = ["POST", "PUT"]
    assert mounted.last.inputs["methods"] == ["POST", "PUT"]


async def test_loop_items_and_integer(user: User) -> None:
    step = Step(id="each", action="loop.items", inputs={"items": "{{ trigger.body.lines }}"})
    mounted = await mount(user, step, LoopItems)
    assert element(user, "preview-items").text == '= [{"sku": "A-1", "qty": 2}]'
    retype(user, "inspector-input-concurrency", 2.5)
    await user.should_see("Must be a whole number.")
    assert mounted.changes == []
    retype(user, "inspector-input-concurrency", 4)
    assert mounted.last.inputs["concurrency"] == 4


# --- step settings, show() and echo ------------------------------------------------------------


async def test_step_settings(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    retype(user, "inspector-step-name", "Create order")
    assert mounted.last.name == "Create order"
    choose(user, "inspector-step-on_error", "continue")
    assert mounted.last.on_error == "continue"
    user.find(marker="inspector-enable-step.retry").click()
    assert mounted.last.retry is not None and mounted.last.retry.max_attempts == 3
    retype(user, "inspector-step-retry.max_attempts", 5)
    choose(user, "inspector-step-retry.backoff", "fixed")
    assert mounted.last.retry is not None
    assert (mounted.last.retry.max_attempts, mounted.last.retry.backoff) == (5, "fixed")
    retype(user, "inspector-step-retry.max_attempts", 0)
    await user.should_see("Input should be greater than or equal to 1.")
    assert mounted.last.retry.max_attempts == 5
    retype(user, "inspector-step-retry.max_attempts", 2)
    retype(user, "inspector-step-timeout", 9)
    assert mounted.last.timeout == 9
    user.find(marker="inspector-step-timeout").clear()
    assert mounted.last.timeout is None
    user.find(marker="inspector-step-notes").type("Calls the ERP.")
    assert mounted.last.notes == "Calls the ERP."
    user.find(marker="inspector-enable-step.retry").click()
    assert mounted.last.retry is None
    assert mounted.last.inputs == {"url": "https://x.io"}


async def test_show_does_not_call_on_change_and_echo_keeps_the_form(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    retype(user, "inspector-input-url", "https://a.io")
    assert len(mounted.changes) == 1
    url = element(user, "inspector-input-url")
    mounted.panel.show(mounted.last)  # the editor pushes the saved step back
    assert element(user, "inspector-input-url") is url  # not redrawn: typing goes on
    assert len(mounted.changes) == 1

    other = Step(id="check", action="branch.expression", inputs=branch_step().inputs)
    mounted.panel.show(other, BranchExpression)
    await user.should_see(marker="inspector-input-groups.0.conditions.0.left")
    await user.should_not_see(marker="inspector-input-url")
    assert len(mounted.changes) == 1

    undone = http_step(url="https://b.io")  # e.g. undo: same id, other inputs
    mounted.panel.show(undone, HttpRequest)
    assert element(user, "inspector-input-url").value == "https://b.io"
    assert len(mounted.changes) == 1
    mounted.panel.show(None)
    await user.should_see("Select a step on the canvas")
    assert len(mounted.changes) == 1


async def test_pending_invalid_value_survives_an_echo(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io"), HttpRequest)
    retype(user, "inspector-input-timeout", 0)
    await user.should_see("Input should be greater than 0.")
    mounted.panel.show(http_step(url="https://x.io"))  # the step as saved, unchanged
    await user.should_see("Input should be greater than 0.")
    assert mounted.changes == []


async def test_unknown_input_can_be_removed(user: User) -> None:
    mounted = await mount(user, http_step(url="https://x.io", colour="red"), HttpRequest)
    await user.should_see("colour: 'colour' is not an input of this action.")
    choose(user, "inspector-input-method", "PUT")
    assert mounted.changes == []  # held back until the unknown input is gone
    user.find(marker="inspector-remove-unknown-colour").click()
    assert mounted.last.inputs == {"url": "https://x.io", "method": "PUT"}


async def test_unknown_action_still_edits_the_name(user: User) -> None:
    mounted = await mount(user, Step(id="x", action="acme.nope"), None)
    await user.should_see("Unknown action 'acme.nope'")
    user.find(marker="inspector-step-name").type("Legacy")
    assert mounted.last.name == "Legacy"


async def test_for_step_wires_registry_integration_and_flow(user: User) -> None:
    registry = default_registry()
    flow = Flow.model_validate(
        {
            "id": "sync",
            "trigger": {"id": "hook", "action": "webhook.webhook"},
            "steps": [
                {"id": "fetch", "action": "http.request", "inputs": {"url": "https://x.io"}},
                {
                    "id": "each",
                    "action": "loop.items",
                    "inputs": {"items": "{{ trigger.body.lines }}"},
                },
                {
                    "id": "log",
                    "action": "log.message",
                    "inputs": {"message": "{{ loop.item.sku }}"},
                },
            ],
            "edges": [
                {"from": "hook", "to": "fetch"},
                {"from": "fetch", "to": "each"},
                {"from": "each", "to": "log", "port": "body"},
            ],
        }
    )
    integration = Integration(name="Demo", config=CONFIG, connections=CONNECTIONS, flows=[flow])
    changes: list[Step] = []

    @ui.page(PAGE)
    def page() -> None:
        Inspector.for_step(
            flow.steps[2],
            registry,
            integration=integration,
            flow=flow,
            scope=SCOPE,
            on_change=changes.append,
        )

    await user.open(PAGE)
    assert element(user, "preview-message").text == '= "A-1"'
    user.find(marker="ref-button-message").click()
    await user.should_see(marker="ref-item-loop.item.qty")
    await user.should_see(marker="ref-item-steps.fetch.output.body.total")
    await user.should_not_see(marker="ref-item-steps.each.output")  # the enclosing loop
    user.find(marker="ref-item-loop.index").click()
    assert changes[-1].inputs["message"] == "{{ loop.item.sku }}{{ loop.index }}"


async def test_async_on_change_is_awaited(user: User) -> None:
    seen: list[Step] = []

    async def save(step: Step) -> None:
        seen.append(step)

    @ui.page(PAGE)
    def page() -> None:
        Inspector(http_step(url="https://x.io"), HttpRequest, on_change=save)

    await user.open(PAGE)
    retype(user, "inspector-input-url", "https://async.io")
    await user.should_see(marker="inspector-input-url")
    for _ in range(20):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen and seen[-1].inputs["url"] == "https://async.io"


# --- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", UNSET),
        ("   ", UNSET),
        ("hello world", "hello world"),
        ("42", 42),
        ("-1.5", -1.5),
        ("true", True),
        ("null", None),
        ('"42"', "42"),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("{{ trigger.body }}", "{{ trigger.body }}"),
        ("Order {{ trigger.body.id }}", "Order {{ trigger.body.id }}"),
    ],
)
def test_parse_loose(text: str, value: Any) -> None:
    assert parse_loose(text) == value
    if value not in (UNSET, None):
        assert parse_loose(format_loose(value)) == value  # round-trips


@pytest.mark.parametrize("text", ['{"a": }', "[1, 2", '"open', "NaN", "[NaN]"])
def test_parse_loose_refuses_broken_json(text: str) -> None:
    if text == "NaN":
        assert parse_loose(text) == "NaN"  # bare words are text
        return
    with pytest.raises(ParseError):
        parse_loose(text)


def test_format_loose_quotes_strings_that_would_read_back_differently() -> None:
    assert format_loose("42") == '"42"'
    assert format_loose("true") == '"true"'
    assert format_loose('{"x"') == '"{\\"x\\""'
    assert format_loose("plain") == "plain"
    assert format_loose(None) == ""


def test_field_specs_classify_builtin_inputs() -> None:
    kinds = {s.key: s.kind for s in field_specs(HttpRequest.Inputs)}
    assert kinds == {
        "method": "enum",
        "url": "text",
        "headers": "keyvalue",
        "query": "keyvalue",
        "body_type": "enum",
        "body": "json",
        "connection": "connection",
        "api_key_header": "text",
        "timeout": "number",
        "on_http_error": "enum",
        "follow_redirects": "boolean",
    }
    headers, query = (s for s in field_specs(HttpRequest.Inputs) if s.kind == "keyvalue")
    assert headers.text_values and not query.text_values
    assert headers.default == {}  # from the default factory
    webhook = {s.key: s for s in field_specs(WebhookTrigger.Inputs)}
    assert webhook["methods"].kind == "multienum"
    assert webhook["delivery_id_header"].nullable
    signature = {s.key: s for s in webhook["signature"].fields}
    assert webhook["signature"].kind == "object"
    assert signature["secret"].kind == "secret" and signature["secret"].nullable
    assert signature["scheme"].kind == "enum"
    assert list(signature["scheme"].options) == [
        "none",
        "github",
        "stripe",
        "slack",
        "shopify",
        "standard_webhooks",
        "hmac",
        "hmac_sha256",
    ]
    assert list(signature["algorithm"].options) == ["sha256", "sha512", "sha1"]
    assert list(signature["encoding"].options) == ["hex", "base64"]
    assert signature["timestamp_header"].nullable
    groups = next(s for s in field_specs(BranchExpression.Inputs) if s.key == "groups")
    assert groups.kind == "conditions" and groups.required
    assert [f.key for f in groups.fields] == ["match", "conditions"]
    assert "matches" in groups.fields[1].fields[1].options
