"""The reference picker's logic: which paths a step can read, previews and insertion (no UI)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from components.registry import default_registry
from designer.references import (
    Reference,
    ReferenceSource,
    build_scope,
    describe,
    insert_reference,
    join_path,
    preview,
    preview_scope,
    reference_paths,
    source_for_step,
    template_error,
)
from runtime.expressions import ExpressionLimits
from runtime.model import ConfigVariable, Flow

TRIGGER: dict[str, Any] = {
    "body": {
        "event": "account.updated",
        "data": {"account_id": "acc_42", "seats": 25, "tags": ["vip", "eu"]},
        "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
    },
    "headers": {"content-type": "application/json", "x-request-id": "r1"},
    "query": {"page": "2"},
}
SCOPE = build_scope(
    TRIGGER,
    {"fetch": {"status": 200, "body": {"total": 99.5}}, "later": {"secret": "not yours"}},
    config={"region": "eu"},
)


def paths(refs: list[Reference]) -> list[str]:
    return [r.path for r in refs]


def by_path(refs: list[Reference]) -> dict[str, Reference]:
    return {r.path: r for r in refs}


# --- reference_paths ---------------------------------------------------------------------------


def test_trigger_fields_are_flattened_with_sample_values() -> None:
    refs = by_path(reference_paths(SCOPE, []))
    assert refs["trigger.body.data.account_id"].sample_value == "acc_42"
    assert refs["trigger.body.data.seats"].sample_value == 25
    assert refs["trigger.body.data"].sample_value == TRIGGER["body"]["data"]  # whole objects too
    assert refs["trigger.query.page"].sample_value == "2"
    assert refs["trigger.body.data.account_id"].section == "Trigger"
    assert refs["trigger.body.data.account_id"].label == "account_id"
    assert refs["trigger.body.data.account_id"].depth == 2


def test_lists_offer_the_list_and_its_first_item() -> None:
    found = paths(reference_paths(SCOPE, []))
    assert "trigger.body.lines" in found
    assert "trigger.body.lines[0]" in found
    assert "trigger.body.lines[0].sku" in found
    assert "trigger.body.lines[1].sku" not in found
    assert "trigger.body.data.tags[0]" in found


def test_lists_of_objects_offer_every_item_and_the_first_item() -> None:
    labels = [{"name": "bug", "color": "red"}, {"name": "ui"}]
    scope = {"trigger": {"body": {"issue": {"labels": labels}}}}
    refs = by_path(reference_paths(scope, []))
    every = refs["trigger.body.issue.labels.name[]"]
    assert every.label == "name (every item)"
    assert every.sample_value == ["bug", "ui"]
    assert refs["trigger.body.issue.labels.color[]"].sample_value == ["red"]
    first = refs["trigger.body.issue.labels[0].name"]
    assert first.sample_value == "bug"
    assert refs["trigger.body.issue.labels[0]"].label == "first item [0]"
    # what the preview shows is what a run computes: JSONata maps the path over every item
    shown = preview("{{ trigger.body.issue.labels.name[] }}", scope)
    assert shown is not None and shown.ok and shown.value == ["bug", "ui"]
    built = preview('{{ "bug" in trigger.body.issue.labels.name[] }}', scope)
    assert built is not None and built.value is True
    # a list of one stays a list, as the menu's sample shows, so "contains" means the same
    one = {"trigger": {"body": {"issue": {"labels": [{"name": "debug"}]}}}}
    single = preview("{{ trigger.body.issue.labels.name[] }}", one)
    assert single is not None and single.value == ["debug"]


def test_every_item_reaches_nested_lists_of_objects() -> None:
    orders = [{"lines": [{"sku": "A"}, {"sku": "B"}]}, {"lines": [{"sku": "C"}]}]
    refs = by_path(reference_paths({"trigger": {"body": {"orders": orders}}}, []))
    assert refs["trigger.body.orders.lines.sku[]"].sample_value == ["A", "B", "C"]
    shown = preview(
        "{{ trigger.body.orders.lines.sku[] }}", {"trigger": {"body": {"orders": orders}}}
    )
    assert shown is not None and shown.value == ["A", "B", "C"]


def test_keys_that_are_not_names_are_quoted_with_backticks() -> None:
    refs = by_path(reference_paths(SCOPE, []))
    assert refs["trigger.headers.`content-type`"].sample_value == "application/json"
    assert join_path("x", "and") == "x.`and`"  # a JSONata keyword
    assert join_path("x", "$var") == "x.`$var`"
    assert join_path("x", "we`ird") is None  # cannot be written: left out
    assert join_path("x", 3) == "x[3]"


def test_only_upstream_steps_are_offered_in_the_given_order() -> None:
    refs = reference_paths(SCOPE, ["fetch"], step_labels={"fetch": "Fetch order"})
    found = paths(refs)
    assert "steps.fetch.output.body.total" in found
    assert not any(p.startswith("steps.later") for p in found)
    assert by_path(refs)["steps.fetch.output.status"].section == "Fetch order"
    # trigger first, then the steps
    assert found.index("trigger.body") < found.index("steps.fetch.output")


def test_an_upstream_step_without_data_still_appears() -> None:
    refs = by_path(reference_paths(SCOPE, ["fetch", "enrich"]))
    assert refs["steps.enrich.output"].sample_value is None
    assert "not run yet" in refs["steps.enrich.output"].label


def test_empty_scope_still_offers_the_trigger_roots() -> None:
    assert paths(reference_paths({}, [])) == ["trigger.body", "trigger.headers", "trigger.query"]


def test_config_variables_use_scope_values_then_defaults_and_mask_secrets() -> None:
    config = [
        ConfigVariable(key="region"),
        ConfigVariable(key="limit", type="integer", default=10),
        ConfigVariable(key="token", type="secret", default="s3cret-value"),
    ]
    refs = by_path(reference_paths(SCOPE, [], config=config))
    assert refs["config.region"].sample_value == "eu"
    assert refs["config.limit"].sample_value == 10
    assert refs["config.token"].sample_value == "***"
    assert "s3cret-value" not in repr(list(refs.values()))


def test_loop_references_only_inside_a_loop() -> None:
    assert not any(p.startswith("loop.") for p in paths(reference_paths(SCOPE, [])))
    scope = {**SCOPE, "loop": {"item": {"sku": "A-1"}, "index": 0}}
    refs = by_path(reference_paths(scope, [], in_loop=True))
    assert refs["loop.item.sku"].sample_value == "A-1"
    assert refs["loop.index"].sample_value == 0
    bare = paths(reference_paths({}, [], in_loop=True))
    assert "loop.item" in bare and "loop.index" in bare


def test_depth_keys_and_total_are_bounded() -> None:
    deep: dict[str, Any] = {"v": 1}
    for _ in range(30):
        deep = {"d": deep}
    wide = {f"k{i}": i for i in range(500)}
    scope = build_scope({"body": {"deep": deep, "wide": wide}, "headers": {}, "query": {}})
    refs = reference_paths(scope, [], max_depth=6, max_keys=50)
    assert max(r.depth for r in refs) == 6
    assert len([r for r in refs if r.path.startswith("trigger.body.wide.")]) == 50
    assert len(reference_paths(scope, [], max_references=20)) == 20


def test_a_self_referencing_structure_does_not_hang() -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    scope = {"trigger": {"body": loop}}
    refs = reference_paths(scope, [])  # an endless walk would hit the test's timeout
    assert len(refs) < 50


def test_describe_keeps_samples_short() -> None:
    assert describe("x" * 200, limit=20) == '"' + "x" * 18 + "…"
    assert describe([1, 2, 3]) == "[1, 2, 3]"  # a short list of plain values as itself
    assert describe(list(range(40)), limit=20) == "[40 items]"
    assert describe([{"a": 1}]) == "[1 item]"
    assert describe({"a": 1, "b": 2}) == "{a, b}"
    assert describe(None) == "null"


# --- insertion ---------------------------------------------------------------------------------


def test_insert_reference_appends_or_inserts_at_the_caret() -> None:
    assert insert_reference(None, "trigger.body.id") == ("{{ trigger.body.id }}", 21)
    assert insert_reference("id=", "trigger.body.id") == ("id={{ trigger.body.id }}", 24)
    text, caret = insert_reference("/orders//items", "trigger.body.id", 8)
    assert text == "/orders/{{ trigger.body.id }}/items"
    assert text[caret:] == "/items"
    assert insert_reference("ab", "x", 99) == ("ab{{ x }}", 9)  # a stale caret is clamped


# --- previews ----------------------------------------------------------------------------------


def source(upstream: list[str] | None = None, **kwargs: Any) -> ReferenceSource:
    return ReferenceSource(scope=SCOPE, upstream=upstream or ["fetch"], **kwargs)


def test_preview_of_a_single_expression_keeps_its_type() -> None:
    scope = preview_scope(source())
    result = preview("{{ trigger.body.data.seats * 2 }}", scope, ["fetch"])
    assert result is not None and result.ok
    assert result.value == 50 and result.text == "50"
    lines = preview("{{ trigger.body.lines.sku }}", scope)
    assert lines is not None and lines.value == ["A-1", "B-2"]


def test_preview_of_mixed_text_and_nested_values() -> None:
    scope = preview_scope(source())
    text = preview("Account {{ trigger.body.data.account_id }} ({{ config.region }})", scope)
    assert text is not None and text.value == "Account acc_42 (eu)"
    nested = preview({"total": "{{ steps.fetch.output.body.total }}", "fixed": 1}, scope)
    assert nested is not None and nested.value == {"total": 99.5, "fixed": 1}


def test_no_preview_without_a_template() -> None:
    assert preview("plain text", SCOPE) is None
    assert preview({"a": [1, "b"]}, SCOPE) is None
    assert preview(5, SCOPE) is None


def test_preview_reports_errors_as_text() -> None:
    broken = preview("{{ trigger.( }}", SCOPE)
    assert broken is not None and not broken.ok
    assert "does not compile" in broken.text
    failing = preview('{{ $number("abc") }}', SCOPE)
    assert failing is not None and not failing.ok
    assert failing.text.startswith('Expression "$number("abc")" failed')


def test_preview_is_bounded() -> None:
    limits = ExpressionLimits(budget=10_000)
    started = time.perf_counter()
    result = preview(
        "{{ ($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000)) }}",
        SCOPE,
        limits=limits,
    )
    assert time.perf_counter() - started < 5
    assert result is not None and not result.ok


def test_preview_warns_about_steps_that_do_not_run_before() -> None:
    scope = preview_scope(source(["fetch"]))
    result = preview("{{ steps.later.output.secret }}", scope, ["fetch"])
    assert result is not None and not result.ok
    assert "steps.later, which does not run before this step" in result.text
    # and the scope itself holds only upstream steps, so nothing leaks from a later step
    assert set(scope["steps"]) == {"fetch"}
    unchecked = preview("{{ steps.later.output.secret }}", scope)
    assert unchecked is not None and unchecked.ok and unchecked.value is None


def test_preview_scope_masks_secret_config_and_fills_defaults() -> None:
    config = [
        ConfigVariable(key="region"),
        ConfigVariable(key="limit", type="integer", default=10),
        ConfigVariable(key="token", type="secret", default="s3cret-value"),
    ]
    scope = preview_scope(source(), config)
    assert scope["config"] == {"region": "eu", "limit": 10, "token": "***"}
    result = preview("Bearer {{ config.token }}", scope)
    assert result is not None and result.value == "Bearer ***"


def test_preview_scope_drops_loop_outside_a_loop() -> None:
    with_loop = ReferenceSource(scope={**SCOPE, "loop": {"item": 1}}, upstream=[])
    assert "loop" not in preview_scope(with_loop)
    inside = ReferenceSource(scope={**SCOPE, "loop": {"item": 1}}, upstream=[], in_loop=True)
    assert preview_scope(inside)["loop"] == {"item": 1}


def test_preview_cuts_long_values() -> None:
    scope = {"trigger": {"body": "x" * 1000}}
    result = preview("{{ trigger.body }}", scope, max_chars=50)
    assert result is not None and len(result.text) == 50 and result.text.endswith("…")
    assert result.value == "x" * 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ trigger.body }}", None),
        ({"a": ["ok {{ trigger.body }}"]}, None),
        ("no template", None),
        ("{{ trigger.( }}", "does not compile"),
        ("{{ }}", "is empty"),
        ("{{ trigger.body", "without a matching"),
        ({"a": ["{{ ] }}"]}, "does not compile"),
    ],
)
def test_template_error(value: Any, expected: str | None) -> None:
    message = template_error(value)
    if expected is None:
        assert message is None
    else:
        assert message is not None and expected in message


# --- the source of a step in a flow ------------------------------------------------------------


FLOW = Flow.model_validate(
    {
        "id": "sync",
        "trigger": {"id": "hook", "action": "webhook.webhook"},
        "steps": [
            {"id": "fetch", "name": "Fetch order", "action": "http.request", "inputs": {}},
            {"id": "each", "action": "loop.items", "inputs": {"items": "{{ trigger.body.lines }}"}},
            {"id": "log", "action": "log.message", "inputs": {"message": "x"}},
            {"id": "after", "action": "log.message", "inputs": {"message": "x"}},
            {"id": "side", "action": "log.message", "inputs": {"message": "x"}},
        ],
        "edges": [
            {"from": "hook", "to": "fetch"},
            {"from": "fetch", "to": "each"},
            {"from": "each", "to": "log", "port": "body"},
            {"from": "each", "to": "after", "port": "done"},
            {"from": "hook", "to": "side"},
        ],
    }
)


def test_source_for_a_step_lists_its_ancestors_in_run_order() -> None:
    registry = default_registry()
    after = source_for_step(FLOW, "after", registry, SCOPE, origin="last test run")
    assert list(after.upstream) == ["fetch", "each"]
    assert not after.in_loop
    assert after.step_labels["fetch"] == "Fetch order"
    assert after.origin == "last test run"
    assert list(source_for_step(FLOW, "fetch", registry, SCOPE).upstream) == []
    assert list(source_for_step(FLOW, "side", registry, SCOPE).upstream) == []


def test_source_inside_a_loop_body_samples_loop_item() -> None:
    registry = default_registry()
    inside = source_for_step(FLOW, "log", registry, SCOPE)
    assert inside.in_loop
    assert list(inside.upstream) == ["fetch"]  # not the enclosing loop: it has no output yet
    assert inside.scope["loop"] == {"item": {"sku": "A-1", "qty": 2}, "index": 0, "count": 2}
    refs = by_path(reference_paths(inside.scope, inside.upstream, in_loop=True))
    assert refs["loop.item.sku"].sample_value == "A-1"


def test_source_for_an_unknown_step_is_just_the_scope() -> None:
    unknown = source_for_step(FLOW, "nope", default_registry(), SCOPE)
    assert list(unknown.upstream) == [] and unknown.scope == SCOPE


def test_a_path_that_reads_nothing_is_named_in_the_preview() -> None:
    scope = {"trigger": {"body": {"issue": {"title": "Crash"}}}, "steps": {"fetch": {"output": 1}}}
    typo = preview("New: {{ trigger.body.issue.tittle }}", scope)
    assert typo is not None and typo.ok
    assert typo.empty == ("trigger.body.issue.tittle",)
    fine = preview("New: {{ trigger.body.issue.title }}", scope)
    assert fine is not None and fine.empty == ()
    later = preview("{{ steps.later.output.id }}", scope)  # not run yet: no warning
    assert later is not None and later.empty == ()
    wrong = preview({"a": ["{{ steps.fetch.output.id }}"]}, scope)
    assert wrong is not None and wrong.empty == ("steps.fetch.output.id",)


def test_no_sample_data_is_not_a_typo() -> None:
    empty: dict[str, Any] = {"trigger": {"body": {}, "headers": {}, "query": {}}}
    shown = preview("{{ trigger.body.issue.title }}", empty)
    assert shown is not None and shown.empty == ()
    nested = {"trigger": {"body": {"issue": {"title": "x"}}}}
    shown = preview("{{ trigger.body.isue.title }}", nested)  # the typo is one level up
    assert shown is not None and shown.empty == ("trigger.body.isue.title",)
